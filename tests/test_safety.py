"""The safety rules for human operators, on a real RobotWorker (point task) with a controlled clock."""

import numpy as np
import pytest

from dagger.control import State
from tests.conftest import point_config
from tests.one_robot import offered_robot, run, send, stop_events


@pytest.fixture
def robot(tmp_path):
    """A robot that has asked for help and been given to remote operator 0."""
    robot = offered_robot(point_config("gate.threshold=0.0", "safety.max_age_s=0.1", "safety.ramp_s=0.2"), tmp_path)
    assert robot.state is State.OPERATOR
    robot.poll()
    return robot


def test_nothing_moves_until_the_operator_engages(robot):
    steps = robot.total_steps
    for _ in range(10):
        robot.tick()
        robot.clock_.t += 0.05
    assert robot.state is State.OPERATOR and robot.total_steps == steps


def test_stale_input_stops_the_robot_within_one_control_period(robot):
    run(robot, 3)
    steps = robot.total_steps
    assert steps == 3
    robot.clock_.t += 0.06  # the last reading is now 0.11 s old
    robot.tick()
    assert robot.state is State.WAITING and robot.total_steps == steps
    assert stop_events(robot) == [("handback", "stale_input"), ("help_requested", "stale_input")]
    run(robot, 5, feed=False)
    assert robot.total_steps == steps  # it holds; it never falls back to the policy


def test_device_lost_requeues_the_robot(robot):
    run(robot, 2)
    robot.operator_lost(0)
    robot.tick()
    assert robot.state is State.WAITING and robot.total_steps == 2
    assert stop_events(robot) == [("handback", "device_lost"), ("help_requested", "device_lost")]


def test_losing_another_operators_device_changes_nothing(robot):
    run(robot, 2)
    robot.operator_lost(1)
    run(robot, 1)
    assert robot.state is State.OPERATOR and robot.total_steps == 3


def test_deadman_released_without_hand_back_holds(robot):
    run(robot, 2)
    run(robot, 1, deadman=False, action=None)
    assert robot.state is State.WAITING and robot.total_steps == 2
    assert stop_events(robot) == [("handback", "deadman_released"), ("help_requested", "deadman_released")]


def test_e_stop(robot):
    run(robot, 2)
    run(robot, 1, e_stop=True)
    assert robot.state is State.WAITING and robot.total_steps == 2
    assert ("handback", "e_stop") in stop_events(robot)


def test_handover_ramps_without_a_jump(robot):
    robot.ctl.last_action = np.array([-0.8, 0.6])  # what the policy commanded before it asked
    human = np.array([0.5, -0.5])
    executed = []
    for _ in range(8):
        send(robot, action=human)
        robot.tick()
        executed.append(robot.last_action.copy())
        robot.clock_.t += 0.05
    executed = np.array(executed)
    gap = human - np.array([-0.8, 0.6])
    expected = np.array([-0.8, 0.6]) + np.minimum(1.0, np.arange(8)[:, None] * 0.05 / 0.2) * gap
    np.testing.assert_allclose(executed, expected, atol=1e-9)
    assert np.abs(np.diff(executed, axis=0)).max() <= np.abs(gap).max() * 0.25 + 1e-9
    events = robot.poll()["events"]
    [takeover] = [e for e in events if e["ev"] == "takeover"]
    assert takeover["latency_s"] == pytest.approx(0.0)


def test_skip_before_taking_over_requeues_the_robot(robot):
    run(robot, 1, deadman=False, action=None, skip=True)
    assert robot.state is State.WAITING and robot.total_steps == 0
    assert stop_events(robot) == [("handback", "skipped"), ("help_requested", "skipped")]


def test_skip_is_ignored_once_in_control(robot):
    run(robot, 2)
    run(robot, 1, skip=True)
    assert robot.state is State.OPERATOR and robot.total_steps == 3


def test_an_operator_mark_is_logged_with_the_episode(robot):
    run(robot, 2)
    run(robot, 3, mark="failure")  # a held button marks once
    marks = [e for e in robot.poll()["events"] if e["ev"] == "episode_marked"]
    assert [(m["mark"], m["episode"], m["operator"]) for m in marks] == [("failure", robot.episode, 0)]


def test_an_offered_robot_not_taken_over_in_time_goes_back_to_the_queue(robot):
    robot.clock_.t += 9.0
    robot.tick()
    assert robot.state is State.OPERATOR  # still within the claim timeout (10 s)
    robot.clock_.t += 1.5
    robot.tick()
    assert robot.state is State.WAITING and robot.total_steps == 0
    assert stop_events(robot) == [("handback", "not_claimed"), ("help_requested", "not_claimed")]


@pytest.mark.parametrize("age_s, link_s, stale", [
    (0.09, 0.0, False), (0.11, 0.0, True),  # a local device: safety.max_age_s (0.1 s) alone
    (0.14, 0.05, False), (0.16, 0.05, True),  # a page 50 ms away: its measured one-way delay on top
    (0.19, 0.5, False), (0.21, 0.5, True),  # a slow link is allowed at most max_age_s more
])
def test_a_remote_pages_link_delay_is_allowed_on_top_of_the_age_limit(age_s, link_s, stale):
    from teleop_devices.remote import RemoteOperator, SafetyConfig

    link = RemoteOperator(0, SafetyConfig(max_age_s=0.1), act_dim=2)
    link.push({"action": [0.5, 0.0], "takeover": True, "deadman": True, "t_report": 100.0, "link_s": link_s})
    link.engaged_at = 99.0
    assert (link.stop_reason(link.read(100.0 + age_s), 100.0 + age_s) == "stale_input") is stale
