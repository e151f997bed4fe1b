"""`dagger start` on real Ray actors, as a subprocess joining the session's cluster."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from buffers.codec import decode_segment
from buffers.segment_log import SegmentLog
from dagger.events import read_events

pytestmark = pytest.mark.slow


def test_dagger_start_on_ray_then_report_from_the_event_log_alone(ray_cluster, tmp_path):
    import ray

    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # only --address says where to go
    start = subprocess.run(
        [sys.executable, "-m", "dagger.app.cli", "start", "--address", ray_cluster, "--task", "point",
         "--robots", "2", "--steps", "1200", "--run-dir", str(run), "demos=2", "learner.pretrain_updates=50",
         "learner.batch_size=32", "gate.threshold=0.002", "robot.speed=10.0"],
        capture_output=True, text=True, timeout=300, env=env)
    assert start.returncode == 0, start.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] + summary["unrecorded_steps"] == 1200  # --steps is a budget, not a lower bound
    assert summary["takeovers"] > 0 and summary["learner_updates"] > 50

    # --address joined THIS cluster: the run's driver is a job of the session's cluster, and its actors
    # (2 robots, the learner, the buffer) were created there, not in a Ray of its own.
    jobs = [j["JobID"] for j in ray._private.state.jobs() if str(run) in j.get("Entrypoint", "")]
    assert len(jobs) == 1, "the run's driver never joined the session's Ray cluster"
    actors = Counter(a["ActorClassName"] for a in ray._private.state.actors().values() if a["JobID"] == jobs[0])
    assert {name: actors[name] for name in ("RayRobot", "RayLearner", "RayBuffer")} == {
        "RayRobot": 2, "RayLearner": 1, "RayBuffer": 1}

    events = read_events(run / "events.jsonl")
    # the summary's counts, recomputed here from the durable segment log and the raw events
    stored = [s for s in map(decode_segment, SegmentLog.read(run / "segments")) if s.controller != "demo"]
    steps, human = sum(map(len, stored)), sum(len(s) for s in stored if s.controller != "policy")
    assert (summary["steps"], summary["human_steps"]) == (steps, human)
    assert summary["intervention_rate"] == round(human / steps, 4)
    takeovers = [e for e in events if e["ev"] == "takeover"]
    assert summary["takeovers"] == summary["robot_gated_takeovers"] == len(takeovers)
    assert summary["episodes"] == sum(e["ev"] == "episode_end" for e in events)
    assert summary["weights_published"] == sum(e["ev"] == "weights_published" for e in events)
    robots = {e["robot"] for e in events if e["ev"] == "segment"}
    assert robots == {0, 1}
    assert {e["version"] for e in events if e["ev"] == "weights_loaded"} - {1}, "robots never took new weights"
    assert all(v >= 1 for e in events if e["ev"] == "segment" for v, _ in e["versions"])

    copy = tmp_path / "only-events"
    copy.mkdir()
    shutil.copy(run / "events.jsonl", copy / "events.jsonl")
    report = subprocess.run([sys.executable, "-m", "dagger.app.cli", "report", str(copy), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == summary


def test_a_dead_group_actor_is_restarted_with_all_its_robots_and_the_run_goes_on(ray_cluster, tmp_path):
    import threading

    import ray

    from tests.conftest import point_config
    from workers.launch import run_loop
    from workers.ray_fleet import RayFleet
    from workers.robot import INCARNATION_STRIDE

    cfg = point_config("minutes=0.25", "robot.speed=10.0", "robots=3", "robot.per_actor=2")  # groups [0, 1] and [2]
    fleets = []

    def make_fleet(*args):
        fleets.append(RayFleet(*args))
        return fleets[-1]

    killer = threading.Timer(6.0, lambda: ray.kill(fleets[0].robot_handles[0], no_restart=True))
    killer.start()
    summary = run_loop(cfg, tmp_path, make_fleet)  # a run that hung on its dead robots fails at the test's deadline
    killer.join()
    events = read_events(tmp_path / "events.jsonl")
    assert sorted(e["robot"] for e in events if e["ev"] == "robot_lost") == [0, 1]  # the group's, not robot 2
    assert sorted(e["robot"] for e in events if e["ev"] == "robot_restarted") == [0, 1]
    for robot in (0, 1):
        again = [e for e in events if e["ev"] == "segment" and e["robot"] == robot and e["seq"] >= INCARNATION_STRIDE]
        assert again, f"robot {robot} of the replacement group never shipped a segment"
    assert summary["steps"] == sum(e["steps"] for e in events if e["ev"] == "segment")


def test_a_crashed_buffer_and_learner_are_restarted_with_their_state(ray_cluster, tmp_path):
    """Ray restarts the buffer (it replays its log) and the learner (it restores its newest checkpoint); the run
    goes on, versions keep increasing and every human segment a robot reported is in the log."""
    import threading
    import time

    import ray

    from tests.conftest import point_config, wait_until
    from workers.launch import run_loop
    from workers.ray_fleet import RayFleet

    cfg = point_config("minutes=0.4", "robot.speed=10.0", "learner.checkpoint_every=2", "eval.every_versions=0")
    fleets = []

    def make_fleet(*args):
        fleets.append(RayFleet(*args))
        return fleets[-1]

    def kill_mid_run():  # once robots ship segments (a busy machine may take long to start), not during start-up
        log = tmp_path / "events.jsonl"
        wait_until(lambda: log.is_file() and b'"ev":"segment"' in log.read_bytes(), timeout=120, what="a segment")
        time.sleep(2.0)
        ray.kill(fleets[0].buffer.handle, no_restart=False)
        time.sleep(6.0)
        ray.kill(fleets[0].learner_handle, no_restart=False)

    killers = [threading.Thread(target=kill_mid_run)]
    for killer in killers:
        killer.start()
    run_loop(cfg, tmp_path, make_fleet)  # a run that hung on a dead component fails at the test's deadline
    for killer in killers:
        killer.join()
    events = read_events(tmp_path / "events.jsonl")
    assert events[-1]["ev"] == "run_end" and events[-1]["reason"] == "budget"
    down = [e["component"] for e in events if e["ev"] == "component_unavailable"]
    back = [e["component"] for e in events if e["ev"] == "component_back"]
    assert "buffer" in down and "buffer" in back
    restarted = [e for e in events if e["ev"] == "restarted"]
    assert [e["component"] for e in restarted] == ["learner"] and restarted[0]["version"] >= 2
    published = [e["version"] for e in events if e["ev"] == "weights_published"]
    later = [v for e, v in zip([e for e in events if e["ev"] == "weights_published"], published, strict=True)
             if e["t"] > restarted[0]["t"]]
    assert later and min(later) > max(v for v in published if v not in later)  # numbered on, never reused
    stored = {s.key for s in map(decode_segment, SegmentLog.read(tmp_path / "segments"))}
    human = {f"{e['robot']}:{e['seq']}" for e in events if e["ev"] == "segment" and e["controller"] != "policy"}
    assert human and human <= stored


@pytest.mark.parametrize("victim", ["buffer", "learner"])
def test_a_buffer_or_learner_killed_during_start_up_is_waited_for(ray_cluster, tmp_path, victim):
    """Killed before the loop runs (while the driver stores the demonstrations and pretrains), the actor is
    restarted by Ray and the driver's start-up calls wait for it instead of ending the run."""
    import ray

    from tests.conftest import point_config
    from workers.launch import run_loop
    from workers.ray_fleet import RayFleet

    cfg = point_config("steps=400", "robot.speed=10.0", "eval.every_versions=0")

    def make_fleet(*args):
        fleet = RayFleet(*args)
        ray.kill(fleet.buffer.handle if victim == "buffer" else fleet.learner_handle, no_restart=False)
        return fleet

    summary = run_loop(cfg, tmp_path, make_fleet)
    events = read_events(tmp_path / "events.jsonl")
    assert events[-1]["ev"] == "run_end" and events[-1]["reason"] == "budget" and summary["steps"] >= 400
    assert any(e["ev"] == "policy_start" and e["demo_episodes"] > 0 for e in events)


def test_a_learner_killed_as_the_run_ends_is_waited_for_and_the_run_ends_cleanly(ray_cluster, tmp_path):
    """The end of a run asks the learner for its final version; a learner Ray is restarting just then is waited
    for (the fault benchmark found runs that ended without run_end)."""
    import ray

    from tests.conftest import point_config
    from workers.launch import run_loop
    from workers.ray_fleet import RayFleet

    cfg = point_config("steps=600", "robot.speed=10.0", "learner.checkpoint_every=2", "eval.every_versions=1")
    fleets, killed = [], []

    def make_fleet(*args):
        fleets.append(RayFleet(*args))
        return fleets[-1]

    def on_status(status):
        done = sum(r["steps"] for r in status["robots"].values())
        if done >= 550 and not killed:
            ray.kill(fleets[0].learner_handle, no_restart=False)
            killed.append(done)

    run_loop(cfg, tmp_path, make_fleet, on_status=on_status)
    events = read_events(tmp_path / "events.jsonl")
    assert killed and events[-1]["ev"] == "run_end" and events[-1]["reason"] == "budget"
    assert any(e["ev"] == "eval" for e in events)
