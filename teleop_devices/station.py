"""The operator station: reads every human operator's device on the driver's main thread and streams
the readings to the robots those operators control.

    station = OperatorStation({0: SpaceMouseOperator(mouse, act_dim=2)}, send_input, send_lost, log)
    station.assign(0, robot=3)
    station.tick()        # every ~10 ms: read devices, send_input(3, reading); a lost device: send_lost(3, 0)

Robots apply the safety rules (teleop_devices.remote); the station only reports what it saw.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from teleop_devices.reading import DeviceReading
from teleop_devices.remote import too_old


class HumanDevice(Protocol):
    """A human operator's input as the station uses it."""

    label: str

    def reading(self) -> DeviceReading: ...

    def present(self) -> bool:
        """Cheap enough to call every tick."""

    def rate_hz(self) -> float: ...


class OperatorStation:
    def __init__(self, devices: dict[int, HumanDevice], send_input: Callable[[int, dict[str, Any]], None],
                 send_lost: Callable[[int, int], None], record: Callable[[list[dict]], None],
                 clock: Callable[[], float] = time.time, health_every_s: float = 1.0,
                 pump: Callable[[], None] | None = None, max_age_s: float = math.inf):
        """send_input(robot, reading): an operator's newest reading (teleop_devices.remote reads it) for a robot it
        controls; send_lost(robot, operator): that operator's device disappeared."""
        self.devices, self.record, self.clock, self.pump = devices, record, clock, pump
        self.send_input, self.send_lost = send_input, send_lost
        self.robots: dict[int, set[int]] = {op: set() for op in devices}
        self.lost: set[int] = set()
        self.t_input: dict[tuple[int, int], float] = {}
        self.health_every_s = health_every_s
        self.last_health = 0.0
        self.last: dict[int, DeviceReading] = {}
        self.max_age_s = max_age_s

    def available(self, op: int) -> bool:
        return op in self.devices and op not in self.lost

    def away(self) -> set[int]:
        """Operators not to offer a robot now: their device is lost, or it stamps its readings and its newest is too
        old (a paused page: every robot offered would stop at once for stale input)."""
        now = self.clock()
        quiet = {op for op, r in self.last.items()
                 if r.t_read is not None and too_old(now - r.t_read, r.link_s, self.max_age_s)}
        return self.lost | quiet

    def assign(self, op: int, robot: int) -> None:
        self.robots[op].add(robot)

    def release(self, op: int, robot: int) -> None:
        self.robots[op].discard(robot)
        self.t_input.pop((op, robot), None)

    def tick(self) -> None:
        if self.pump is not None:
            self.pump()  # the window's events (keyboard, gamepad hot-plug) on this, the main, thread
        now = self.clock()
        for op, device in self.devices.items():
            if op in self.lost:
                self._device_back(op)
                continue
            reading = device.reading()
            if not device.present():  # after the read: a read that failed must not pass for a released deadman
                self._device_lost(op)
                continue
            self.last[op] = reading
            t = now if reading.t_read is None else reading.t_read
            for robot in self.robots[op]:
                if reading.takeover:
                    self.t_input.setdefault((op, robot), t if reading.t_engaged is None else reading.t_engaged)
                else:  # let go before the takeover: the next press is the input a takeover is timed from
                    self.t_input.pop((op, robot), None)
                self.send_input(robot, {
                    "action": None if reading.action is None else [float(a) for a in reading.action],
                    "takeover": reading.takeover, "hand_back": reading.hand_back, "deadman": reading.deadman,
                    "e_stop": reading.e_stop, "skip": reading.skip, "mark": reading.mark, "t_report": t,
                    "t_input": self.t_input.get((op, robot), t), "absolute": reading.absolute,
                    "link_s": reading.link_s})
        if now - self.last_health >= self.health_every_s:
            self.last_health = now
            self.record([{"ev": "device_health", "t": now, "operator": op, **health}
                         for op, health in self.health(now).items()])

    def health(self, now: float) -> dict[int, dict[str, Any]]:
        """Per operator: device label, report rate, reading age, deadman and whether it is present."""
        out = {}
        for op, device in self.devices.items():
            last = self.last.get(op)
            out[op] = {"device": device.label, "present": op not in self.lost, "rate_hz": device.rate_hz(),
                       "age_s": None if last is None or not math.isfinite(last.age_s) else last.age_s,
                       "deadman": bool(last and last.deadman)}
        return out

    def _device_back(self, op: int) -> None:
        """A device that went away and is present again (a browser tab reopened): its operator is offered robots
        again."""
        if self.devices[op].present():
            self.lost.discard(op)
            self.record([{"ev": "device_back", "t": self.clock(), "operator": op, "device": self.devices[op].label}])

    def _device_lost(self, op: int) -> None:
        self.lost.add(op)
        self.record([{"ev": "device_lost", "t": self.clock(), "operator": op, "device": self.devices[op].label}])
        for robot in self.robots[op]:
            self.send_lost(robot, op)
        self.robots[op] = set()
