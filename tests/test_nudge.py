"""Nudge mode (teleop_devices.nudge): the operator's input as a bounded residual on the policy's action, on a real
RobotWorker (point task, actions in [-1, 1]) with a controlled clock: the bound and ramp, escalation to a takeover,
the safety stops, what is stored, and the scripted operator nudging toward the expert."""

import numpy as np
import pytest

from dagger.app.words import nudging, with_operator
from dagger.config import ConfigError
from dagger.control import State
from teleop_devices.nudge import Nudge, half_range
from teleop_devices.reading import Command
from tests.conftest import point_config
from tests.one_robot import offered_robot, run, send, stop_events

NUDGE = ("gate.threshold=0.0", "safety.max_age_s=0.1", "safety.ramp_s=0.2", "operator.mode=nudge",
         "operator.nudge_bound=0.3", "operator.nudge_to_takeover_s=0.42")


def offered(tmp_path, *overrides, remote=True):
    """A robot that has asked for help and been given to operator 0 (remote: a device at the station)."""
    robot = offered_robot(point_config(*NUDGE, *overrides), tmp_path, remote)
    assert robot.state is State.OPERATOR
    robot.poll()
    return robot


@pytest.fixture
def robot(tmp_path):
    return offered(tmp_path)


def residuals(robot):
    """Per recorded step of the open segment: executed action minus the policy's (the stored residual)."""
    return np.array([s["action"] - s["policy_action"] for s in robot.ctl.steps])


def test_the_bound_is_a_fraction_of_each_dims_half_range():
    assert half_range(lambda a: np.clip(a, [-1.0, 0.0], [1.0, 4.0]), 2) == pytest.approx([1.0, 2.0])


def test_a_push_is_clipped_to_the_bound_and_ramped_in():
    nudge = Nudge(np.array([0.3, 0.3]), ramp_s=0.2, to_takeover_s=10.0, relative=False)
    push = Command(np.zeros(2), np.array([0.2, -0.9]))
    got = [nudge.action(push, np.array([0.5, 0.5]), np.zeros(2), t) for t in (0.0, 0.1, 0.2, 0.3)]
    expected = [np.array([0.5, 0.5]) + a * np.array([0.2, -0.3]) for a in (0.0, 0.5, 1.0, 1.0)]
    np.testing.assert_allclose(got, expected)
    assert not nudge.escalated


def test_a_scripted_operators_target_nudges_by_its_gap_to_the_policy():
    nudge = Nudge(np.array([0.3, 0.3]), ramp_s=0.0, to_takeover_s=10.0, relative=True)
    action = nudge.action(Command(np.zeros(2), np.array([0.6, 0.1])), np.array([0.5, 0.5]), np.zeros(2), 0.0)
    np.testing.assert_allclose(action, [0.6, 0.2])  # +0.1, and -0.4 clipped to -0.3


def test_a_push_held_at_the_bound_becomes_a_takeover_ramped_from_the_last_action():
    nudge = Nudge(np.array([0.3]), ramp_s=0.2, to_takeover_s=0.5, relative=False)
    push = Command(np.zeros(1), np.array([0.8]))
    assert nudge.action(push, np.zeros(1), np.zeros(1), 0.0) == pytest.approx([0.0])  # ramp starts
    nudge.action(Command(np.zeros(1), np.array([0.1])), np.zeros(1), np.zeros(1), 0.3)  # let go: the clock restarts
    for t in (0.4, 0.6, 0.85):
        nudge.action(push, np.zeros(1), np.zeros(1), t)
        assert not nudge.escalated
    assert nudge.action(push, np.zeros(1), np.array([0.3]), 0.9) == pytest.approx([0.3]) and nudge.escalated
    assert nudge.action(push, np.zeros(1), np.array([0.3]), 1.0) == pytest.approx([0.55]) and not nudge.escalated


def test_a_push_at_the_bound_nudges_on_and_one_beyond_it_takes_over():
    """Keys are all or nothing: keyboard.scale at the bound only nudges, above it a held key takes over."""
    at, beyond = (Nudge(np.array([0.3]), ramp_s=0.0, to_takeover_s=0.5, relative=False) for _ in range(2))
    for t in np.arange(0.0, 2.0, 0.05):
        at.action(Command(np.zeros(1), np.array([0.3])), np.zeros(1), np.zeros(1), t)
        beyond.action(Command(np.zeros(1), np.array([0.5])), np.zeros(1), np.zeros(1), t)
    assert at.taken_over is None and beyond.taken_over == pytest.approx(0.5)


def test_a_device_nudge_adds_to_the_policy_and_is_stored_as_a_nudge(robot):
    run(robot, 6, action=(0.2, -0.1))
    assert robot.state is State.OPERATOR and robot.ctl.controller == "nudge:0"
    alpha = np.minimum(1.0, np.arange(6) * 0.05 / 0.2)[:, None]
    policy = np.array([s["policy_action"] for s in robot.ctl.steps])
    expected = np.clip(policy + alpha * np.array([0.2, -0.1]), -1, 1) - policy
    np.testing.assert_allclose(residuals(robot), expected, atol=1e-6)
    [takeover] = [e for e in robot.poll()["events"] if e["ev"] == "takeover"]
    assert takeover["mode"] == "nudge"


def test_a_nudge_held_at_the_bound_escalates_to_a_takeover(robot):
    run(robot, 9, action=(0.9, 0.0))
    assert robot.ctl.controller == "nudge:0" and len(robot.ctl.steps) == 9
    assert np.abs(residuals(robot)).max() <= 0.3 + 1e-6
    last = robot.last_action.copy()
    run(robot, 1, action=(0.9, 0.0))
    assert robot.ctl.controller == "operator:0"
    np.testing.assert_allclose(robot.last_action, last, atol=1e-9)  # the takeover ramps from where it was
    run(robot, 5, action=(0.9, 0.0))
    np.testing.assert_allclose(robot.last_action, [0.9, 0.0], atol=1e-9)
    events = robot.poll()["events"]
    assert [e["ev"] for e in events if e["ev"] == "nudge_escalated"] == ["nudge_escalated"]
    segments = [(e["controller"], e["reason"], e["steps"]) for e in events if e["ev"] == "segment"]
    assert segments[0] == ("nudge:0", "escalated", 9)


@pytest.mark.parametrize("stop", ["stale_input", "deadman_released", "e_stop", "device_lost"])
def test_every_safety_stop_holds_a_nudged_robot(robot, stop):
    run(robot, 3, action=(0.1, 0.1))
    if stop == "stale_input":
        robot.clock_.t += 0.06
        robot.tick()
    elif stop == "deadman_released":
        run(robot, 1, deadman=False, action=None)
    elif stop == "e_stop":
        run(robot, 1, e_stop=True)
    else:
        robot.operator_lost(0)
        robot.tick()
    assert robot.state is State.WAITING and robot.total_steps == 3
    assert ("handback", stop) in stop_events(robot)
    run(robot, 3, feed=False)
    assert robot.total_steps == 3  # it holds: a stop never leaves the policy acting alone


def test_nothing_moves_until_the_nudging_operator_engages(robot):
    run(robot, 4, feed=False)
    assert robot.state is State.OPERATOR and robot.total_steps == 0


def test_a_leader_arm_takes_over_even_in_nudge_mode(tmp_path):
    robot = offered(tmp_path, "operator.kinds=[leader]")
    assert robot.ctl.nudge is None


def test_the_scripted_operator_nudges_toward_the_expert(tmp_path):
    robot = offered(tmp_path, "operator.noise=0", "operator.reaction_s=0", "operator.reaction_sd_s=0",
                    "operator.nudge_to_takeover_s=1000", remote=False)  # safety.ramp_s=0.2: no ramp for it
    gaps_before, gaps_after = [], []
    for _ in range(5):
        expert = robot.robot.expert_action()
        robot.tick()
        step = robot.ctl.steps[-1]
        gaps_before.append(np.abs(expert - step["policy_action"]).max())
        gaps_after.append(np.abs(expert - step["action"]).max())
        np.testing.assert_allclose(step["action"] - step["policy_action"],
                                   np.clip(expert - step["policy_action"], -0.3, 0.3), atol=1e-6)
        robot.clock_.t += 0.05
    assert robot.ctl.controller == "nudge:0"
    assert all(a <= b + 1e-6 for a, b in zip(gaps_after, gaps_before, strict=True))


@pytest.mark.parametrize("override, key", [("operator.mode=push", "operator.mode"),
                                           ("operator.nudge_bound=0", "operator.nudge_bound"),
                                           ("operator.nudge_to_takeover_s=-1", "operator.nudge_to_takeover_s")])
def test_bad_nudge_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        point_config(override)


def test_the_console_and_page_say_who_nudges():
    assert with_operator({"controller": "nudge:2"}, 2) == "operator 2 nudging"
    assert with_operator({"controller": "operator:2"}, 2) == "operator 2 in control"
    assert nudging({"controller": "nudge:2"}) and not nudging({"controller": "operator:2"})


def test_a_scripted_operator_pinned_at_the_bound_takes_over_with_the_expert(tmp_path):
    robot = offered(tmp_path, "operator.noise=0", "operator.reaction_s=0", "operator.reaction_sd_s=0",
                    "operator.nudge_bound=0.001", "operator.nudge_to_takeover_s=0.1", remote=False)
    for _ in range(3):  # 0.1 task seconds is 0.002 s on this robot's clock (robot.speed=50): the second step escalates
        expert = robot.robot.expert_action()
        robot.tick()
        robot.clock_.t += 0.05
    assert robot.ctl.controller == "operator:0"
    np.testing.assert_allclose(robot.ctl.steps[-1]["action"], robot.robot.clip(expert), atol=1e-6)
    assert [e["ev"] for e in robot.poll()["events"] if e["ev"] == "nudge_escalated"] == ["nudge_escalated"]


def test_a_nudged_robot_holds_while_the_policys_answer_is_late(robot):
    run(robot, 2, action=(0.1, 0.1))
    send(robot, action=(0.1, 0.1))
    robot.ctl.act(TimeoutError("policy late"))
    assert robot.total_steps == 2 and robot.state is State.OPERATOR
