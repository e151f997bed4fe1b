"""A component that hangs is handled like one that died: the supervisor waits for no call past its deadline, the
fleet keeps stepping, the hang is reported and, after HUNG_S, the component is restarted (or the run stopped)."""

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from dagger.events import EventLog, read_events
from dagger.tasks import make_task
from tests.conftest import point_config, wait_until
from tests.one_robot import Workers
from workers.buffer import BufferWorker
from workers.learner import Learner
from workers.robot import RobotWorker
from workers.supervisor import Supervisor
from workers.transport import HUNG_S, Late, LocalEndpoint


class Answer:
    def __init__(self, future: Future):
        self.future = future

    def ready(self) -> bool:
        return self.future.done()

    def result(self, timeout=None):
        try:
            return self.future.result(timeout)
        except FutureTimeout as err:
            raise Late(f"no answer within {timeout} s") from err


class Stoppable:
    """An endpoint whose calls run in another thread, as an actor's do, and wait while it is stopped (SIGSTOP)."""

    transient = ()

    def __init__(self, target):
        self.target, self.running = target, threading.Event()
        self.running.set()
        self.pool = ThreadPoolExecutor(4)
        self.calls = 0

    def call(self, method, *args, **kwargs):
        self.calls += 1

        def run():
            self.running.wait()
            return getattr(self.target, method.__name__)(*args, **kwargs)

        return Answer(self.pool.submit(run))


def test_a_hung_learner_is_reported_then_killed_for_a_restart_while_the_robots_keep_stepping(tmp_path):
    now = [1000.0]
    cfg = point_config("robots=2", "gate.threshold=1e9")  # nobody asks for help: the robots only step
    buffer = BufferWorker(tmp_path / "segments")
    robots = [RobotWorker(i, cfg, LocalEndpoint(buffer), clock=lambda: now[0]) for i in range(2)]
    task = make_task(cfg.task)
    learner_worker = Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer))
    learner_worker.publish()
    learner = Stoppable(learner_worker)
    fleet = Workers(robots, LocalEndpoint(buffer), learner=learner, evaluator=LocalEndpoint(None))
    log = EventLog(tmp_path / "events.jsonl")
    sup = Supervisor(cfg, fleet, log, clock=lambda: now[0])
    sup.poll()  # the first version reaches the robots
    sup.poll()
    wait_until(lambda: all(r.policy.version == 1 for r in robots) or [r.tick() for r in robots] == [], 30,
               "the first version at the robots")
    learner.running.clear()  # the learner stops answering
    asked = learner.calls
    steps = []
    for _ in range(6):
        for robot in robots:
            for _ in range(5):
                robot.tick()
        sup.poll()  # never waits on the learner past the deadline, and asks it nothing more while it hangs
        steps.append(sup.steps)
        now[0] += HUNG_S / 4
    # one poll, at most one request for the newest weights, and one poll of the learner restarted after the kill:
    # not a poll a round
    assert learner.calls - asked <= 3, f"a hung learner's calls piled up: {learner.calls - asked} in 6 rounds"
    assert steps == sorted(steps) and steps[-1] > steps[0], f"the fleet stood still while the learner hung: {steps}"
    assert fleet.killed == [learner], "the learner silent past HUNG_S was not killed for a restart"
    learner.running.set()
    log.close()
    events = read_events(tmp_path / "events.jsonl")
    hung = [e for e in events if e["ev"] == "component_hung"]
    assert {e["component"] for e in hung} == {"learner"}  # reported, and again while its restart is slow
    assert [e for e in events if e["ev"] == "component_unavailable" and e["component"] == "learner"]


def test_a_hung_learner_that_cannot_be_restarted_stops_the_run_saying_why(tmp_path):
    now = [1000.0]
    cfg = point_config("robots=1")
    buffer = BufferWorker(tmp_path / "segments")
    task = make_task(cfg.task)
    learner = Stoppable(Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer)))
    fleet = Workers([RobotWorker(0, cfg, LocalEndpoint(buffer), clock=lambda: now[0])], LocalEndpoint(buffer),
                    learner=learner, evaluator=LocalEndpoint(None))

    def cannot(component):
        raise RuntimeError("in-process components are not restarted")

    fleet.kill_hung = cannot
    sup = Supervisor(cfg, fleet, EventLog(tmp_path / "events.jsonl"), clock=lambda: now[0])
    learner.running.clear()
    for _ in range(3):
        sup.poll()
        now[0] += HUNG_S
    assert sup.failed.startswith("learner hung: no answer for") and "cannot be restarted" in sup.failed
    learner.running.set()
