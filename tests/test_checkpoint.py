"""Checkpoints, `dagger eval`, resume after a kill -9, --init-from, and exactly repeatable in-process runs."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

from dagger.checkpoint import CheckpointError, policy_from, read_checkpoint, write_checkpoint
from dagger.evaluation import EVAL_SEED_BASE, demo_seed, episode_seed, eval_seeds, wilson_interval
from dagger.events import read_events
from dagger.metrics import learning_curve
from dagger.point_tasks import PointTask
from tests.conftest import ROOT, point_config, run_dagger, wait_until
from workers.launch import previous_runs, run_loop
from workers.robot import INCARNATION_STRIDE


def dagger(*args: str) -> subprocess.CompletedProcess:
    return run_dagger(*args, cwd=ROOT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small in-process run with checkpoints every 5 versions and an evaluation every 4."""
    run_dir = tmp_path_factory.mktemp("trained")
    cfg = point_config("learner.checkpoint_every=5", "eval.every_versions=4", "eval.episodes=10")
    run_loop(cfg, run_dir)
    return cfg, run_dir


def test_a_run_leaves_its_final_policy_as_a_checkpoint(trained):
    cfg, run_dir = trained
    events = read_events(run_dir / "events.jsonl")
    final = max(e["version"] for e in events if e["ev"] == "weights_published")
    names = sorted(p.name for p in (run_dir / "checkpoints").glob("v*.pt"))
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == f"v{final:06d}.pt" == names[-1]
    assert len(names) <= cfg.learner.checkpoint_keep and not list((run_dir / "checkpoints").glob(".*"))
    periodic = [e["version"] for e in events if e["ev"] == "checkpoint"]
    assert periodic[:-1] == list(range(5, 5 * len(periodic), 5)) and periodic[-1] == final
    ckpt = read_checkpoint(run_dir)
    assert ckpt["version"] == final and ckpt["task"] == {"name": "point", "obs_dim": 6, "act_dim": 2}
    assert ckpt["config"]["seed"] == cfg.seed and ckpt["trainer"]["updates"] > cfg.learner.pretrain_updates
    assert ckpt["data"]["stored_steps"] > 0
    # every network the policy carries, bit for bit as the learner published it
    assert set(ckpt["weights"]) >= {"params", "critic", "classifier", "normalizer", "train_gap"}
    policy = policy_from(ckpt, PointTask())
    assert policy.version == final
    obs = np.linspace(-1, 1, 6).astype(np.float32)
    again = policy_from(read_checkpoint(run_dir / "checkpoints" / f"v{final:06d}.pt"), PointTask())
    assert np.array_equal(policy.act(obs).action, again.act(obs).action)


def test_a_checkpoint_never_executes_code_when_loaded(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (tmp_path / "checkpoints").mkdir()
    torch.save({"format": "dagger-checkpoint/1", "version": 1, "x": Boom()}, tmp_path / "checkpoints" / "v000001.pt")
    (tmp_path / "checkpoints" / "latest").write_text("v000001.pt\n")
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        read_checkpoint(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_writing_is_atomic_and_keeps_the_newest(tmp_path):
    for version in range(1, 6):
        write_checkpoint(tmp_path, {"version": version, "w": torch.zeros(2)}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "v000004.pt", "v000005.pt"]
    assert read_checkpoint(tmp_path)["version"] == 5
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        read_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nothing")


def test_a_checkpoint_for_another_task_or_shape_is_refused_in_one_line(trained, tmp_path):
    _, run_dir = trained
    from dagger.reacher_tasks import ReacherTask

    with pytest.raises(CheckpointError) as err:
        policy_from(read_checkpoint(run_dir), ReacherTask())
    assert "task point (obs 6, act 2)" in str(err.value) and "task reacher (obs 10, act 2)" in str(err.value)
    result = dagger("start", "--in-process", "--task", "point", "--run-dir", str(tmp_path / "r"), "--init-from",
                    str(run_dir), "policy.hidden=32")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "mlp-ensemble policy (members 5, hidden 64, layers 2);" in result.stderr
    assert "mlp-ensemble policy (members 5, hidden 32, layers 2)" in result.stderr
    shutil.copytree(run_dir / "checkpoints", tmp_path / "old" / "checkpoints")
    resumed = dagger("start", "--in-process", "--task", "reacher", "--run-dir", str(tmp_path / "old"), "--resume")
    assert resumed.returncode == 2 and resumed.stderr.count("\n") == 1
    assert "holds task point" in resumed.stderr and "needs task reacher" in resumed.stderr
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["checkpoints"]  # nothing started


def test_wilson_interval_matches_hand_computed_values():
    # 34/50, z² = 3.841459: centre (0.68 + 0.0384146) / 1.0768292 = 0.667157; half-width
    # 1.959964 * sqrt(0.68*0.32/50 + 3.841459/10000) / 1.0768292 = 0.125260 -> [0.541897, 0.792417]
    lo, hi = wilson_interval(34, 50)
    assert lo == pytest.approx(0.541897, abs=2e-6) and hi == pytest.approx(0.792417, abs=2e-6)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.277533, abs=2e-6)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] == pytest.approx(0.722467, abs=2e-6)


def test_evaluation_seeds_never_occur_in_training():
    biggest = max(episode_seed(99_999, 1000, 10 * 1_000_000 + 999_999), demo_seed(99_999, 10_000))
    assert biggest < EVAL_SEED_BASE == eval_seeds(3)[0]
    with pytest.raises(ValueError, match="training"):
        eval_seeds(3, base=12)


def test_dagger_eval_reports_success_with_its_interval_the_same_every_time(trained, tmp_path):
    _, run_dir = trained
    # 10 episodes: the in-run evaluation's count (eval.episodes=10), so `one` is also compared with it below
    one = dagger("eval", str(run_dir), "--episodes", "10", "--out", str(tmp_path / "a.json"))
    two = dagger("eval", str(run_dir), "--episodes", "10", "--robots", "2", "--out", str(tmp_path / "b.json"),
                 "--video", str(tmp_path / "v.gif"))
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    for key in ("successes", "success_rate", "ci95", "mean_return", "mean_length"):
        assert a[key] == b[key]
    assert a["episodes"] == 10 and a["ci95"] == list(wilson_interval(a["successes"], 10))
    assert a["mean_length"] == 40.0 and a["seed_base"] == EVAL_SEED_BASE
    assert "success rate" in one.stdout and f"{a['success_rate']:.3f}" in one.stdout
    from PIL import Image

    with Image.open(tmp_path / "v.gif") as gif:
        # 3 episodes of 40 frames and the state they end in, each held half a second (12 frames); GIF merges repeats
        assert b["video_frames"] == 3 * (41 + 12) and 40 <= gif.n_frames <= 159 and gif.size == (640, 520)
    # the in-run evaluation of the final version used the same first seeds: it agrees with dagger eval
    last = [e for e in read_events(run_dir / "events.jsonl") if e["ev"] == "eval"][-1]
    assert last["episodes"] == a["episodes"] and a["successes"] == last["successes"]


def test_the_run_logs_a_learning_curve_against_human_labels(trained, tmp_path):
    _, run_dir = trained
    events = read_events(run_dir / "events.jsonl")
    curve = learning_curve(events)
    published = sorted(e["version"] for e in events if e["ev"] == "weights_published")
    assert [p["version"] for p in curve][:3] == [1, 4, 8] and curve[-1]["version"] == published[-1]
    labels = [p["human_labels"] for p in curve]
    assert labels[0] == 0 and labels == sorted(labels) and labels[-1] > 0
    assert all(p["episodes"] == 10 and p["ci95"][0] <= p["success_rate"] <= p["ci95"][1] for p in curve)
    from matplotlib.image import imread

    from dagger.app.report import write_run_report

    write_run_report(tmp_path, events)
    assert "(plots/learning_curve.png)" in (tmp_path / "report.md").read_text()
    image = imread(tmp_path / "plots" / "learning_curve.png")
    assert image.shape[0] > 300 and image.std() > 0.05  # drawn, not blank


def strip_times(events: list[dict]) -> list[dict]:
    """Absolute times and paths aside (the clock starts at the wall clock, the run dirs differ)."""
    drop = {"t", "t_start", "t_end", "path", "eval_s"}
    return [{k: v for k, v in e.items() if k not in drop} for e in events]


def test_in_process_runs_repeat_exactly_per_seed(tmp_path):
    # thrifty: its goal critic trains on every shipped segment, so when segments ship matters too
    cfg = point_config("steps=800", "eval.every_versions=3", "eval.episodes=3", "operator.fatigue_per_min=5",
                       "operator.switch_s=0.05", "gate.name=thrifty", "robot.ship_every_s=0.02")
    logs = []
    for name in ("a", "b"):
        run_loop(cfg, tmp_path / name)
        logs.append(strip_times(read_events(tmp_path / name / "events.jsonl")))
    assert logs[0] == logs[1]
    kinds = {e["ev"] for e in logs[0]}
    assert {"segment", "takeover", "operator_assigned", "eval", "weights_published", "segment_trained"} <= kinds
    other = point_config("steps=800", "eval.every_versions=3", "eval.episodes=3", "seed=1")
    run_loop(other, tmp_path / "c")
    assert strip_times(read_events(tmp_path / "c" / "events.jsonl")) != logs[0]


def wait_for_checkpoint(directory: Path, version: int, timeout: float) -> None:
    """Until `latest` names this version or a newer one (older files are pruned as the run goes on)."""
    latest = directory / "latest"
    wait_until(lambda: latest.exists() and int(latest.read_text().strip()[1:-3]) >= version, timeout,
               f"a checkpoint v{version} or newer in {directory}", every=0.1)


def test_a_resumed_run_numbers_its_robots_after_every_earlier_run_and_restart():
    # run 1 used incarnation 0, and its robot 1 was restarted twice (incarnations 1, 2): the next run starts at 3
    events = [{"ev": "run_start"}, {"ev": "segment", "robot": 0, "seq": 4},
              {"ev": "robot_restarted", "robot": 1}, {"ev": "robot_restarted", "robot": 1},
              {"ev": "segment", "robot": 1, "seq": 2 * INCARNATION_STRIDE}, {"ev": "run_end"}]
    assert previous_runs(events) == (3, ["0:4", f"1:{2 * INCARNATION_STRIDE}"])
    assert previous_runs([]) == (0, [])


def test_resume_after_kill_9_continues_from_the_newest_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    args = ["start", "--in-process", "--task", "point", "--robots", "2", "--run-dir", str(run_dir), "demos=2",
            "learner.pretrain_updates=50", "learner.batch_size=32", "learner.publish_every=10", "robot.speed=50",
            "learner.checkpoint_every=2", "eval.every_versions=0", "gate.threshold=0.002"]
    driver = subprocess.Popen([sys.executable, "-m", "dagger.app.cli", *args, "--steps", "1000000"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_checkpoint(run_dir / "checkpoints", 4, 120)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    killed_at = read_checkpoint(run_dir)["version"]
    segments_before = sum(e["ev"] == "segment" for e in read_events(run_dir / "events.jsonl"))
    resumed = dagger(*args, "--steps", "600", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    events = read_events(run_dir / "events.jsonl")
    start = [e for e in events if e["ev"] == "policy_start"]
    assert [s["source"] for s in start] == ["demos", "resume"] and start[1]["version"] == killed_at
    restored = next(e for e in events if e["ev"] == "restored")
    assert restored["version"] == killed_at and restored["trainer"] is True
    later = [e["version"] for e in events[events.index(restored):] if e["ev"] == "weights_published"]
    assert later and min(later) == killed_at + 1 and later == sorted(later)
    assert sum(e["ev"] == "demos" or (e["ev"] == "policy_start" and "demo_steps" in e) for e in events) == 1
    assert sum(e["ev"] == "segment" for e in events) > segments_before
    # every segment the log holds is reported once; those the killed driver never logged are recovered from it
    from buffers.codec import decode_segment
    from buffers.segment_log import SegmentLog

    stored = {s.key for s in map(decode_segment, SegmentLog.read(run_dir / "segments")) if s.controller != "demo"}
    reported = [f"{e['robot']}:{e['seq']}" for e in events if e["ev"] == "segment"]
    assert stored <= set(reported) and len(reported) == len(set(reported))
    assert read_checkpoint(run_dir)["version"] == later[-1]


def test_init_from_starts_a_new_run_from_a_trained_policy(trained, tmp_path):
    _, source = trained
    ckpt = read_checkpoint(source)
    cfg = point_config("steps=300", f"init_from={source}")
    run_loop(cfg, tmp_path / "new")
    events = read_events(tmp_path / "new" / "events.jsonl")
    start = next(e for e in events if e["ev"] == "policy_start")
    assert start["source"] == "init_from" and start["version"] == ckpt["version"]
    assert next(e for e in events if e["ev"] == "restored")["trainer"] is False
    first = min(e["version"] for e in events if e["ev"] == "weights_published")
    assert first == ckpt["version"] + 1
    # the new run's first weights are the checkpoint's policy (no pretraining on its own demonstrations)
    obs = np.linspace(-1, 1, 6).astype(np.float32)
    trained_policy = policy_from(ckpt, PointTask())
    loaded = [e for e in events if e["ev"] == "weights_loaded"]
    assert loaded and loaded[0]["version"] == first
    assert np.isfinite(trained_policy.act(obs).action).all()


def test_a_robot_runs_one_control_loop_however_often_it_is_started(tmp_path):
    """A robot restarted before the fleet starts gets start() twice; two loops would step it twice per tick."""
    from tests.one_robot import OneRobot
    from workers.buffer import BufferWorker
    from workers.transport import LocalEndpoint

    robot = OneRobot(0, point_config(), LocalEndpoint(BufferWorker(tmp_path)))
    robot.start()
    first = robot.thread
    robot.start()
    assert robot.thread is first
    robot.stopped.set()
    first.join()


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=400), keep=st.integers(0, 2000))
def test_any_corrupt_or_truncated_file_is_a_clear_error(tmp_path_factory, data, keep):
    """Random bytes, and a real checkpoint cut short or with random bytes spliced in, never load and never
    raise anything but CheckpointError naming the file."""
    directory = tmp_path_factory.mktemp("ckpt")
    real = write_checkpoint(directory, {"version": 1, "task": {"name": "point"}, "w": torch.arange(300.0)})
    whole = real.read_bytes()
    for name, content in (("random.pt", data), ("cut.pt", whole[:keep]), ("spliced.pt", whole[:keep] + data)):
        bad = directory / name
        bad.write_bytes(content)
        if content == whole:
            continue
        with pytest.raises(CheckpointError, match=name):
            read_checkpoint(bad)


def test_a_crash_while_writing_leaves_the_previous_checkpoint_in_place(tmp_path, monkeypatch):
    write_checkpoint(tmp_path, {"version": 1, "w": torch.ones(3)})
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    write_checkpoint(tmp_path, {"version": 2, "w": torch.ones(3)})
    assert len(synced) == 4  # the file and the folder, for the checkpoint and for `latest`
    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError):
        write_checkpoint(tmp_path, {"version": 3, "w": torch.ones(3)})
    assert read_checkpoint(tmp_path)["version"] == 2 and not (tmp_path / "v000003.pt").exists()


def test_restore_brings_back_the_trainers_state(trained, tmp_path):
    from workers.buffer import BufferWorker
    from workers.learner import Learner
    from workers.transport import LocalEndpoint

    cfg, run_dir = trained
    ckpt = read_checkpoint(run_dir)
    learner = Learner(cfg, 6, 2, LocalEndpoint(BufferWorker(tmp_path / "segments")))
    assert learner.restore(ckpt) == ckpt["version"] and learner.updates == ckpt["trainer"]["updates"]
    state = learner.trainer_state()
    for key in ("optimizer", "critic_optimizer", "classifier_optimizer"):
        saved, now = ckpt["trainer"][key]["state"], state[key]["state"]
        assert saved.keys() == now.keys() and (len(saved) > 0 or key != "optimizer")  # critics train with thrifty
        assert all(torch.equal(saved[i]["exp_avg"], now[i]["exp_avg"]) for i in saved)
    assert all(torch.equal(a, b) for a, b in zip(ckpt["trainer"]["critic_target"], state["critic_target"],
                                                 strict=True))
    obs = np.linspace(-1, 1, 6).astype(np.float32)
    assert np.array_equal(learner.policy.act(obs).action, policy_from(ckpt, PointTask()).act(obs).action)


def test_a_policy_started_from_a_checkpoint_keeps_its_normaliser(trained, tmp_path):
    from workers.buffer import BufferWorker
    from workers.launch import collect_demos
    from workers.learner import Learner
    from workers.transport import LocalEndpoint

    cfg, run_dir = trained
    ckpt = read_checkpoint(run_dir)
    buffer = BufferWorker(tmp_path / "segments")
    buffer.add(collect_demos(point_config("demos=1", "seed=7"), PointTask()))
    fresh = Learner(cfg, 6, 2, LocalEndpoint(buffer))
    fresh.restore(ckpt, trainer=False)
    fresh.train(2)
    saved = [t.numpy() for t in ckpt["weights"]["normalizer"]]
    now = [fresh.policy.obs_mean, fresh.policy.obs_std, fresh.policy.act_mean, fresh.policy.act_std]
    assert all(np.array_equal(a, b) for a, b in zip(saved, now, strict=True))
    assert fresh.updates == 2  # the trainer starts afresh: only the policy came from the checkpoint


def test_segments_the_log_holds_but_the_events_miss_are_reported_once(tmp_path):
    from buffers.schema import DEMO
    from tests.conftest import make_segment
    from workers.buffer import BufferWorker

    segments = [make_segment(0, 3, "policy"), make_segment(1, 2, "operator:0"), make_segment(0, 4, "policy", robot=1)]
    first = BufferWorker(tmp_path)
    first.add(segments + [make_segment(0, 5, DEMO, robot=-1)])
    first.close()
    again = BufferWorker(tmp_path)  # reopened, as a resumed run does
    missing = again.unreported(["0:0"])
    assert [(e["robot"], e["seq"], e["controller"], e["steps"], e["recovered"]) for e in missing] == [
        (0, 1, "operator:0", 2, True), (1, 0, "policy", 4, True)]
    assert missing[0]["versions"] == [[1, 2]] and (missing[0]["t_start"], missing[0]["t_end"]) == (0.0, 1.0)
    assert again.unreported(["0:0", "0:1", "1:0"]) == []


def test_a_learner_restarted_after_a_crash_numbers_on_after_the_robots_version(trained, tmp_path):
    import shutil as sh

    from workers.buffer import BufferWorker
    from workers.launch import collect_demos
    from workers.learner import Learner
    from workers.transport import LocalEndpoint

    cfg, run_dir = trained
    sh.copytree(run_dir / "checkpoints", tmp_path / "checkpoints")
    saved = read_checkpoint(tmp_path)["version"]
    buffer = BufferWorker(tmp_path / "segments")
    buffer.add(collect_demos(point_config("demos=2"), PointTask()))
    learner = Learner(cfg, 6, 2, LocalEndpoint(buffer), checkpoints=tmp_path / "checkpoints")
    learner.resume_after_crash()
    try:
        trained = read_checkpoint(tmp_path)["trainer"]["updates"] + 3 * cfg.learner.publish_every
        wait_until(lambda: learner.updates >= trained, 30, "three publishes' worth of updates")
        assert learner.latest()[0] == saved  # trained on, but published nothing: it does not know the number yet
        learner.advance_to(saved + 10)  # the robots already run saved + 10
        wait_until(lambda: learner.latest()[0] != saved, 30, "a publish after advance_to")
    finally:
        learner.stopped.set()
        learner.thread.join()
    events = learner.poll()["events"]
    assert [e["ev"] for e in events][:2] == ["restored", "restarted"]
    assert [e["version"] for e in events if e["ev"] == "weights_published"][0] == saved + 11
