from dagger.allocation import FifoAllocator, PriorityAllocator
from dagger.core import HelpRequest


def requests():
    return [HelpRequest(0, t_requested=10.0, score=1.1), HelpRequest(1, t_requested=12.0, score=3.0),
            HelpRequest(2, t_requested=11.0, score=3.0), HelpRequest(3, t_requested=9.0, score=1.0)]


def test_priority_is_score_then_waiting_time():
    assert PriorityAllocator().order(requests(), now=13.0) == [2, 1, 0, 3]


def test_aging_lets_a_long_waiting_robot_overtake():
    # one unit of score per second waited: robot 3 (1.0, asked at 9) ties robot 2 (3.0, asked at 11)
    # and wins on waiting time; robot 0 (1.1, asked at 10) overtakes robot 1 (3.0, asked at 12)
    assert PriorityAllocator(aging_s=1.0).order(requests(), now=13.0) == [3, 2, 0, 1]


def test_fifo():
    assert FifoAllocator().order(requests(), now=13.0) == [3, 0, 2, 1]
