"""The whole loop in one process (no Ray): robots, gate, operator, buffer, learner, supervisor."""

import shutil

import numpy as np
import pytest

from buffers.codec import decode_segment
from buffers.segment_log import SegmentLog
from dagger.control import State
from dagger.events import read_events
from dagger.metrics import summarize
from tests.conftest import make_segment, point_config
from tests.one_robot import OneRobot
from workers.buffer import BufferWorker
from workers.launch import run_loop
from workers.learner import Learner
from workers.shipping import RETRY_S, Shipper
from workers.transport import LocalEndpoint


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = point_config()
    return cfg, run_dir, run_loop(cfg, run_dir)


def test_run_reaches_its_budget_and_takes_human_help(finished_run):
    cfg, _, summary = finished_run
    assert cfg.steps <= summary["steps"] < cfg.steps + cfg.robots
    assert summary["takeovers"] > 0 and 0 < summary["human_steps"] < summary["steps"]
    assert summary["robot_gated_takeovers"] == summary["takeovers"]
    assert summary["episodes"] > 0 and summary["learner_updates"] > cfg.learner.pretrain_updates
    assert summary["weights_published"] > 1


def test_every_logged_step_carries_the_version_that_acted(finished_run):
    _, run_dir, summary = finished_run
    segments = [decode_segment(p) for p in SegmentLog.read(run_dir / "segments")]
    fleet = [s for s in segments if s.controller != "demo"]
    assert sum(len(s) for s in fleet) == summary["steps"]
    assert all(s.version.min() >= 1 for s in fleet)
    published = max(e["version"] for e in read_events(run_dir / "events.jsonl") if e["ev"] == "weights_published")
    assert max(s.version.max() for s in fleet) <= published
    assert len({s.key for s in segments}) == len(segments)


def test_report_needs_only_the_event_log(finished_run, tmp_path):
    _, run_dir, summary = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for path in copy.iterdir():
        if path.name != "events.jsonl":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert summarize(read_events(copy / "events.jsonl")) == summary
    # and the counts are the run's own: recomputed from the durable segment log and the raw events
    stored = [s for s in map(decode_segment, SegmentLog.read(run_dir / "segments")) if s.controller != "demo"]
    steps, human = sum(map(len, stored)), sum(len(s) for s in stored if s.controller != "policy")
    assert (summary["steps"], summary["human_steps"]) == (steps, human)
    assert summary["intervention_rate"] == round(human / steps, 4)
    events = read_events(run_dir / "events.jsonl")
    assert summary["takeovers"] == sum(e["ev"] == "takeover" for e in events)
    episodes = [e for e in events if e["ev"] == "episode_end"]
    assert summary["episodes"] == len(episodes) and summary["successes"] == sum(e["success"] for e in episodes)


def robot_with_weights(tmp_path, *overrides, **kwargs):
    cfg = point_config(*overrides)
    buffer = BufferWorker(tmp_path / "segments")
    robot = OneRobot(0, cfg, LocalEndpoint(buffer), **kwargs)
    learner = Learner(cfg, robot.robot.obs_dim, robot.robot.act_dim, LocalEndpoint(buffer))
    learner.publish()
    robot.set_weights(learner.latest()[1])
    return robot, buffer


def test_a_robot_waiting_for_help_holds_still(tmp_path):
    robot, _ = robot_with_weights(tmp_path, "gate.threshold=0.0", "operator.reaction_s=0.15",
                                  "operator.reaction_sd_s=0.0")
    robot.tick()  # loads weights, starts an episode, asks (any spread > 0)
    assert robot.state is State.WAITING
    obs, steps = robot.obs.copy(), robot.total_steps
    for _ in range(20):
        robot.tick()
    assert robot.state is State.WAITING and robot.total_steps == steps
    np.testing.assert_array_equal(robot.obs, obs)
    robot.assign(0)
    reaction_ticks = 3  # 0.15 s at the point task's 0.05 s period
    for _ in range(reaction_ticks + 1):
        robot.tick()
    assert robot.state is State.OPERATOR and robot.total_steps == steps + 1
    events = robot.poll()["events"]
    kinds = [e["ev"] for e in events]
    assert kinds.index("help_requested") < kinds.index("takeover")


def test_a_robot_takes_only_newer_weights(tmp_path):
    robot, _ = robot_with_weights(tmp_path)
    robot.tick()
    assert robot.policy.version == 1
    old = robot.policy.policy.weights()
    robot.set_weights({**old, "version": 0})
    robot.tick()
    assert robot.policy.version == 1
    assert [e["version"] for e in robot.poll()["events"] if e["ev"] == "weights_loaded"] == [1]


class FlakyBuffer:
    """A real buffer whose first two add() calls fail, as a crashed buffer actor's would."""

    def __init__(self, buffer):
        self.buffer, self.failures = buffer, 2

    def add(self, segments):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("buffer actor died")
        return self.buffer.add(segments)


def test_a_human_segment_is_kept_until_the_buffer_acknowledges_it_and_the_robot_holds_meanwhile(tmp_path):
    now = [1000.0]
    robot, buffer = robot_with_weights(tmp_path, "gate.threshold=0.0", "operator.reaction_s=0.0",
                                       "operator.correction_steps=3", "robot.ship_every_s=3600", clock=lambda: now[0])
    robot.shipper.buffer = LocalEndpoint(FlakyBuffer(buffer))
    robot.tick()  # asks for help: the (empty) policy segment is not shipped
    robot.assign(0)
    for _ in range(3):
        robot.tick()  # three operator steps, then the operator hands back: the send fails
    assert list(robot.shipper.unacked) == ["0:0"] and buffer.replay.stats()["human_steps"] == 0
    assert "buffer actor died" in robot.shipper.down
    steps = robot.total_steps
    robot.tick()  # storage is down: the robot holds, and the segment waits RETRY_S before it is sent again
    assert robot.total_steps == steps and robot.ctl.storage_down and buffer.replay.stats()["human_steps"] == 0
    now[0] += RETRY_S
    robot.tick()  # sent again: refused again (said once)
    assert robot.total_steps == steps and list(robot.shipper.unacked) == ["0:0"]
    now[0] += RETRY_S
    robot.tick()  # sent again: stored
    assert buffer.replay.stats()["human_steps"] == 3
    robot.tick()  # the acknowledgement arrives
    robot.tick()  # storage is back: the robot goes on (and asks at once: threshold 0)
    assert not robot.shipper.unacked and not robot.shipper.down and not robot.ctl.storage_down
    kinds = [e["ev"] for e in robot.poll()["events"]]
    assert (kinds.count("ship_failed"), kinds.count("storage_hold"), kinds.count("storage_resumed"),
            kinds.count("stored")) == (1, 1, 1, 1)
    assert kinds.index("storage_hold") < kinds.index("storage_resumed") < len(kinds) - 1 - kinds[::-1].index(
        "help_requested")


def test_human_gate_takeovers_are_operator_initiated(tmp_path):
    summary = run_loop(point_config("gate.name=human", "steps=600", "operator.intervene_tol=0.01"), tmp_path)
    assert summary["takeovers"] > 0
    assert summary["human_gated_takeovers"] == summary["takeovers"] and summary["robot_gated_takeovers"] == 0


def test_auto_gate_threshold_is_set_from_the_fleet(tmp_path):
    run_loop(point_config("gate.name=auto", "gate.alpha=0.1", "steps=1200", "gate.threshold=1.0"), tmp_path)
    asked = [e["threshold"] for e in read_events(tmp_path / "events.jsonl") if e["ev"] == "help_requested"]
    assert asked, "the auto gate never asked for help"
    assert all(t != 1.0 for t in asked[-5:]), "robots never received the fleet's quantile threshold"


def test_ensembledagger_gate_runs_in_the_loop_with_the_task_expert(tmp_path):
    summary = run_loop(point_config("gate.name=ensembledagger", "steps=600", "gate.tau=0.02"), tmp_path)
    assert summary["robot_gated_takeovers"] > 0 and summary["human_steps"] > 0


@pytest.mark.parametrize("rate, updates, versions", [(0.5, 5, 2), (2.0, 20, 10), (0.0, 10, 5)])
def test_in_process_learner_trains_at_its_rate_of_simulated_time(tmp_path, rate, updates, versions):
    """learner.max_updates_per_s counts simulated seconds in-process, as the learner's thread counts real ones on
    Ray; 0 (no cap) is one update a control period. Publishes come every publish_every updates, as on Ray."""
    from dagger.tasks import make_task
    from workers.launch import LocalFleet, collect_demos

    task = make_task("point")
    period = task.dt / point_config().robot.speed  # 1 ms: a control period at 50x real time
    cfg = point_config(f"learner.max_updates_per_s={rate / period}", "learner.publish_every=2")
    fleet = LocalFleet(cfg, tmp_path, task.obs_dim, task.act_dim)
    assert fleet.clock.period == period
    fleet.buffer_worker.add(collect_demos(cfg, task))
    for _ in range(10):
        fleet.between()
    assert fleet.learner_worker.updates == updates
    assert fleet.learner_worker.policy.version == versions
    fleet.stop()


@pytest.mark.parametrize("task, gate, asks_at", [("reach", "ensemble", 40), ("reach", "never", None),
                                                 ("reacher", "ensemble", None)])
def test_a_robot_asks_once_when_its_episodes_time_runs_out(tmp_path, task, gate, asks_at):
    """Meta-World reach ends at success or after 80 steps: with gate.overtime 0.5 a failing policy (untrained, and
    never unsure enough for the gate) asks at step 40 of the episode, because the time runs out. Reacher runs its
    50 steps whatever happens: nothing to run out of. The never gate (behaviour cloning) never asks."""
    from dagger.config import load_config

    cfg = load_config(None, [f"task={task}", f"gate.name={gate}", "gate.threshold=1e9", "gate.overtime=0.5"])
    buffer = BufferWorker(tmp_path / "segments")
    robot = OneRobot(0, cfg, LocalEndpoint(buffer))
    learner = Learner(cfg, robot.robot.obs_dim, robot.robot.act_dim, LocalEndpoint(buffer))
    learner.publish()
    robot.set_weights(learner.latest()[1])
    for _ in range(60):
        robot.tick()
    asked = [e for e in robot.poll()["events"] if e["ev"] == "help_requested"]
    if asks_at is None:
        assert not asked and robot.state is not State.WAITING
    else:
        assert [e["reason"] for e in asked] == ["overtime"] and robot.state is State.WAITING
        assert robot.total_steps == asks_at and robot.episodes == 1


def test_a_refused_correction_is_sent_again_though_a_later_one_was_stored(tmp_path):
    now = [1000.0]
    buffer = BufferWorker(tmp_path / "segments")
    flaky = FlakyBuffer(buffer)
    flaky.failures = 1
    said = []
    shipper = Shipper(LocalEndpoint(flaky), every_s=3600, clock=lambda: now[0],
                      emit=lambda kind, **fields: said.append(kind))
    shipper.add(make_segment(0, 5, "operator:0"))  # refused
    shipper.ship()
    assert shipper.down and shipper.resend == {"0:0"}
    shipper.add(make_segment(1, 3, "operator:0"))  # stored: the first still waits to be sent again
    shipper.ship()
    assert buffer.replay.stats()["human_steps"] == 3 and shipper.down
    now[0] += RETRY_S
    shipper.ship()
    shipper.ship()
    assert buffer.replay.stats()["human_steps"] == 8 and not shipper.unacked and not shipper.down
    assert said.count("stored") == 2 and said.count("ship_failed") == 1
