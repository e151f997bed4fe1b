"""Keyboard through real pygame events; gamepad through the real mapping with recorded pad states."""

import numpy as np
import pygame
import pytest

from teleop_devices.axes import apply_deadzone, map_axes
from teleop_devices.gamepad import AXES, BUTTONS, GamepadConfig, GamepadMapping, GamepadState
from teleop_devices.human import GamepadOperator, KeyboardOperator
from teleop_devices.keyboard import KeyboardConfig, KeyboardTeleop


@pytest.fixture(scope="module")
def window():
    pygame.display.init()
    pygame.display.set_mode((64, 48))
    yield
    pygame.display.quit()


def press(key, down=True):
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=key, mod=0, unicode=""))


def feed(kb, t=None):
    for event in pygame.event.get():
        kb.handle(event)
    kb.pumped(t)


def test_keyboard_takes_over_moves_hands_back_and_stops(window):
    kb = KeyboardTeleop(KeyboardConfig(scale=0.5), act_dim=2)
    press(pygame.K_d)
    feed(kb)
    assert kb.reading().action is None  # not in control yet: keys do nothing
    press(pygame.K_SPACE)
    press(pygame.K_w)
    feed(kb)
    r = kb.reading()
    assert r.takeover and r.deadman and np.allclose(r.action, [0.5, 0.5])
    press(pygame.K_d, down=False)
    press(pygame.K_s)
    feed(kb)
    assert np.allclose(kb.reading().action, [0.0, 0.0])  # w and s cancel, d released
    press(pygame.K_RETURN)
    feed(kb)
    r = kb.reading()
    assert r.hand_back and r.action is None and not r.deadman
    assert not kb.reading().hand_back  # one-shot
    press(pygame.K_ESCAPE)
    feed(kb)
    assert kb.reading().e_stop and kb.reading().e_stop  # latched until cleared
    kb.clear_e_stop()
    assert not kb.reading().e_stop


def test_keyboard_reading_ages_when_the_window_is_not_pumped(window):
    kb = KeyboardTeleop(KeyboardConfig(), act_dim=2)
    kb.pumped(t=100.0)
    assert kb.reading(now=100.25).age_s == pytest.approx(0.25)


def test_held_keys_report_as_often_as_the_window_is_pumped(window):
    """The operator console pumps the window every station tick; each pump is a fresh report of the held keys."""
    keyboard = KeyboardOperator(KeyboardTeleop(KeyboardConfig(), act_dim=2))
    press(pygame.K_SPACE)
    press(pygame.K_d)
    for t in (100.00, 100.02, 100.04, 100.06, 100.08):  # held from the first pump on: no key events after it
        feed(keyboard.keyboard, t)
        keyboard.reading()
        keyboard.reading()  # a second read of the same pump is no new report
    assert keyboard.reading().action[0] == 0.5
    assert keyboard.rate_hz(now=100.08) == pytest.approx(4 / 0.08)  # 50 Hz
    assert keyboard.rate_hz(now=100.48) == pytest.approx(4 / 0.48)  # the window stalled: the rate drops at once
    assert keyboard.rate_hz(now=102.5) == 0.0  # every report older than the 2 s window


class RecordedPad:
    def __init__(self, times):
        self.states = iter(pad(t=t) for t in times)

    def name(self):
        return "recorded"

    def state(self):
        return next(self.states)


def test_gamepad_rate_counts_state_reads():
    gamepad = GamepadOperator(RecordedPad([10.00, 10.01, 10.02]), GamepadMapping(GamepadConfig(), act_dim=2))
    for _ in range(3):
        gamepad.reading()
    assert gamepad.rate_hz(now=10.02) == pytest.approx(100.0)


def pad(axes=None, buttons=(), t=10.0):
    return GamepadState({a: 0.0 for a in AXES} | (axes or {}), {b: b in buttons for b in BUTTONS}, t)


def test_gamepad_deadman_gates_the_action():
    m = GamepadMapping(GamepadConfig(), act_dim=2)
    released = m.reading(pad({"leftx": 1.0}), now=10.0)
    assert released.action is None and not released.deadman and not released.takeover
    held = m.reading(pad({"leftx": 1.0, "lefty": -1.0}, ["leftshoulder"]), now=10.02)
    assert held.deadman and np.allclose(held.action, [1.0, 1.0]) and held.age_s == pytest.approx(0.02)


def test_gamepad_buttons():
    m = GamepadMapping(GamepadConfig(), act_dim=2)
    r = m.reading(pad(buttons=["leftshoulder", "b", "start", "y"]))
    assert r.hand_back and r.e_stop and r.mark == "success"
    assert m.reading(pad(buttons=["x"])).mark == "failure"


def test_gamepad_config_errors_name_the_role():
    with pytest.raises(ValueError, match="deadman button 'lb'"):
        GamepadMapping(GamepadConfig(deadman="lb"), act_dim=2)
    with pytest.raises(ValueError, match="needs 5"):
        GamepadMapping(GamepadConfig(), act_dim=5)


def test_deadzone_rescales_to_full_range():
    assert apply_deadzone(0.05, 0.1) == 0.0
    assert apply_deadzone(-1.0, 0.1) == -1.0
    assert apply_deadzone(0.55, 0.1) == pytest.approx(0.5)
    assert np.allclose(map_axes({"x": 0.55, "y": 1.0}, ["-x", "y"], 0.1, 0.5), [-0.25, 0.5])
    with pytest.raises(KeyError, match="axis 'z' \\(action dim 1\\)"):
        map_axes({"x": 0.0}, ["x", "z"], 0.1, 1.0)
