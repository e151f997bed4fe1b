"""A dead loop inside a component is seen, reported and acted on, never silent."""

import time

import pytest

from dagger.events import EventLog, read_events
from tests.conftest import point_config, wait_until
from tests.one_robot import Workers
from workers.buffer import BufferWorker
from workers.launch import run_loop
from workers.learner import Learner
from workers.robot import RobotWorker
from workers.roles import SampleSource
from workers.supervisor import Supervisor
from workers.transport import Done, LocalEndpoint


class BrokenBuffer:
    """A buffer whose sampling raises, as a bug in training would."""

    transient = ()

    def call(self, method, *args):
        if method is SampleSource.sample:
            return Done(error=ZeroDivisionError("batch of 0"))
        return Done({})


def test_a_dead_training_thread_is_reported_in_the_learners_poll():
    learner = Learner(point_config(), 6, 2, BrokenBuffer())
    learner.start()
    wait_until(lambda: not learner.thread.is_alive())
    poll = learner.poll()
    assert poll["status"]["failure"] == "ZeroDivisionError: batch of 0"
    assert [(e["ev"], e["component"], e["error"]) for e in poll["events"]] == [
        ("loop_failed", "learner", "ZeroDivisionError: batch of 0")]


def test_a_dead_control_loop_stops_the_robot_and_is_reported(tmp_path, monkeypatch):
    robot = RobotWorker(0, point_config(), LocalEndpoint(BufferWorker(tmp_path)))
    ticks = []

    def tick():
        ticks.append(1)
        if len(ticks) == 3:
            raise RuntimeError("sensor gone")

    monkeypatch.setattr(robot, "tick", tick)
    robot.start()
    wait_until(lambda: not robot.thread.is_alive())
    time.sleep(0.05)
    assert len(ticks) == 3  # nothing steps after the failure
    [poll] = robot.poll()
    assert poll["status"]["group_failure"] == "RuntimeError: sensor gone"
    assert [e["ev"] for e in poll["events"]] == ["loop_failed"]


def test_a_learner_that_fails_mid_run_stops_the_run_with_its_reason(tmp_path, monkeypatch):
    calls = []
    real_train = Learner.train

    def train(self, n):
        calls.append(n)
        if len(calls) == 200:
            raise FloatingPointError("loss is nan")
        return real_train(self, n)

    monkeypatch.setattr(Learner, "train", train)
    cfg = point_config("steps=100000", "eval.every_versions=0")
    summary = run_loop(cfg, tmp_path)
    assert summary["steps"] < 5000  # stopped soon after, not at the budget
    events = read_events(tmp_path / "events.jsonl")
    end = events[-1]
    assert end["ev"] == "run_end" and end["reason"] == "failed"
    assert end["error"] == "learner failed: FloatingPointError: loss is nan"
    failed = [e for e in events if e["ev"] == "loop_failed"]
    assert len(failed) == 1 and failed[0]["component"] == "learner"
    assert len(calls) == 200  # training stopped at the failure; the robots were stopped, not left running


@pytest.mark.parametrize("setting", ["learner.updates_per_fetch=0", "learner.publish_every=0"])
def test_settings_that_would_kill_training_are_refused_up_front(setting):
    from dagger.config import ConfigError

    with pytest.raises(ConfigError, match=setting.split("=")[0]):
        point_config(setting)


def test_a_robot_replaced_mid_handover_leaves_the_supervisor_serving_the_others(tmp_path):
    from dagger.events import EventLog
    from workers.supervisor import Supervisor

    cfg = point_config("robots=2")
    buffer = LocalEndpoint(BufferWorker(tmp_path / "segments"))
    weights = LocalEndpoint(type("Weights", (), {"latest": lambda self: (0, None)})())
    fleet = Workers([RobotWorker(i, cfg, buffer) for i in range(2)], buffer, learner=weights,
                    restart=lambda group: RobotWorker(group, cfg, buffer))
    log = EventLog(tmp_path / "events.jsonl")
    sup = Supervisor(cfg, fleet, log)
    ask = {"ev": "help_requested", "score": 0.5, "threshold": 0.1, "reason": "ensemble"}

    def robot_says(robot, *events):
        sup.handle({"events": [{"robot": robot, **e} for e in events], "states": [],
                    "status": {"robot": robot, "steps": 0}})
        sup.allocate()

    robot_says(0, {**ask, "t": 1.0})
    assert sup.help.serving == {0: {0}}
    dead = sup.group(0)
    sup.group_lost(0, RuntimeError("actor died"))
    assert sup.help.serving == {0: set()} and sup.group(0) is not dead
    # what the replaced robot's stream may still carry: a handback by nobody (-1) and one by the freed operator
    robot_says(0, {"ev": "handback", "t": 2.0, "operator": -1, "reason": "episode_end"},
               {"ev": "assign_refused", "t": 2.0, "operator": 0, "state": "starting"})
    robot_says(1, {**ask, "t": 3.0})
    log.file.flush()
    events = read_events(tmp_path / "events.jsonl")
    assert [(e["robot"], e["operator"]) for e in events if e["ev"] == "operator_assigned"] == [(0, 0), (1, 0)]
    assert [e["ev"] for e in events if e["robot"] == 0 and e["ev"].startswith("robot_")] == ["robot_lost",
                                                                                          "robot_restarted"]


def test_a_replaced_robots_last_status_does_not_spend_its_successors_budget(tmp_path):
    # the failed controller's status can come in again after the supervisor replaced it (its group drives on and
    # polls before the replacement is in place); its steps must not be taken for the new incarnation's, or the new
    # one is allowed what the old one had taken on top of its own and the fleet overruns the budget
    cfg = point_config("robots=2", "steps=1000")
    buffer = LocalEndpoint(BufferWorker(tmp_path / "segments"))
    fleet = Workers([RobotWorker(i, cfg, buffer) for i in range(2)], buffer)
    sup = Supervisor(cfg, fleet, EventLog(tmp_path / "events.jsonl"))

    def status(robot, incarnation, steps, failure=""):
        return {"events": [], "states": [], "status": {"robot": robot, "incarnation": incarnation, "steps": steps,
                                                       "allowed": steps, "allow_seq": 1, "state": "autonomous",
                                                       "failure": failure}}

    for robot in range(2):
        sup.handle(status(robot, 0, 300))
    sup.check_failures(0, [status(0, 0, 300, failure="simulator raised")["status"]])
    assert sup.budget.taken == 600
    sup.handle(status(0, 0, 300, failure="simulator raised"))  # its last words, again, before the successor's first
    assert sup.budget.taken == 600
    lead = sup.budget.lead
    sup.share_budget()  # the successor, which has taken nothing, is allowed a lead's worth, not 300 more
    assert sup.budget.shares[0].bound <= lead
