"""The help queue on its own: who waits, who serves, who gets whom, with expectations worked out by hand."""

import pytest

from dagger.allocators import make_allocator
from dagger.help_queue import Assignment, HelpQueue
from teleop_devices.scripted import OperatorConfig


def help_queue(operators=1, robots=3, attention=1, fatigue_per_min=0.0, rest_s=60.0, remote=()):
    """A queue started at t = 0 whose priority allocator ranks by urgency, then by waiting time (no aging)."""
    traits = OperatorConfig(attention=attention, fatigue_per_min=fatigue_per_min, rest_s=rest_s)
    return HelpQueue(operators, traits, make_allocator("priority", operators, aging_s=0.0), robots, now=0.0,
                     remote=remote)


def asked(robot, t, urgency=1.0, reason="ensemble"):
    """A robot's help_requested event whose gate score is `urgency` times its threshold."""
    return {"ev": "help_requested", "robot": robot, "t": t, "score": 0.1 * urgency, "threshold": 0.1,
            "reason": reason}


def released(robot, operator, t, reason="released"):
    return {"ev": "handback", "robot": robot, "t": t, "operator": operator, "reason": reason}


def allocate(queue, now, robots=3, away=()):
    return queue.allocate(now, [{}] * robots, step=0, away=away)


def test_waiting_robots_go_by_urgency_then_waiting_time_and_the_rest_stay_queued_in_that_order():
    queue = help_queue()
    queue.asked(asked(0, t=1.0, urgency=2.0))
    queue.asked(asked(1, t=2.0, urgency=3.0))
    queue.asked(asked(2, t=0.5, urgency=2.0))  # as urgent as robot 0, waiting longer
    assert allocate(queue, now=5.0) == [Assignment(robot=1, operator=0, remote=False, strain=1.0, switching=False,
                                                   queued_s=3.0)]
    assert queue.unserved == [2, 0]
    assert queue.queue_status(5.0) == [
        {"robot": 2, "reason": "ensemble", "urgency": pytest.approx(2.0), "waiting_s": 4.5},
        {"robot": 0, "reason": "ensemble", "urgency": pytest.approx(2.0), "waiting_s": 4.0}]
    assert queue.serving_status() == {0: [1]}
    assert allocate(queue, now=6.0) == []  # the only operator is busy


def test_an_operator_with_attention_for_two_takes_the_two_most_urgent_and_switches_between_them():
    queue = help_queue(attention=2, fatigue_per_min=6.0)
    for robot, urgency in ((0, 1.0), (1, 3.0), (2, 2.0)):
        queue.asked(asked(robot, t=1.0, urgency=urgency))
    # working since t = 0 (never rested 60 s): strain 1 + 6 / min * 5 s = 1.5 for both
    assert allocate(queue, now=5.0) == [Assignment(1, 0, False, 1.5, False, 4.0),
                                        Assignment(2, 0, False, 1.5, True, 4.0)]
    assert queue.unserved == [0]
    queue.released(released(1, 0, t=6.0))
    assert [(a.robot, a.operator, a.switching) for a in allocate(queue, now=7.0)] == [(0, 0, True)]


def test_a_declined_robot_is_not_offered_to_that_operator_next():
    queue = help_queue()
    queue.asked(asked(0, t=1.0, urgency=5.0))
    assert [a.robot for a in allocate(queue, now=1.0)] == [0]
    assert queue.released(released(0, 0, t=2.0, reason="skipped"))
    queue.asked(asked(0, t=2.0, urgency=5.0))
    assert allocate(queue, now=2.5) == []  # operator 0 is free, but declined robot 0 last
    queue.asked(asked(1, t=3.0, urgency=1.0))
    assert [a.robot for a in allocate(queue, now=3.0)] == [1]  # the next one comes, though robot 0 ranks first
    queue.released(released(1, 0, t=4.0))
    assert [a.robot for a in allocate(queue, now=4.0)] == [0]  # no longer the last declined: offered again


def test_strain_grows_with_continuous_work_and_a_rest_resets_it():
    queue = help_queue(fatigue_per_min=6.0, rest_s=10.0)  # +0.1 per second of work
    queue.asked(asked(0, t=0.0))
    assert allocate(queue, now=5.0)[0].strain == pytest.approx(1.5)  # working since t = 0
    queue.released(released(0, 0, t=8.0))
    queue.asked(asked(0, t=9.0))
    assert allocate(queue, now=12.0)[0].strain == pytest.approx(2.2)  # a 4 s break is no rest: 12 s of work
    queue.released(released(0, 0, t=13.0))
    queue.asked(asked(0, t=14.0))
    assert allocate(queue, now=30.0)[0].strain == pytest.approx(1.0)  # idle 17 s: rested


def test_a_lost_robot_frees_its_operator_and_its_place_in_the_queue():
    queue = help_queue()
    queue.asked(asked(0, t=1.0, urgency=3.0))
    queue.asked(asked(1, t=1.0, urgency=2.0))
    queue.asked(asked(2, t=1.0, urgency=1.0))
    assert [a.robot for a in allocate(queue, now=2.0)] == [0]
    queue.lost(0)
    queue.lost(1)
    assert queue.serving == {0: set()}
    assert [a.robot for a in allocate(queue, now=3.0)] == [2]
    assert queue.unserved == [] and queue.waiting == {}


def test_a_remote_operator_is_marked_remote_and_one_whose_device_is_away_gets_no_robot():
    queue = help_queue(operators=2, remote={0})
    queue.asked(asked(0, t=1.0))
    assert allocate(queue, now=2.0, away={0}) == [Assignment(0, 1, False, 1.0, False, 1.0)]
    queue.asked(asked(1, t=2.0))
    assert allocate(queue, now=3.0) == [Assignment(1, 0, True, 1.0, False, 1.0)]


def test_a_release_by_nobody_of_ours_changes_nothing():
    queue = help_queue()
    queue.asked(asked(0, t=1.0))
    allocate(queue, now=1.0)
    assert not queue.released(released(0, -1, t=2.0, reason="episode_end"))
    assert queue.serving == {0: {0}}
