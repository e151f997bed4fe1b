"""RobotWorker: drives a group of robots (`robot.per_actor` of them; dagger.robots: each its own simulator, or a robot
agent's over the network) at the robots' rate, with one policy for the group and one batched policy call a period.

The worker is a shell around one dagger.control.RobotController per robot: a mailbox read between periods, the pacing,
the batched policy call, the events outbox and the shipping. Nothing inside a period waits on another process but the
robots themselves: commands (weights, thresholds, operator assignments) arrive in the mailbox; segments leave through a
Shipper (workers.shipping) that never blocks; events wait in the outbox until the supervisor polls. A robot whose
simulator or connection raises holds for good and is reported; the rest of its group drives on.

    group = RobotWorker(0, cfg, LocalEndpoint(buffer), count=4)          # robots 0..3
    group.set_weights(learner.latest()); group.tick()     # or group.start() for its own thread
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from dagger.config import RunConfig
from dagger.control import INCARNATION_STRIDE, Callbacks, RobotController, State
from dagger.gates import make_gate
from dagger.help_queue import Assignment
from dagger.robots import make_robot
from workers.inference import GroupPolicy
from workers.roles import RobotRole
from workers.shipping import Shipper
from workers.transport import Endpoint, start_loop

__all__ = ["INCARNATION_STRIDE", "Assignment", "RobotWorker", "State", "group_members", "replace_robot"]


def group_members(robots: int, per_actor: int, cores: int) -> list[list[int]]:
    """The robots each worker drives: consecutive ids, per_actor to a worker (the last may have fewer); per_actor 0:
    ⌈robots / cores⌉, a worker per core."""
    per_actor = per_actor or -(-robots // max(1, cores))
    return [list(range(first, min(first + per_actor, robots))) for first in range(0, robots, per_actor)]


def replace_robot(groups: list[Endpoint[RobotRole]], members: list[list[int]], incarnations: list[int],
                  robot: int) -> None:
    """A fleet's answer to a robot that failed in a group that lives on: a fresh controller, its next incarnation."""
    incarnations[robot] += 1
    group = next(g for g, ids in enumerate(members) if robot in ids)
    groups[group].call(RobotRole.replace, robot, incarnations[robot])


class RobotWorker:
    def __init__(self, first: int, cfg: RunConfig, buffer: Endpoint, clock: Any = time.time,
                 incarnation: int | list[int] = 0, budgeted: bool = False, count: int = 1):
        self.ids = list(range(first, first + count))
        self.cfg, self.clock, self.budgeted = cfg, clock, budgeted
        incarnations = incarnation if isinstance(incarnation, list) else [incarnation] * count
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.states: list[tuple[float, float]] = []  # (spread, safety) of robot-controlled states, for tuned gates
        self.shipper = Shipper(buffer, cfg.robot.ship_every_s, clock, self.emit)
        self.controllers: dict[int, RobotController] = {}
        for robot, inc in zip(self.ids, incarnations, strict=True):
            self.controllers[robot] = self.controller(robot, inc)
        first_robot = self.controllers[first].robot
        self.policy = GroupPolicy(cfg, first_robot, self.ids)
        self.period = 0.0 if first_robot.paced else first_robot.dt / cfg.robot.speed  # a paced robot keeps time
        self.inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.frame_every_s, self.last_frame, self.frames_helped_only = 0.0, 0.0, False
        self.frames: dict[int, np.ndarray] = {}
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.failure = ""  # why the group's control loop died, if it did
        self.storage_told = ""  # the supervisor's word: storage cannot keep a correction now
        self.periods = self.overruns = 0  # control periods run, and those that ended past their time (paced loop)
        # episode starts a period may hold: a simulator's reset can cost most of a period (Meta-World reach's: 8 ms of
        # 12.5 at real time), so a paced group starts one episode a period, the others holding a period or two;
        # stepped by hand (in-process, on simulated time) every robot starts at once, as alone
        self.resets_per_period = len(self.ids)

    def controller(self, robot: int, incarnation: int) -> RobotController:
        calls = Callbacks(self.emitter(robot), self.shipper.add, self.observed,
                          partial(self.new_episode, robot))
        return RobotController(robot, self.cfg, make_robot(self.cfg.task, self.cfg.robot.agents,
                                                           self.cfg.robot.token_file, robot, self.cfg.robot.tls_ca),
                               make_gate(self.cfg.gate, seed=self.cfg.seed * 1000 + robot), calls, self.clock,
                               incarnation, self.budgeted)

    def new_episode(self, robot: int) -> None:
        self.policy.new_episode(robot)

    # ---- mailbox: called by the supervisor from any thread; applied between periods ----
    def set_weights(self, weights: dict) -> None:
        self.inbox.put(partial(self.take_weights, weights))

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """A tuned gate's thresholds (see AutoGate.observe), set fleet-wide by the supervisor."""
        self.inbox.put(partial(self.take_thresholds, thresholds))

    def assign(self, given: Assignment) -> None:
        """Gives a waiting robot to an operator: simulated (runs here) or remote (readings streamed in)."""
        self.inbox.put(lambda: self.controllers[given.robot].assign(given))

    def operator_input(self, robot: int, reading: dict) -> None:
        """A remote operator's newest device reading for `robot` (see teleop_devices.remote)."""
        self.inbox.put(lambda: self.controllers[robot].operator_input(reading))

    def operator_lost(self, robot: int, operator_id: int) -> None:
        """The operator's device disappeared."""
        self.inbox.put(lambda: self.controllers[robot].operator_lost(operator_id))

    def allow(self, robot: int, steps: int, seq: int) -> None:
        """`robot` may take `steps` steps in all (its share of the run's budget); the newest `seq` wins."""
        self.inbox.put(lambda: self.controllers[robot].allow(steps, seq))

    def want_frames(self, every_s: float, helped_only: bool = False) -> None:
        """Render each robot's camera frame every every_s seconds (0: stop); poll() returns the newest ones.
        helped_only: only robots waiting for an operator or with one."""
        self.inbox.put(partial(setattr, self, "frame_every_s", float(every_s)))
        self.inbox.put(partial(setattr, self, "frames_helped_only", helped_only))

    def storage(self, why: str) -> None:
        """The buffer cannot keep a correction (`why`; "": it can again): the group's robots hold and ask nobody."""
        self.inbox.put(partial(setattr, self, "storage_told", why))

    def replace(self, robot: int, incarnation: int) -> None:
        """A fresh controller (and robot connection) for a robot that failed; the group drives on meanwhile."""
        self.inbox.put(lambda: self.renew(robot, incarnation))

    def renew(self, robot: int, incarnation: int) -> None:
        old = self.controllers[robot]
        old.finish()
        try:
            old.robot.disconnect()
            ctl = self.controller(robot, incarnation)
        except Exception as err:  # noqa: BLE001 - e.g. its agent still unreachable: it stays held, and says why
            old.failed(f"not replaced: {type(err).__name__}: {err}"[:300])
            return
        self.controllers[robot] = ctl
        if self.policy.version > 0:
            ctl.weights_arrived(self.policy.version, loaded=False)

    def take_thresholds(self, thresholds: dict[str, float]) -> None:
        for ctl in self.controllers.values():
            ctl.set_thresholds(thresholds)

    def take_weights(self, weights: dict) -> None:
        if self.policy.load(weights):
            for ctl in self.controllers.values():
                ctl.weights_arrived(self.policy.version, loaded=not self.policy.served)

    def now(self) -> float:
        """This group's clock (the supervisor measures its offset from its own)."""
        return self.clock()

    def poll(self) -> list[dict]:
        """Drains the outbox: per robot, its events, robot-controlled states (the group's, on the first robot's
        entry), a status line for the dashboard and its newest camera frame."""
        with self.lock:
            events, self.events = self.events, []
            states, self.states = self.states, []
        frames, self.frames = self.frames, {}
        by_robot: dict[int, list[dict]] = {robot: [] for robot in self.ids}
        for event in events:
            by_robot.get(event.get("robot", -1), by_robot[self.ids[0]]).append(event)
        group: dict[str, Any] = {"group_failure": self.failure} if self.failure else {}
        group["storage"] = self.shipper.down  # this group's own view: a correction refused or unacknowledged
        group.update(periods=self.periods, overruns=self.overruns,
                     batch=self.policy.answered / self.policy.calls if self.policy.calls else 0.0,
                     infer_ms=self.policy.latency_ms)
        return [{"events": by_robot[robot], "states": states if i == 0 else [],
                 "status": {**self.controllers[robot].status(self.policy.version), **group},
                 "frame": frames.get(robot)} for i, robot in enumerate(self.ids)]

    # ---- the control loop ----
    def start(self) -> None:
        """Starts the control loop in its own thread; a second call does nothing (one loop per group, ever: a group
        restarted before the fleet starts is started twice)."""
        if self.thread is not None:
            return
        self.thread = start_loop(self.run, f"robots-{self.ids[0]}", self.loop_failed)

    def loop_failed(self, error: str) -> None:
        """The control loop died: every robot of the group stops where it is and says why."""
        self.failure = error
        self.emit("loop_failed", component="robot", error=error)

    def stop(self) -> list[dict]:
        """Stops the loop, closes the open segments and ships everything; returns a final poll."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        for ctl in self.controllers.values():
            ctl.finish()
            ctl.robot.disconnect()
        self.shipper.flush()
        return self.poll()

    def run(self) -> None:
        self.resets_per_period = 1
        next_tick = time.perf_counter()
        while not self.stopped.is_set():
            self.tick()
            next_tick += self.period
            delay = next_tick - time.perf_counter()
            self.periods += 1
            if delay > 0:
                time.sleep(delay)
            else:
                self.overruns += delay < 0 and self.period > 0
                next_tick = time.perf_counter()  # behind: do not try to catch up in a burst

    def tick(self) -> None:
        """One control period of every robot: mailbox, one batched policy call, at most one step each, shipping."""
        self.read_mailbox()
        storage = self.shipper.down or self.storage_told
        for ctl in self.controllers.values():
            ctl.storage(storage)
        asking = []
        resets = 0
        for ctl in self.controllers.values():
            resetting = ctl.state is State.RESETTING
            if self.guarded(ctl, ctl.prepare, resets < self.resets_per_period):
                asking.append(ctl)
            resets += resetting and ctl.state is not State.RESETTING
        answers = self.policy.answers(asking) if asking else {}
        for ctl in self.controllers.values():
            if not ctl.failure:
                self.guarded(ctl, ctl.act, answers.get(ctl.id))
        due = self.frame_every_s > 0 and time.perf_counter() - self.last_frame >= self.frame_every_s
        if due:
            self.render()
        self.shipper.ship()

    def guarded(self, ctl: RobotController, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args)'s result; an exception (the robot's simulator or connection raised) stops that robot only."""
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - one robot's fault holds that robot, not its group
            ctl.failed(f"{type(err).__name__}: {err}"[:300])
            return None

    def render(self) -> None:
        """In the loop's thread: a GL context belongs to the thread that made it."""
        self.last_frame = time.perf_counter()
        for robot, ctl in self.controllers.items():
            if ctl.state is State.STARTING or ctl.failure:
                continue
            if self.frames_helped_only and ctl.state not in (State.WAITING, State.OPERATOR):
                continue
            try:
                self.frames[robot] = ctl.robot.render()
            except Exception as err:  # noqa: BLE001 - no GL here: the console shows no camera, the robots run on
                self.frame_every_s = 0.0
                self.emitter(robot)("render_failed", error=str(err)[:300])
                return

    def emit(self, kind: str, robot: int = -1, **fields: Any) -> None:
        """Logs an event of `robot` (-1: the group's own, logged as its first robot's)."""
        with self.lock:
            self.events.append({"ev": kind, "t": self.clock(), "robot": robot if robot >= 0 else self.ids[0],
                                **fields})

    def emitter(self, robot: int) -> Callable[..., None]:
        """One robot's event writer (its controller's `emit`)."""
        return partial(self.emit, robot=robot)

    def observed(self, spread: float, safety: float) -> None:
        with self.lock:
            self.states.append((spread, safety))

    def read_mailbox(self) -> None:
        while True:
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return
            message()
