"""Keyboard teleoperation in the operator window (pygame key events).

A keyboard has no deadman switch: Space takes control and keeps it until Enter hands back or
Escape (e-stop) stops every robot this operator controls. Keys held move the robot.

A run opens it with KeyboardTeleop.open, which refuses where nobody could type into the window;
tests that post events to a window under SDL's dummy driver construct it directly.

    kb = KeyboardTeleop(KeyboardConfig(), act_dim=2)
    for event in pygame.event.get(): kb.handle(event)      # or kb.press("space"), kb.release("d") by key name
    reading = kb.reading()
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import teleop_devices  # noqa: F401 - SDL environment before pygame
from teleop_devices.reading import DeviceReading

NO_WINDOW_DRIVERS = ("dummy", "offscreen")
"""SDL video drivers that draw into memory: a window exists for pygame, but no person sees it or types into it"""


@dataclass
class KeyboardConfig:
    axis_keys: list[list[str]] = field(default_factory=lambda: [["d", "a"], ["w", "s"], ["e", "q"], ["r", "f"]])
    """per action dim: [key for +, key for −] (pygame key names)"""
    scale: float = 0.5
    """a held key commands this fraction of the action range"""
    takeover: str = "space"
    """take control of the assigned robot"""
    hand_back: str = "return"
    """give control back to the policy"""
    e_stop: str = "escape"
    """stop every robot this operator controls"""
    skip: str = "tab"
    """decline the offered robot; the next one in the queue comes"""
    mark_success: str = "1"
    """label the episode a success"""
    mark_failure: str = "0"
    """label the episode a failure"""


def missing_window() -> str:
    """Why nobody could type into the operator window here, or "" when a window can open.

    Without a display SDL falls back to its offscreen driver and opens an invisible window: a keyboard
    operator would never take over and the run would wait for them forever. Asking SDL leaves its
    display initialized, as the console needs it next.
    """
    driver = os.environ.get("SDL_VIDEODRIVER", "").lower()
    if driver in NO_WINDOW_DRIVERS:
        return f"SDL_VIDEODRIVER={driver} draws into memory only; unset it"
    displays = [f"{name}={os.environ[name]}" for name in ("DISPLAY", "WAYLAND_DISPLAY") if os.environ.get(name)]
    if sys.platform == "linux" and not driver and not displays:
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset); start it from a desktop session"
    import pygame

    try:
        pygame.display.init()
    except pygame.error as err:
        return f"SDL cannot open a window ({err})"
    if pygame.display.get_driver() in NO_WINDOW_DRIVERS:
        return f"no display answers at {' '.join(displays) or 'the default display'}"
    return ""


class KeyboardTeleop:
    def __init__(self, config: KeyboardConfig, act_dim: int):
        if act_dim > len(config.axis_keys):
            raise ValueError(f"keyboard: axis_keys covers {len(config.axis_keys)} dims, the task needs {act_dim}")
        self.config, self.act_dim = config, act_dim
        self.pressed: set[str] = set()
        self.engaged = False
        self.hand_back = self.e_stop = self.skip = False
        self.mark = ""
        self.last_event_pump = time.time()

    @classmethod
    def open(cls, config: KeyboardConfig, act_dim: int) -> KeyboardTeleop:
        """The keyboard of a run; OSError (one line, what is missing) where nobody could type into the window."""
        problem = missing_window()
        if problem:
            raise OSError(f"keyboard: no window to type into: {problem}")
        return cls(config, act_dim)

    def handle(self, event: object) -> None:
        """Feeds one pygame event (others than KEYDOWN/KEYUP are ignored)."""
        import pygame

        kind = getattr(event, "type", None)
        if kind == pygame.KEYDOWN:
            self.press(pygame.key.name(event.key))  # type: ignore[attr-defined]
        elif kind == pygame.KEYUP:
            self.release(pygame.key.name(event.key))  # type: ignore[attr-defined]

    def press(self, key: str) -> None:
        """A key (pygame's name for it) went down: it moves while held; Space, Enter, Escape, Tab, 1, 0 act once."""
        self.pressed.add(key)
        c = self.config
        if key == c.takeover:
            self.engaged = True
        elif key == c.hand_back:
            self.hand_back, self.engaged = True, False
        elif key == c.e_stop:
            self.e_stop, self.engaged = True, False
        elif key == c.skip and not self.engaged:
            self.skip = True
        elif key in (c.mark_success, c.mark_failure):
            self.mark = "success" if key == c.mark_success else "failure"

    def release(self, key: str) -> None:
        self.pressed.discard(key)

    def pumped(self, t: float | None = None) -> None:
        """The window's event queue was read at t: readings are fresh as of then."""
        self.last_event_pump = time.time() if t is None else t

    def reading(self, now: float | None = None) -> DeviceReading:
        """The current command; one-shot buttons (hand back, skip, mark) are cleared once read."""
        action = np.zeros(self.act_dim)
        for i, (plus, minus) in enumerate(self.config.axis_keys[: self.act_dim]):
            action[i] = self.config.scale * ((plus in self.pressed) - (minus in self.pressed))
        reading = DeviceReading(action=action if self.engaged else None, takeover=self.engaged,
                                hand_back=self.hand_back, deadman=self.engaged, e_stop=self.e_stop, mark=self.mark,
                                skip=self.skip,
                                age_s=(time.time() if now is None else now) - self.last_event_pump)
        self.hand_back, self.skip, self.mark = False, False, ""
        return reading

    def clear_e_stop(self) -> None:
        self.e_stop = False
