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


def test_an_operator_is_not_offered_the_robot_it_just_skipped(tmp_path):
    from dagger.events import EventLog, read_events
    from tests.conftest import point_config
    from workers.buffer import BufferWorker
    from workers.robot import RobotWorker
    from workers.supervisor import Supervisor
    from workers.transport import LocalEndpoint

    cfg = point_config("robots=2")
    buffer = LocalEndpoint(BufferWorker(tmp_path / "segments"))
    robots = [LocalEndpoint(RobotWorker(i, cfg, buffer)) for i in range(2)]
    log = EventLog(tmp_path / "events.jsonl")
    sup = Supervisor(cfg, robots, buffer, None, log)

    def robot_says(robot, *events):
        sup.handle({"events": [{"robot": robot, **e} for e in events], "states": [],
                    "status": {"robot": robot, "steps": 0}})
        sup.allocate()
        log.file.flush()
        return [(e["robot"], e["operator"]) for e in read_events(tmp_path / "events.jsonl")
                if e["ev"] == "operator_assigned"]

    ask = {"ev": "help_requested", "score": 0.5, "threshold": 0.1, "reason": "ensemble"}
    assert robot_says(0, {**ask, "t": 1.0}) == [(0, 0)]
    skipped = robot_says(0, {"ev": "handback", "t": 2.0, "operator": 0, "reason": "skipped"},
                         {**ask, "t": 2.0, "reason": "skipped"})
    assert skipped == [(0, 0)]  # not offered straight back
    assert robot_says(1, {**ask, "t": 3.0, "score": 0.1}) == [(0, 0), (1, 0)]  # the next one comes
