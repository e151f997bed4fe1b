"""Robot groups: one RobotWorker drives K robots with one batched policy call a period, and each robot does exactly
what it does alone; a fault in one robot holds that robot, not its group."""

import numpy as np
import pytest

from dagger.control import INCARNATION_STRIDE, State
from dagger.help_queue import Assignment
from tests.conftest import point_config, wait_until
from workers.buffer import BufferWorker
from workers.learner import Learner
from workers.robot import RobotWorker
from workers.transport import LocalEndpoint

TICKS = 160


class Recorder:
    """Where the robots ship: keeps every segment by key (acknowledged at once)."""

    def __init__(self):
        self.segments = {}

    def add(self, segments):
        self.segments.update((s.key, s) for s in segments)
        return [s.key for s in segments]


def drive(workers, cfg, tmp_path, name):
    """Ticks the workers on one simulated clock, giving every waiting robot operator 0 (a simulated person) at once;
    returns every segment shipped, by key, and each robot's events."""
    shipped = Recorder()
    clock = {"t": 1000.0}
    groups = [RobotWorker(first, cfg, LocalEndpoint(shipped), clock=lambda: clock["t"], count=count)
              for first, count in workers]
    learner = Learner(cfg, 6, 2, LocalEndpoint(BufferWorker(tmp_path / name)))
    learner.publish()
    events = {}
    for group in groups:
        group.set_weights(learner.latest()[1])
    for _ in range(TICKS):
        for group in groups:
            group.tick()
            for robot, ctl in group.controllers.items():
                if ctl.state is State.WAITING:
                    group.assign(Assignment(robot, 0, False, 1.0, False, 0.0))
        clock["t"] += 0.05
    for group in groups:
        for result in group.stop():
            events.setdefault(result["status"]["robot"], []).extend(result["events"])
    return shipped.segments, events


def same(a, b):
    """Two events alike but for their time: equal fields, numbers to float rounding."""
    assert a.keys() == b.keys(), (a, b)
    for key in a.keys() - {"t"}:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (key, a, b)
        else:
            assert a[key] == b[key], (key, a, b)
    return True


def test_a_group_of_three_acts_exactly_as_three_robots_alone(tmp_path):
    cfg = point_config("robots=3", "gate.threshold=0.02", "operator.correction_steps=5")
    grouped, grouped_events = drive([(0, 3)], cfg, tmp_path, "grouped")
    alone, alone_events = drive([(0, 1), (1, 1), (2, 1)], cfg, tmp_path, "alone")
    kinds = [e["ev"] for robot in grouped_events.values() for e in robot]
    assert kinds.count("takeover") >= 3 and kinds.count("episode_end") >= 3  # both controllers and episodes ran
    for robot in range(3):  # the same events, numbers to float rounding (a batched matmul sums in another order)
        assert [same(a, b) for a, b in zip(grouped_events[robot], alone_events[robot], strict=True)]
    assert sorted(grouped) == sorted(alone) and len(grouped) > 6
    for key, a in grouped.items():
        b = alone[key]
        np.testing.assert_allclose(a.obs, b.obs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.action, b.action, rtol=1e-5, atol=1e-6)
        assert a.controller == b.controller


def started(tmp_path, count, *overrides, shipped=None, **kwargs):
    """A group of `count` robots (gate never) with a first published version in its mailbox."""
    cfg = point_config(f"robots={count}", "gate.name=never", *overrides)
    group = RobotWorker(0, cfg, LocalEndpoint(shipped or BufferWorker(tmp_path / "segments")), count=count, **kwargs)
    learner = Learner(cfg, 6, 2, LocalEndpoint(BufferWorker(tmp_path / "other")))
    learner.publish()
    group.set_weights(learner.latest()[1])
    return group


def test_one_batched_policy_call_a_period_for_the_robots_that_need_it(tmp_path):
    group = started(tmp_path, 4)
    calls = []
    real = group.policy.answers
    group.policy.answers = lambda asking: calls.append([c.id for c in asking]) or real(asking)
    group.allow(2, 0, 1)  # robot 2 may not step: it needs no answer
    for _ in range(30):
        group.tick()
    assert calls and all(ids == [0, 1, 3] for ids in calls[1:])  # one call per period, robot 2 left out
    assert len(calls) == 30
    steps = {r: c.total_steps for r, c in group.controllers.items()}
    assert steps[2] == 0 and all(steps[r] == 30 for r in (0, 1, 3))


class Broken(RuntimeError):
    pass


def test_a_robot_whose_simulator_raises_holds_alone_and_is_replaced(tmp_path):
    group = started(tmp_path, 3)
    for _ in range(5):
        group.tick()
    sick = group.controllers[1]

    def explode(action):
        raise Broken("the simulator went away")

    sick.robot.send_action = explode
    for _ in range(10):
        group.tick()
    polls = {p["status"]["robot"]: p for p in group.poll()}
    assert "the simulator went away" in polls[1]["status"]["failure"]
    assert not polls[0]["status"]["failure"] and not polls[2]["status"]["failure"]
    assert [e["ev"] for e in polls[1]["events"]].count("loop_failed") == 1
    assert polls[0]["status"]["steps"] == polls[2]["status"]["steps"] == 15  # the others never missed a period
    assert polls[1]["status"]["steps"] == 5  # the sick one stopped where it failed
    group.replace(1, incarnation=1)
    for _ in range(10):
        group.tick()
    fresh = group.controllers[1]
    assert fresh is not sick and not fresh.failure and fresh.total_steps == 10  # reset and stepped each period
    polls = {p["status"]["robot"]: p for p in group.stop()}
    fresh_segments = [e for e in polls[1]["events"] if e["ev"] == "segment" and e["seq"] >= INCARNATION_STRIDE]
    assert sum(e["steps"] for e in fresh_segments) == 10  # numbered as the new incarnation's


@pytest.mark.parametrize("count", [1, 3])
def test_every_robot_of_a_group_stops_at_its_own_budget_share(tmp_path, count):
    group = started(tmp_path, count, budgeted=True)
    for robot in range(count):
        group.allow(robot, 5 + robot, 1)
    for _ in range(20):
        group.tick()
    assert [c.total_steps for c in group.controllers.values()] == [5 + r for r in range(count)]


def test_beside_the_control_step_each_robot_acts_on_its_previous_observations_answer(tmp_path):
    shipped = Recorder()
    group = started(tmp_path, 2, "robot.infer=beside", shipped=shipped)
    beside = group.policy.beside
    for _ in range(60):
        group.tick()
        wait_until(lambda: beside.request is None)  # the thread has answered this period's observations
    group.stop()
    policy = group.policy.policy  # the ensemble's action is a function of the observation alone

    def acts(obs):
        return np.stack([a.action for a in policy.act_batch(obs, None, [policy.stream(0) for _ in obs])])

    checked = 0
    for seg in shipped.segments.values():
        first = seg.step == 0  # an episode's first step: the robot held until its answer came, then acted on it
        np.testing.assert_allclose(seg.policy_action[first], acts(seg.obs[first]), rtol=1e-5, atol=1e-6)
        later = np.flatnonzero(~first[1:]) + 1  # any other step: on the answer to the state one step before
        np.testing.assert_allclose(seg.policy_action[later], acts(seg.obs[later - 1]), rtol=1e-5, atol=1e-6)
        checked += first.sum() + len(later)
    assert checked >= 2 * 50
    assert 0 < group.policy.latency_ms


def test_a_paced_group_starts_one_episode_a_period_and_every_robot_gets_its_turn(tmp_path):
    group = started(tmp_path, 3)
    group.resets_per_period = 1  # as its own paced loop runs it
    starts = []
    for _ in range(4):
        group.tick()
        starts.append(sorted(r for r, c in group.controllers.items() if c.episodes))
    assert starts == [[0], [0, 1], [0, 1, 2], [0, 1, 2]]
    assert [c.total_steps for c in group.controllers.values()] == [4, 3, 2]  # each stepped once it had started


def test_remote_operators_get_frames_only_of_robots_waiting_for_help_or_helped(tmp_path):
    cfg = point_config("robots=3", "gate.threshold=1e9")  # nobody asks on their own: robot 1 is made to wait below
    group = RobotWorker(0, cfg, LocalEndpoint(Recorder()), clock=lambda: 1000.0, count=3)
    learner = Learner(cfg, 6, 2, LocalEndpoint(BufferWorker(tmp_path / "b")))
    learner.publish()
    group.set_weights(learner.latest()[1])
    group.want_frames(1e-9, True)
    for _ in range(3):
        group.tick()
    assert not group.frames and all(c.state is State.AUTONOMOUS for c in group.controllers.values())
    ctl = group.controllers[1]
    ctl.wait_for_operator(ctl.last_out, "test")
    group.tick()
    assert set(group.frames) == {1}
    group.want_frames(1e-9, False)
    group.tick()
    assert set(group.frames) == {0, 1, 2}
