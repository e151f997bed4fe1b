"""`from dagger import load_policy`: a trained policy acting in a user's own loop, on numpy or torch, one or a batch."""

import re
import subprocess
import sys
from dataclasses import asdict

import gymnasium
import numpy as np
import pytest
import torch

from dagger.app.evaluate import evaluate_checkpoint
from dagger.checkpoint import CheckpointError, policy_from, read_checkpoint, task_spaces, to_tensors, write_checkpoint
from dagger.evaluation import Outcome, eval_seeds, run_episode, summarize_episodes
from dagger.point_tasks import PointTask
from dagger.policies import PolicyConfig, make_policy
from dagger.tasks import TaskConfig, make_task
from tests.conftest import ROOT, point_config
from workers.launch import run_loop

MARKER = "<!-- example: load_policy -->"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny in-process run on the point task (an mlp-ensemble policy) with its final checkpoint."""
    run_dir = tmp_path_factory.mktemp("pretrained")
    run_loop(point_config("steps=300", "eval.every_versions=0"), run_dir)
    return run_dir


def family_checkpoint(directory, family: str, task: dict | None = None):
    """A checkpoint of an untrained `family` policy as the learner writes one (no run config: an older file)."""
    task = task or task_spaces(PointTask())
    image = tuple(task["image_shape"]) if "image_shape" in task else None
    policy = make_policy(PolicyConfig(type=family), task["obs_dim"], task["act_dim"], seed=3, image_shape=image)
    policy.version = 1
    payload = {"version": 1, "task": task, "policy": asdict(PolicyConfig(type=family)),
               "weights": to_tensors(policy.weights())}
    write_checkpoint(directory / "checkpoints", payload)
    return directory


def observations(n: int) -> np.ndarray:
    task = PointTask()
    return np.stack([task.reset(seed=seed) for seed in range(n)])


def test_import_dagger_stays_light_and_load_policy_brings_torch_when_asked():
    code = ("import sys, dagger; assert 'torch' not in sys.modules, 'import dagger imported torch'; "
            "from dagger import load_policy, PretrainedPolicy; assert 'torch' in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_run_dir_its_checkpoints_or_the_file_load_the_same_policy(run_dir):
    from dagger import load_policy

    ckpt = read_checkpoint(run_dir)
    policies = [load_policy(p) for p in (run_dir, run_dir / "checkpoints", ckpt["path"], str(run_dir))]
    for policy in policies:
        assert (policy.version, policy.obs_dim, policy.act_dim, policy.task) == (ckpt["version"], 6, 2, "point")
        assert policy.env_id == "dagger/Point-v0" and policy.family == "mlp-ensemble" and policy.image_shape is None
    obs = observations(1)[0]
    assert all(np.array_equal(p.predict(obs), policies[0].predict(obs)) for p in policies)
    assert f"v{ckpt['version']}" in repr(policies[0])


def test_predict_takes_numpy_or_torch_one_observation_or_a_batch(run_dir):
    from dagger import load_policy

    policy = load_policy(run_dir)
    reference = policy_from(read_checkpoint(run_dir), PointTask())  # what `dagger eval` acts with
    obs = observations(5)
    one = policy.predict(obs[0])
    assert one.shape == (2,) and one.dtype == np.float32
    assert np.array_equal(one, reference.act(obs[0]).action)
    for same in (obs[0].astype(np.float64), obs[0].tolist(), torch.from_numpy(obs[0]),
                 torch.tensor(obs[0], dtype=torch.float64, requires_grad=True)):
        assert np.array_equal(policy.predict(same), one)
    rows = np.stack([reference.act(o).action for o in obs])
    for batch in (obs, torch.from_numpy(obs), obs.astype(np.float64)):
        actions = policy.predict(batch)
        assert actions.shape == (5, 2) and actions.dtype == np.float32
        assert np.array_equal(actions, rows)  # the deterministic ensemble: each row as acting on it alone
    assert policy.predict(obs[:1]).shape == (1, 2)


def test_the_uncertainty_comes_with_the_action(run_dir):
    from dagger import load_policy

    policy = load_policy(run_dir)
    obs = observations(3)
    out = policy.act(obs[0])
    assert out.version == policy.version and out.samples is not None and out.samples.shape == (5, 2)
    action, spread = policy.predict(obs[0], with_spread=True)
    assert np.array_equal(action, out.action) and spread.shape == () and float(spread) == out.spread > 0
    actions, spreads = policy.predict(torch.from_numpy(obs), with_spread=True)
    assert actions.shape == (3, 2) and spreads.shape == (3,) and spreads[0] == out.spread
    with pytest.raises(ValueError, match=r"act takes one observation \(6,\), got a batch \(3, 6\)"):
        policy.act(obs)


@pytest.mark.parametrize("obs, got", [
    (np.zeros(5), r"\(5,\)"), (np.zeros((3, 7)), r"\(3, 7\)"), (np.zeros((2, 3, 6)), r"\(2, 3, 6\)"),
    (3.0, r"\(\)"), (np.zeros((0, 6)), r"\(0, 6\)"), (torch.zeros(4), r"\(4,\)")])
def test_a_wrong_shape_is_a_value_error_naming_expected_and_got(run_dir, obs, got):
    from dagger import load_policy

    policy = load_policy(run_dir)
    with pytest.raises(ValueError, match=rf"obs has shape {got}; this policy \(task point\) takes \(6,\) or a batch "
                                         r"\(B, 6\)"):
        policy.predict(obs)


def test_other_bad_inputs_are_value_errors_saying_what(run_dir):
    from dagger import load_policy

    policy = load_policy(run_dir)
    bad = np.zeros((3, 6))
    bad[1, 2] = np.nan
    cases = [(bad, "obs row 1 has NaN or inf"), (np.array(["a"] * 6), "obs has dtype <U1; this policy takes numbers"),
             ({"image": np.zeros(3)}, "a dict obs needs 'state'")]
    for obs, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            policy.predict(obs)
    with pytest.raises(ValueError, match=r"sees the state only; got an image"):
        policy.predict(np.zeros(6), np.zeros((64, 64, 3), np.uint8))


def test_the_checkpoints_task_is_the_default_and_another_one_is_refused(run_dir):
    from dagger import load_policy

    assert load_policy(run_dir, "point").task_config == TaskConfig("point")
    with pytest.raises(CheckpointError, match=r"holds task point \(obs 6, act 2\).*needs task point-obstacle"):
        load_policy(run_dir, "point-obstacle")
    with pytest.raises(ValueError, match="unknown task|task.name"):
        load_policy(run_dir, "no-such-task")


def gym_episode(policy, seed: int) -> Outcome:
    """A user's own loop: the task as a gymnasium env, the policy's predict() each step."""
    env = gymnasium.make(policy.env_id)
    obs, _ = env.reset(seed=seed)
    policy.reset()
    done, total, length, violated = False, 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy.predict(torch.from_numpy(obs)))
        done, total, length = terminated or truncated, total + reward, length + 1
        violated = violated or info["constraint"]
    return Outcome(bool(info["success"]), total, length, bool(violated))


def test_a_users_loop_ends_each_episode_as_dagger_eval_does(run_dir):
    from dagger import load_policy

    policy, seeds = load_policy(run_dir), eval_seeds(4)
    mine = [gym_episode(policy, seed) for seed in seeds]
    reference = policy_from(read_checkpoint(run_dir), make_task("point"))
    assert mine == [run_episode(reference, make_task("point"), seed) for seed in seeds]
    assert run_episode(policy, make_task("point"), seeds[0]) == mine[0]  # it is a Policy: run_episode drives it too
    evaluated = evaluate_checkpoint(str(run_dir), TaskConfig("point"), seeds)  # `dagger eval`'s own path
    assert {k: v for k, v in evaluated.items() if k != "seconds"} == summarize_episodes(mine)


@pytest.mark.parametrize("family", ["chunking", "diffusion"])
def test_a_batch_keeps_one_episode_state_per_row(tmp_path, family):
    from dagger import load_policy

    path = family_checkpoint(tmp_path, family)
    batched = load_policy(path)
    assert batched.family == family
    singles = [load_policy(path) for _ in range(3)]
    rng = np.random.default_rng(0)
    for step in range(6):  # past a chunk's overlap and a diffusion plan's end
        obs = rng.normal(size=(3, 6)).astype(np.float32)
        actions, spreads = batched.predict(obs, with_spread=True)
        for row, single in enumerate(singles):  # each row as a policy loaded for that episode alone
            action, spread = single.predict(obs[row], with_spread=True)
            assert np.array_equal(actions[row], action) and spreads[row] == spread, (step, row)
    with pytest.raises(ValueError, match=rf"this {family} policy keeps each episode's state and this episode's batch "
                                         r"has 3 rows; got a batch of 2 \(reset\(\) before"):
        batched.predict(rng.normal(size=(2, 6)))
    with pytest.raises(ValueError, match="got one observation"):
        batched.predict(rng.normal(size=6))
    with pytest.raises(ValueError, match=r"reset\(row=3\): this episode's batch has rows 0..2"):
        batched.reset(3)
    batched.reset(1)  # row 1's episode starts again (a vector env's autoreset); rows 0 and 2 go on
    singles[1].reset()
    obs = rng.normal(size=(3, 6)).astype(np.float32)
    assert np.array_equal(batched.predict(obs), np.stack([s.predict(o) for s, o in zip(singles, obs, strict=True)]))
    batched.reset()
    assert batched.predict(obs[:2]).shape == (2, 2)  # after reset() any batch size


def test_an_image_task_takes_its_camera_image_beside_the_state_or_in_the_gym_dict(tmp_path):
    from dagger import load_policy

    task = {"name": "reacher-image", "obs_dim": 8, "act_dim": 2, "image_shape": [64, 64, 3]}
    policy = load_policy(family_checkpoint(tmp_path, "mlp-ensemble", task))
    assert policy.image_shape == (64, 64, 3) and policy.env_id == "dagger/ReacherImage-v0"
    rng = np.random.default_rng(0)
    state, image = rng.normal(size=(3, 8)).astype(np.float32), rng.integers(0, 256, (3, 64, 64, 3), np.uint8)
    one = policy.predict(state[0], image[0])
    assert one.shape == (2,)
    assert np.array_equal(policy.predict({"state": state[0], "image": image[0]}), one)  # gymnasium's observation
    assert np.array_equal(policy.predict(torch.from_numpy(state), torch.from_numpy(image))[0], one)
    with pytest.raises(ValueError, match=r"sees camera images: predict\(obs, image\) needs the image, uint8 "
                                         r"\(64, 64, 3\)"):
        policy.predict(state[0])
    with pytest.raises(ValueError, match=r"image has shape \(64, 64, 3\) and dtype uint8; this policy \(task "
                                         r"reacher-image\) takes uint8 \(3, 64, 64, 3\)"):
        policy.predict(state, image[0])
    with pytest.raises(ValueError, match=r"image has shape \(64, 64, 3\) and dtype float32"):
        policy.predict(state[0], image[0].astype(np.float32))


def readme_example() -> str:
    """The README's example of a user's own loop: the python block after MARKER."""
    text = (ROOT / "README.md").read_text()
    assert text.count(MARKER) == 1, f"README.md should hold one {MARKER}"
    found = re.search(re.escape(MARKER) + r"\n```python\n(.*?)\n```", text, re.DOTALL)
    assert found, f"README.md: a ```python block should follow {MARKER}"
    return found[1]


def test_the_readmes_example_runs_as_written(run_dir, tmp_path):
    code = readme_example()
    assert code.count('"/tmp/apirun"') == 1
    script = tmp_path / "example.py"
    script.write_text(code.replace('"/tmp/apirun"', repr(str(run_dir))))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(re.fullmatch(r"seed \d+: success (True|False) in \d+ steps, return -?[\d.]+, "
                                                r"largest spread [\d.]+", line) for line in lines), done.stdout
