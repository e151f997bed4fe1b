"""Nudge mode with every device that pushes: each device's real reading code (replayed HID reports, pad states, keys,
a browser page's messages) through the operator station into a real RobotWorker whose operator nudges. A leader arm
gives poses, not pushes: it takes over in nudge mode too (tests/test_nudge.py)."""

import numpy as np
import pytest

from dagger.control import State
from teleop_devices.browser import BrowserConfig, BrowserDevice
from teleop_devices.fakes import FakeHid, buttons, motion
from teleop_devices.gamepad import AXES, BUTTONS, GamepadConfig, GamepadMapping, GamepadState
from teleop_devices.human import GamepadOperator, KeyboardOperator, SpaceMouseOperator
from teleop_devices.keyboard import KeyboardConfig, KeyboardTeleop
from teleop_devices.spacemouse import SpaceMouse, SpaceMouseConfig
from teleop_devices.station import OperatorStation
from tests.conftest import point_config
from tests.one_robot import offered_robot

BOUND = 0.3  # operator.nudge_bound on the point task's [-1, 1] actions


class HeldPad:
    """A pad whose left shoulder (the deadman) is held and its left stick pushed."""

    def __init__(self, clock):
        self.clock = clock

    def name(self):
        return "held"

    def attached(self):
        return True

    def state(self):
        return GamepadState({a: 0.0 for a in AXES} | {"leftx": 0.5, "lefty": -0.8},
                            {b: b == "leftshoulder" for b in BUTTONS}, self.clock())


def page_messages(kind):
    """What a browser page sends each period for `kind`: a held pad, a tilted phone, a pressed key, an XR trigger."""
    pad = {"id": "pad", "axes": [0.5, -0.8, 0.0, 0.0], "buttons": [i == 4 for i in range(17)], "values": [0.0] * 17}
    if kind == "gamepad":
        return lambda i: [{"kind": "input", "visible": True, "device": "gamepad", "keys": [], "pad": pad}]
    if kind == "phone":
        return lambda i: [{"kind": "input", "visible": True, "device": "phone", "keys": [],
                           "phone": {"beta": 0.0, "gamma": 0.0 if i == 0 else 6.0, "hold": True}}]
    if kind == "xr":
        return lambda i: [{"kind": "input", "visible": True, "device": "xr", "keys": [],
                           "xr": {"pos": [0.0 if i == 0 else 0.05, 0.0, 0.0], "trigger": True}}]
    keys = [{"kind": "key", "key": " ", "down": True}, {"kind": "key", "key": "d", "down": True}]
    return lambda i: [{"kind": "input", "visible": True, "device": "keyboard", "keys": [] if i == 0 else ["d"]},
                      *(keys if i == 0 else [])]


def device(kind, clock):
    """(the station's device for `kind`, a hook run before each station tick)"""
    if kind == "gamepad":
        return GamepadOperator(HeldPad(clock), GamepadMapping(GamepadConfig(), act_dim=2)), lambda i: None
    if kind == "spacemouse":
        hid = FakeHid([buttons(1), motion(x=100, y=-200)])
        mouse = SpaceMouse(hid, SpaceMouseConfig(axis_map=["x", "y"]), clock=clock)
        return SpaceMouseOperator(mouse, act_dim=2), lambda i: None
    if kind == "keyboard":
        kb = KeyboardTeleop(KeyboardConfig(scale=0.2), act_dim=2)
        kb.press("space")
        kb.press("d")
        return KeyboardOperator(kb), lambda i: kb.pumped(clock())
    page = BrowserDevice(BrowserConfig(), GamepadConfig(), KeyboardConfig(scale=0.2), act_dim=2, clock=clock)
    session, seq, messages = page.connected(), iter(range(10**6)), page_messages(kind.split(":")[1])

    def send(i):
        for m in messages(i):
            page.push({**m, "seq": next(seq), "t": clock() * 1000.0}, now=clock(), session=session)
    return page, send


@pytest.mark.parametrize("kind", ["gamepad", "spacemouse", "keyboard", "browser:gamepad", "browser:keyboard",
                                  "browser:phone", "browser:xr"])
def test_every_pushing_device_nudges_through_the_station(tmp_path, kind):
    cfg = point_config("gate.threshold=0.0", "safety.ramp_s=0.2", "operator.mode=nudge",
                       f"operator.nudge_bound={BOUND}", "operator.nudge_to_takeover_s=100",
                       f"operator.kinds=[{kind.split(':')[0]}]")
    robot = offered_robot(cfg, tmp_path)
    clock = robot.clock_
    dev, before_tick = device(kind, clock)
    sent = []
    station = OperatorStation({0: dev}, lambda r, reading: (sent.append(reading), robot.operator_input(reading)),
                              lambda r, op: robot.operator_lost(op), lambda events: None, clock)
    station.assign(0, 0)
    for i in range(8):
        before_tick(i)
        station.tick()
        robot.tick()
        clock.t += 0.05
    assert robot.state is State.OPERATOR and robot.ctl.controller == "nudge:0", kind
    push = np.asarray(sent[-1]["action"])
    assert np.abs(push).max() > 0.05, kind  # the device did push
    step = robot.ctl.steps[-1]  # past the ramp: the whole (clipped) push is added to what the policy did
    expected = np.clip(step["policy_action"] + np.clip(push, -BOUND, BOUND), -1, 1)
    np.testing.assert_allclose(step["action"], expected, atol=1e-6, err_msg=kind)
