import pytest

from dagger.allocators import make_allocator
from tests.test_fleet_allocation import signals

# robots 0-3 asked 3, 1, 2 and 4 s ago with urgency 1.1, 3.0, 3.0, 1.0; robot 4 has not asked
ASKED = signals(u=[0.1] * 5, wait=[3.0, 1.0, 2.0, 4.0, 0.0], urgency=[1.1, 3.0, 3.0, 1.0, 0.0])


def test_priority_is_urgency_then_waiting_time():
    assert make_allocator("priority", 1, aging_s=0.0).allocate(ASKED) == [2, 1, 0, 3]


def test_aging_lets_a_long_waiting_robot_overtake():
    # one unit of urgency per second waited: robot 3 (1.0, waited 4 s) ties robot 2 (3.0, waited 2 s)
    # and wins on waiting time; robot 0 (1.1, waited 3 s) overtakes robot 1 (3.0, waited 1 s)
    assert make_allocator("priority", 1, aging_s=1.0).allocate(ASKED) == [3, 2, 0, 1]


def test_fifo():
    assert make_allocator("fifo", 1).allocate(ASKED) == [3, 0, 2, 1]


def test_an_operator_is_not_offered_the_robot_it_just_skipped(tmp_path):
    from dagger.events import EventLog, read_events
    from tests.conftest import point_config
    from tests.one_robot import Workers
    from workers.buffer import BufferWorker
    from workers.robot import RobotWorker
    from workers.supervisor import Supervisor
    from workers.transport import LocalEndpoint

    cfg = point_config("robots=2")
    buffer = LocalEndpoint(BufferWorker(tmp_path / "segments"))
    log = EventLog(tmp_path / "events.jsonl")
    sup = Supervisor(cfg, Workers([RobotWorker(i, cfg, buffer) for i in range(2)], buffer), log)

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


def supervisor_with_waiting(tmp_path, allocator, asks):
    """A supervisor whose robots asked for help (robot, t, score, uncertainty), before any operator is free."""
    from dagger.events import EventLog
    from tests.conftest import point_config
    from tests.one_robot import Workers
    from workers.buffer import BufferWorker
    from workers.robot import RobotWorker
    from workers.supervisor import Supervisor
    from workers.transport import LocalEndpoint

    cfg = point_config(f"robots={len(asks)}", f"allocator={allocator}")
    buffer = LocalEndpoint(BufferWorker(tmp_path / "segments"))
    robots = Workers([RobotWorker(i, cfg, buffer) for i in range(len(asks))], buffer)
    sup = Supervisor(cfg, robots, EventLog(tmp_path / "events.jsonl"), clock=lambda: 10.0)
    for robot, t, score, uncertainty in asks:
        sup.handle({"events": [{"ev": "help_requested", "robot": robot, "t": t, "score": score, "threshold": 1.0,
                                "reason": "ensemble"}], "states": [],
                    "status": {"robot": robot, "steps": 0, "uncertainty": uncertainty}})
    return sup


def queue_of(sup):
    """The supervisor's help queue in order, at t = 10 s."""
    return sup.help.queue(10.0, sup.robot_statuses(), sup.steps)


@pytest.mark.parametrize("allocator, order", [("priority", [1, 0, 2]), ("fifo", [0, 2, 1]),
                                              ("fleet-ensemble", [2, 1, 0])])
def test_the_live_queue_takes_any_fleet_allocator(tmp_path, allocator, order):
    # (robot, asked at, urgency, spread); priority with aging 2 s: 1 + 9/2, 9 + 1/2, 2 + 5/2
    asks = [(0, 1.0, 1.0, 0.06), (1, 9.0, 9.0, 0.07), (2, 5.0, 2.0, 0.5)]
    assert queue_of(supervisor_with_waiting(tmp_path, allocator, asks)) == order


def test_robots_an_allocator_leaves_alone_are_still_served(tmp_path):
    # C.U.R. zeroes uncertainty below 0.05: it ranks no robot here; the queue falls back to waiting time
    asks = [(0, 3.0, 1.0, 0.01), (1, 2.0, 1.0, 0.02)]
    assert queue_of(supervisor_with_waiting(tmp_path, "cur", asks)) == [1, 0]


def test_one_poll_asks_the_allocator_once_and_queues_the_rest_in_its_order(tmp_path):
    from workers.learner import Learner
    from workers.transport import LocalEndpoint

    asks = [(0, 1.0, 1.0, 0.06), (1, 9.0, 9.0, 0.07), (2, 5.0, 2.0, 0.5)]
    sup = supervisor_with_waiting(tmp_path, "fleet-thrifty", asks)
    sup.learner = LocalEndpoint(Learner(sup.cfg, 6, 2, sup.buffer))
    sup.poll()
    # fleet-thrifty keeps running z-scores: one allocation round adds every robot's signals once
    assert sup.help.allocator.novelty.count == len(asks)
    assert [q["robot"] for q in sup.status["queue"]] == sup.help.unserved and len(sup.help.unserved) == len(asks) - 1
