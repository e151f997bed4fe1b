"""Opening the human operators' devices named in the config, as the station uses them.

    devices = open_devices(cfg, act_dim=2)      # {operator id: HumanDevice} for non-scripted operators
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from teleop_devices.gamepad import GamepadMapping, SdlGamepad
from teleop_devices.keyboard import KeyboardTeleop
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

    def reading(self) -> DeviceReading:
        return self.mapping.reading(self.pad.state())

    def present(self) -> bool:
        return self.pad.attached()

    def rate_hz(self) -> float:
        return 0.0  # SDL keeps the pad's state; it is read every station tick


class KeyboardOperator:
    """Keys in the operator window; the console feeds it the window's events."""

    def __init__(self, keyboard: KeyboardTeleop):
        self.keyboard = keyboard
        self.label = "keyboard"

    def reading(self) -> DeviceReading:
        return self.keyboard.reading()

    def present(self) -> bool:
        return True

    def rate_hz(self) -> float:
        return 0.0


HumanOperator = SpaceMouseOperator | GamepadOperator | KeyboardOperator


class DeviceSettings(Protocol):
    """The part of a run's config that names the operators' devices (dagger.config.RunConfig has it)."""

    operators: int
    operator: Any  # .kinds: scripted | gamepad | spacemouse | keyboard per operator
    spacemouse: Any
    gamepad: Any
    keyboard: Any


def open_devices(cfg: DeviceSettings, act_dim: int) -> dict[int, HumanOperator]:
    """One device per non-scripted operator; the n-th SpaceMouse / gamepad goes to the n-th such operator."""
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
            devices[op] = KeyboardOperator(KeyboardTeleop(cfg.keyboard, act_dim))
        counts[kind] = counts.get(kind, 0) + 1
    return devices
