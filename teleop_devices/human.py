"""Opening the human operators' devices named in the config, as the station uses them.

    devices = open_devices(cfg, act_dim=2)      # {operator id: HumanDevice} for non-scripted operators
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from teleop_devices.browser import BrowserDevice
from teleop_devices.gamepad import GamepadMapping, SdlGamepad
from teleop_devices.keyboard import KeyboardTeleop
from teleop_devices.leader_arm import LeaderBus, LeaderOperator
from teleop_devices.rate import FreshReadings
from teleop_devices.reading import DeviceReading
from teleop_devices.spacemouse import SpaceMouse, enumerate_spacemice


class SpaceMouseOperator:
    """A SpaceMouse; presence is its read status plus a bus scan every `scan_every_s`."""

    def __init__(self, mouse: SpaceMouse, act_dim: int, scan_every_s: float = 0.5):
        self.mouse, self.act_dim, self.scan_every_s = mouse, act_dim, scan_every_s
        self.label = mouse.label
        self.last_scan, self.enumerated = 0.0, True

    def reading(self) -> DeviceReading:
        return self.mouse.reading(self.act_dim)

    def present(self) -> bool:
        now = time.monotonic()
        if self.mouse.path and now - self.last_scan >= self.scan_every_s:
            self.last_scan = now
            self.enumerated = any(d["path"] == self.mouse.path for d in enumerate_spacemice())
        return self.mouse.connected and self.enumerated

    def rate_hz(self) -> float:
        return self.mouse.rate_hz()


class GamepadOperator:
    def __init__(self, pad: SdlGamepad, mapping: GamepadMapping):
        self.pad, self.mapping = pad, mapping
        self.label = f"gamepad {pad.name()}"
        self.fresh = FreshReadings()

    def reading(self) -> DeviceReading:
        state = self.pad.state()
        self.fresh.add(state.t)
        return self.mapping.reading(state)

    def present(self) -> bool:
        return self.pad.attached()

    def rate_hz(self, now: float | None = None) -> float:
        return self.fresh.rate_hz(now)


class KeyboardOperator:
    """Keys in the operator window; the console feeds it the window's events."""

    def __init__(self, keyboard: KeyboardTeleop):
        self.keyboard = keyboard
        self.label = "keyboard"
        self.fresh = FreshReadings()

    def reading(self) -> DeviceReading:
        self.fresh.add(self.keyboard.last_event_pump)
        return self.keyboard.reading()

    def present(self) -> bool:
        return True

    def rate_hz(self, now: float | None = None) -> float:
        return self.fresh.rate_hz(now)


HumanOperator = SpaceMouseOperator | GamepadOperator | KeyboardOperator | LeaderOperator | BrowserDevice


class DeviceSettings(Protocol):
    """The part of a run's config that names the operators' devices (dagger.config.RunConfig has it)."""

    operators: int
    operator: Any  # .kinds: scripted | gamepad | spacemouse | keyboard per operator
    spacemouse: Any
    gamepad: Any
    keyboard: Any
    leader: Any  # a LeaderConfig
    browser: Any  # a BrowserConfig


def open_devices(cfg: DeviceSettings, act_dim: int) -> dict[int, HumanOperator]:
    """One device per non-scripted operator; the n-th SpaceMouse / gamepad goes to the n-th such operator.

    Raises OSError naming what is missing: a SpaceMouse or controller, or a window to type into."""
    kinds = cfg.operator.kinds
    devices: dict[int, HumanOperator] = {}
    counts = {"spacemouse": 0, "gamepad": 0}
    for op in range(cfg.operators):
        kind = kinds[op % len(kinds)]
        if kind == "spacemouse":
            devices[op] = SpaceMouseOperator(SpaceMouse.open(config=cfg.spacemouse, index=counts[kind]), act_dim)
        elif kind == "gamepad":
            devices[op] = GamepadOperator(SdlGamepad.open(counts[kind]), GamepadMapping(cfg.gamepad, act_dim))
        elif kind == "keyboard":
            devices[op] = KeyboardOperator(KeyboardTeleop.open(cfg.keyboard, act_dim))
        elif kind == "browser":
            devices[op] = BrowserDevice(cfg.browser, cfg.gamepad, cfg.keyboard, act_dim)
        elif kind == "leader":
            if counts.get(kind):
                raise OSError(f"operator {op}: one leader arm per run (leader.port names it); operator.kinds has more")
            devices[op] = LeaderOperator(LeaderBus.open(cfg.leader), act_dim)
        counts[kind] = counts.get(kind, 0) + 1
    return devices
