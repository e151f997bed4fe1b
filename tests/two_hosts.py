"""A robot agent on one host and its controller on another, a faulty network between them (tests/netfaults.py), and
the record of what the controller sent and what the robot executed, to say afterwards whether the robot ever
executed a stale command.

    with TwoHosts(TOKEN, Faults(delay_s=0.05, jitter_s=0.01, loss=0.02)) as hosts, recording_sends() as sent:
        with hosts.worker.inside():
            robot = RemoteRobot(hosts.address, TOKEN); robot.connect()        # through the proxy
        ...
        ages = command_ages(hosts.agent.robot.runs, sent)                     # each execution's command's age

Both hosts share this machine's clock, so an execution's age is exact: when the robot executed it minus when the
controller last sealed that very action (`time.time()` on both sides, no offset to estimate). Both hosts run in one
Python process here, so a measured age can pass the agent's own by a thread switch (sys.getswitchinterval(), 5 ms).
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from dagger.robots.agent import RobotAgent
from dagger.robots.base import SimRobot
from dagger.tasks import make_task
from dagger.wire import Session
from tests.netfaults import Faults, FaultyProxy, Host, Network


class TracedRobot(SimRobot):
    """The agent's simulator, noting each (state, action) it executed, when (wall clock), and its held periods."""

    def __init__(self, task: Any):
        super().__init__(task)
        self.executed: set[bytes] = set()
        self.runs: list[tuple[float, bytes]] = []  # (when, action as float32 bytes), in order
        self.holds = 0

    def send_action(self, action: np.ndarray) -> np.ndarray:
        when = time.time()
        before = np.asarray(self.get_observation().obs, np.float32)
        executed = super().send_action(action)
        key = np.asarray(action, np.float32).tobytes()
        self.executed.add(before.tobytes() + np.asarray(executed, np.float32).tobytes())
        self.runs.append((when, key))
        return executed

    def hold(self) -> None:
        self.holds += 1
        super().hold()


class TwoHosts:
    """Hosts `robot` (a RobotAgent on a TracedRobot of `task`, at `period`) and `worker`, and a FaultyProxy between
    them at `address`, the only way from one to the other."""

    def __init__(self, token: bytes, faults: Faults | None = None, task: str = "point", period: float = 0.05,
                 watchdog_periods: float = 3.0, seed: int = 0):
        self.net = Network()
        try:
            self.robot: Host = self.net.host()
            self.worker: Host = self.net.host()
            with self.robot.inside():
                self.agent = RobotAgent(TracedRobot(make_task(task)), token, host=self.robot.ip, period=period,
                                        watchdog_periods=watchdog_periods).start()
            self.proxy = FaultyProxy(self.worker.gateway, self.agent.address, faults, seed)
        except BaseException:
            self.net.close()
            raise
        self.address = self.proxy.address

    @property
    def traced(self) -> TracedRobot:
        robot = self.agent.robot
        assert isinstance(robot, TracedRobot)
        return robot

    def close(self) -> None:
        try:
            self.proxy.close()
            self.agent.close()
        finally:
            self.net.close()

    def __enter__(self) -> TwoHosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def recording_sends() -> Iterator[dict[bytes, list[float]]]:
    """Every command a controller seals while the block runs: action (float32 bytes) -> when (wall clock, taken just
    before the frame is stamped with its send time, so an age measured from it is never short; a reconnect inside
    send_action comes before it)."""
    sent: dict[bytes, list[float]] = {}
    original = Session.seal

    def seal(self: Session, message: dict) -> bytes:
        if message.get("kind") == "act":
            sent.setdefault(np.asarray(message["action"], np.float32).tobytes(), []).append(time.time())
        return original(self, message)

    Session.seal = seal  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        Session.seal = original  # type: ignore[method-assign]


def command_ages(runs: list[tuple[float, bytes]], sent: dict[bytes, list[float]]) -> list[float]:
    """Each execution's age: its time minus the newest sending of that action before it (inf: never sent)."""
    ages = []
    for when, action in runs:
        times = sent.get(action, [])
        i = bisect.bisect_right(times, when)
        ages.append(when - times[i - 1] if i else float("inf"))
    return ages
