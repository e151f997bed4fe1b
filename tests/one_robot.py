"""A RobotWorker driving one robot, as tests of one robot's behaviour use it: the mailbox without robot ids, and the
robot's controller's state (state, obs, total_steps, ...) read through."""

from __future__ import annotations

from typing import Any

from dagger.control import RobotController, State
from dagger.help_queue import Assignment
from workers.buffer import BufferWorker
from workers.learner import Learner
from workers.robot import RobotWorker
from workers.transport import LocalEndpoint


class OneRobot(RobotWorker):
    def __init__(self, robot_id: int, cfg: Any, buffer: Any, **kwargs: Any):
        super().__init__(robot_id, cfg, buffer, count=1, **kwargs)

    @property
    def ctl(self) -> RobotController:
        return self.controllers[self.ids[0]]

    def __getattr__(self, name: str) -> Any:  # state, obs, total_steps, robot, gate, ...: the controller's
        if name == "controllers":
            raise AttributeError(name)
        return getattr(self.controllers[self.ids[0]], name)

    def assign(self, operator: int, remote: bool = False, strain: float = 1.0,  # type: ignore[override]
               switching: bool = False) -> None:
        super().assign(Assignment(self.ids[0], operator, remote, strain, switching, 0.0))

    def operator_input(self, reading: dict) -> None:  # type: ignore[override]
        super().operator_input(self.ids[0], reading)

    def operator_lost(self, operator_id: int) -> None:  # type: ignore[override]
        super().operator_lost(self.ids[0], operator_id)

    def allow(self, steps: int, seq: int) -> None:  # type: ignore[override]
        super().allow(self.ids[0], steps, seq)

    def poll(self) -> dict:  # type: ignore[override]
        return super().poll()[0]

    def stop(self) -> dict:  # type: ignore[override]
        return super().stop()  # type: ignore[return-value]  # its final poll is this class's

    @property
    def own_policy(self) -> Any:
        """The robot's policy (its own copy)."""
        return self.policy.policies[self.ids[0]]


class Workers:
    """The robot side of a Fleet (workers.roles.Fleet) made of the given robot workers, for tests that drive a
    Supervisor by hand; `restart(group)` makes a dead group's new worker (None: it cannot be restarted)."""

    def __init__(self, workers: list[RobotWorker], buffer: Any, learner: Any = None, evaluator: Any = None,
                 restart: Any = None):
        from workers.transport import LocalEndpoint

        self.endpoint = LocalEndpoint
        self.workers = list(workers)
        self.groups = [LocalEndpoint(w) for w in self.workers]
        self.members = [list(w.ids) for w in self.workers]
        self.buffer, self.learner, self.evaluator, self.restart = buffer, learner, evaluator, restart
        self.incarnations: dict[int, int] = {}
        self.killed: list[Any] = []  # components kill_hung was asked to kill

    def kill_hung(self, component: Any) -> None:
        self.killed.append(component)

    def replace_robot(self, robot: int) -> None:
        self.incarnations[robot] = self.incarnations.get(robot, 0) + 1
        group = next(g for g, ids in enumerate(self.members) if robot in ids)
        self.workers[group].replace(robot, self.incarnations[robot])

    def restart_group(self, group: int) -> Any:
        if self.restart is None:
            raise RuntimeError("not restartable")
        self.workers[group] = self.restart(group)
        self.groups[group] = self.endpoint(self.workers[group])
        return self.groups[group]


class Clock:
    """A test's clock: time stands still until the test moves `t`."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def offered_robot(cfg: Any, folder: Any, remote: bool = True) -> OneRobot:
    """A robot (cfg's task, weights published once) that has asked for help and been given to operator 0 (remote: a
    device at the station); its clock is `robot.clock_`."""
    buffer = LocalEndpoint(BufferWorker(folder / "segments"))
    clock = Clock()
    robot = OneRobot(0, cfg, buffer, clock=clock)
    learner = Learner(cfg, robot.robot.obs_dim, robot.robot.act_dim, buffer)
    learner.publish()
    robot.set_weights(learner.latest()[1])
    robot.tick()
    assert robot.state is State.WAITING
    robot.assign(0, remote)
    robot.tick()
    robot.clock_ = clock  # type: ignore[attr-defined]
    return robot


def send(robot: Any, action: Any = (0.5, -0.5), deadman: bool = True, **buttons: Any) -> None:
    """A reading from operator 0's device, reported now."""
    robot.operator_input({"action": None if action is None else list(action), "deadman": deadman, "takeover": deadman,
                          "t_report": robot.clock_.t, **buttons})


def run(robot: Any, ticks: int, dt: float = 0.05, feed: bool = True, **reading: Any) -> None:
    """`ticks` control periods of `dt`, a reading sent before each (feed)."""
    for _ in range(ticks):
        if feed:
            send(robot, **reading)
        robot.tick()
        robot.clock_.t += dt


def stop_events(robot: Any) -> list[tuple[str, str]]:
    """The (event, reason) of the handbacks and help requests logged since the last poll."""
    return [(e["ev"], e["reason"]) for e in robot.poll()["events"] if e["ev"] in ("handback", "help_requested")]
