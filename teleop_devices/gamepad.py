"""Gamepad through SDL's GameController API, so every SDL-known pad maps to one layout.

The driver is split in two: a backend that reads the pad's raw state (SdlGamepad) and a pure
mapping from that state to a DeviceReading (GamepadMapping), which tests drive with recorded states.

    pad = SdlGamepad.open(0); mapping = GamepadMapping(GamepadConfig(), act_dim=2)
    reading = mapping.reading(pad.state())
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import teleop_devices  # noqa: F401 - SDL environment before pygame
from teleop_devices.axes import map_axes
from teleop_devices.reading import DeviceReading

AXES = ("leftx", "lefty", "rightx", "righty", "triggerleft", "triggerright")
BUTTONS = ("a", "b", "x", "y", "back", "guide", "start", "leftstick", "rightstick", "leftshoulder",
           "rightshoulder", "dpad_up", "dpad_down", "dpad_left", "dpad_right")


@dataclass
class GamepadConfig:
    axis_map: list[str] = field(default_factory=lambda: ["leftx", "-lefty", "rightx", "-righty"])
    """which stick axis drives each action dim, in order ("-" flips it); only the first act_dim are used"""
    deadzone: float = 0.1
    """fraction of full deflection read as zero (sticks rarely rest at exactly 0)"""
    scale: float = 1.0
    """full deflection maps to this fraction of the action range"""
    deadman: str = "leftshoulder"
    """hold to be in control (hold-to-intervene); releasing it stops the robot"""
    hand_back: str = "b"
    """give control back to the policy"""
    mark_success: str = "y"
    """label the episode a success"""
    mark_failure: str = "x"
    """label the episode a failure"""
    e_stop: str = "start"
    """stop every robot this operator controls"""
    skip: str = "back"
    """decline the offered robot; the next one in the queue comes"""


@dataclass
class GamepadState:
    """Raw pad state: axes in [-1, 1] (triggers [0, 1]), buttons pressed, and when it was read."""

    axes: dict[str, float]
    buttons: dict[str, bool]
    t: float


class GamepadMapping:
    def __init__(self, config: GamepadConfig, act_dim: int):
        if act_dim > len(config.axis_map):
            raise ValueError(f"gamepad: axis_map has {len(config.axis_map)} axes, the task needs {act_dim}")
        for role in ("deadman", "hand_back", "mark_success", "mark_failure", "e_stop", "skip"):
            if getattr(config, role) not in BUTTONS:
                raise ValueError(f"gamepad: {role} button {getattr(config, role)!r} is not one of {BUTTONS}")
        self.config, self.act_dim = config, act_dim

    def reading(self, state: GamepadState, now: float | None = None) -> DeviceReading:
        c = self.config
        held = state.buttons.get
        deadman = bool(held(c.deadman, False))
        mark = "success" if held(c.mark_success, False) else "failure" if held(c.mark_failure, False) else ""
        action = map_axes(state.axes, c.axis_map[: self.act_dim], c.deadzone, c.scale)
        return DeviceReading(action=action if deadman else None, takeover=deadman, hand_back=bool(held(c.hand_back)),
                             deadman=deadman, e_stop=bool(held(c.e_stop)), mark=mark, skip=bool(held(c.skip)),
                             age_s=(time.time() if now is None else now) - state.t)


class SdlGamepad:
    """One pad through pygame._sdl2.controller; pump events on the main thread before state()."""

    def __init__(self, controller: object):
        self.controller = controller

    @staticmethod
    def count() -> int:
        import pygame._sdl2.controller as sdl_controller

        sdl_controller.init()
        return int(sdl_controller.get_count())

    @classmethod
    def open(cls, index: int) -> SdlGamepad:
        import pygame._sdl2.controller as sdl_controller

        sdl_controller.init()
        if index >= sdl_controller.get_count():
            raise OSError(f"gamepad {index}: no such game controller ({sdl_controller.get_count()} connected)")
        return cls(sdl_controller.Controller(index))

    def name(self) -> str:
        return str(self.controller.name)  # type: ignore[attr-defined]

    def attached(self) -> bool:
        return bool(self.controller.attached())  # type: ignore[attr-defined]

    def state(self) -> GamepadState:
        import pygame

        pad = self.controller
        axes = {}
        for name in AXES:
            raw = pad.get_axis(getattr(pygame, f"CONTROLLER_AXIS_{name.upper()}"))  # type: ignore[attr-defined]
            axes[name] = max(-1.0, raw / 32767.0)
        buttons = {name: bool(pad.get_button(getattr(pygame, f"CONTROLLER_BUTTON_{name.upper()}")))  # type: ignore[attr-defined]
                   for name in BUTTONS}
        return GamepadState(axes, buttons, time.time())
