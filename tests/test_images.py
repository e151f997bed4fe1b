"""Camera images end to end: the image task, the CNN policy that learns from pixels, durable image segments,
and `dagger eval` under a moved camera."""

import numpy as np
import pytest
import torch

from buffers.codec import decode_segment
from buffers.segment_log import SegmentLog
from dagger.config import load_config
from dagger.evaluation import eval_seeds
from dagger.events import read_events
from dagger.policies import EnsemblePolicy, PolicyConfig
from dagger.tasks import TaskConfig, make_task
from tests.conftest import run_dagger
from workers.launch import run_loop


def red_centre(image: np.ndarray) -> np.ndarray:
    """Pixel centre (row, col) of the target: the red pixels."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    rows, cols = np.nonzero((r > 100) & (r > g + 60) & (r > b + 60))
    return np.array([rows.mean(), cols.mean()])


def test_the_target_is_in_the_image_only_and_a_moved_camera_moves_it():
    task = make_task("reacher-image")
    obs = task.reset(seed=3)
    assert obs.shape == (6,) and task.image_shape == (64, 64, 3)
    np.testing.assert_allclose(obs[:4] ** 2 @ [1, 0, 1, 0], 1.0, rtol=1e-5)  # cos² + sin² of joint 0: no target
    here = red_centre(task.image())
    task.reset(seed=4)
    assert np.abs(red_centre(task.image()) - here).max() > 3  # another episode, another target
    task.reset(seed=3)
    np.testing.assert_array_equal(red_centre(task.image()), here)  # the same seed, the same picture
    moved = make_task(TaskConfig("reacher-image", camera_jitter=8))
    moved.reset(seed=3)
    assert np.abs(red_centre(moved.image()) - here).max() > 1.5  # 8 cm / 8°: the target shows elsewhere


def test_the_expert_solves_the_image_task():
    task = make_task("reacher-image")
    wins = 0
    for seed in range(10):
        task.reset(seed=seed)
        while not (res := task.step(task.expert_action())).done:
            pass
        wins += res.success
    assert wins >= 9


@pytest.mark.usefixtures("one_torch_thread")
def test_the_cnn_policy_learns_where_a_square_is():
    """Action = the column of a bright square, obs all zeros: only the image carries it."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cols = rng.integers(4, 28, 512)
    images = np.zeros((512, 32, 32, 3), np.uint8)
    for i, c in enumerate(cols):
        images[i, 12:18, c - 3:c + 3] = 255
    act = ((cols - 16) / 12).astype(np.float32)[:, None]
    policy = EnsemblePolicy(1, 1, PolicyConfig(members=2, hidden=32), image_shape=(32, 32, 3))
    policy.set_normalizer(np.zeros(1), np.ones(1), np.zeros(1), np.ones(1))
    obs = np.zeros((2, 32, 1), np.float32)
    for _ in range(250):
        idx = rng.integers(0, 512, (2, 32))
        policy.update({"obs": obs, "action": act[idx], "image": images[idx]})
    got = np.array([policy.act(np.zeros(1), images[i]).action[0] for i in range(64)])
    assert np.abs(got - act[:64, 0]).mean() < 0.15  # the target's spread is 0.58: it reads the image
    with pytest.raises(ValueError, match="needs the task's image"):
        policy.act(np.zeros(1))
    copy = EnsemblePolicy(1, 1, PolicyConfig(members=2, hidden=32), seed=5, image_shape=(32, 32, 3))
    copy.load(policy.weights() | {"version": 1})
    assert copy.act(np.zeros(1), images[0]).action[0] == pytest.approx(got[0], abs=1e-6)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("image-run")
    cfg = load_config(None, ["task=reacher-image", "robots=2", "steps=300", "demos=2", "learner.batch_size=8",
                             "learner.pretrain_updates=20", "learner.publish_every=20", "eval.every_versions=0",
                             "gate.threshold=0.0", "operator.correction_steps=5"])
    run_loop(cfg, run_dir)
    return run_dir


def test_image_segments_are_durable_with_their_pictures(image_run):
    segments = [decode_segment(p) for p in SegmentLog.read(image_run / "segments")]
    human = [s for s in segments if s.human]
    assert human and all(s.image.shape == (len(s), 64, 64, 3) for s in segments)
    first = human[0]
    assert np.isfinite(red_centre(first.image[0])).all()  # the target is in the stored picture
    events = read_events(image_run / "events.jsonl")
    assert events[-1]["ev"] == "run_end" and events[-1]["reason"] != "failed"


def test_dagger_eval_runs_the_image_policy_under_a_moved_camera(image_run):
    out = run_dagger("eval", str(image_run), "--episodes", "3", "--out", str(image_run / "moved.json"),
                     "task.camera_jitter=6")
    assert out.returncode == 0, out.stderr
    import json

    result = json.loads((image_run / "moved.json").read_text())
    assert result["task_config"]["camera_jitter"] == 6.0 and result["episodes"] == 3
    assert result["seed_base"] == eval_seeds(1)[0]
    bad = run_dagger("eval", str(image_run), "--episodes", "1", "robots=3")
    assert bad.returncode == 2 and "only task settings" in bad.stderr
