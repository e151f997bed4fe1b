"""An operator's browser page as a device: a gamepad (the Gamepad API), the keyboard, a phone's tilt or a WebXR
controller, read by the page and streamed over its socket (dagger.app.operator_web serves both).

The page's raw state goes through the local devices' own mapping code: a standard-layout pad becomes SDL's named
axes and buttons for GamepadMapping, keys and the page's buttons drive KeyboardTeleop's state machine.

    device = BrowserDevice(BrowserConfig(), GamepadConfig(), KeyboardConfig(), act_dim=2)
    session = device.connected()                  # a socket opened (a second tab: a new session replaces it)
    device.push({"kind": "input", "seq": 1, "t": page_ms, ...}, now=time.time(), session=session)
    reading = device.reading()                    # DeviceReading, aged from the input's time on this clock
    device.disconnected(session)                  # present() is False until the next connected()
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from teleop_devices.axes import map_axes
from teleop_devices.gamepad import GamepadConfig, GamepadMapping, GamepadState
from teleop_devices.keyboard import KeyboardConfig, KeyboardTeleop
from teleop_devices.rate import FreshReadings
from teleop_devices.reading import DeviceReading

KINDS = ("gamepad", "keyboard", "phone", "xr")
STANDARD_AXES = ("leftx", "lefty", "rightx", "righty")
"""the Gamepad API's standard layout: axes 0-3 (down and right are positive, as in SDL)"""
STANDARD_BUTTONS = ("a", "b", "x", "y", "leftshoulder", "rightshoulder", "", "", "back", "start", "leftstick",
                    "rightstick", "dpad_up", "dpad_down", "dpad_left", "dpad_right", "guide")
"""SDL's name for each standard-layout button; 6 and 7 are the triggers, read as SDL's trigger axes"""
PAGE_BUTTONS = {"takeover": "takeover", "hand_back": "hand_back", "skip": "skip", "e_stop": "e_stop",
                "mark_success": "mark_success", "mark_failure": "mark_failure"}
"""the page's buttons: each presses the keyboard's key for the same role (KeyboardConfig field)"""
RELEASE_E_STOP = "release_e_stop"
"""the page's button that releases a latched e-stop (the operator's deliberate act, as twisting a mushroom button)"""
BROWSER_KEYS = {" ": "space", "Enter": "return", "Escape": "escape", "Tab": "tab", "ArrowUp": "up",
                "ArrowDown": "down", "ArrowLeft": "left", "ArrowRight": "right", "Backspace": "backspace"}
"""KeyboardEvent.key → pygame's key name, where they differ beyond case"""
PINGS_KEPT = 8  # clock samples the offset is chosen from (the quickest round trip wins)


@dataclass
class BrowserConfig:
    listen: str = "127.0.0.1:8765"
    """where the operator page is served, HOST:PORT (a remote operator: TLS, or an SSH tunnel to this port)"""
    tls_cert: str = ""
    """PEM certificate for https (with tls_key); empty: plain http, for localhost or a tunnel"""
    tls_key: str = ""
    """PEM private key of tls_cert"""
    tilt_deg: float = 30.0
    """a phone tilted this far from where the hold button was pressed is full deflection"""
    phone_axes: list[str] = field(default_factory=lambda: ["gamma", "-beta"])
    """which tilt drives each action dim (gamma: roll right, beta: pitch toward you; "-" flips it)"""
    xr_reach_m: float = 0.2
    """a WebXR controller moved this far from where its trigger was pressed is full deflection"""
    xr_axes: list[str] = field(default_factory=lambda: ["x", "-z", "y"])
    """which controller axis drives each action dim (x: right, y: up, z: toward you)"""
    deadzone: float = 0.05
    """fraction of full deflection read as zero, for the phone and the XR controller"""
    send_hz: float = 50.0
    """the page sends its input this often, and on every input event"""
    view_hz: float = 15.0
    """how often each operator's page gets the queue, its robot and a camera frame"""


def _fail(where: str, expected: str, got: object) -> ValueError:
    return ValueError(f"browser message field {where!r}: expected {expected}, got {str(got)[:60]!r}")


def _number(value: object, where: str, low: float, high: float) -> float:
    if type(value) not in (int, float) or not low <= value <= high:  # type: ignore[operator]
        raise _fail(where, f"a number in [{low:g}, {high:g}]", value)
    return float(value)  # type: ignore[arg-type]


def _count(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value < 2**53:
        raise _fail(where, "an integer ≥ 0", value)
    return value


def _flag(value: object, where: str) -> bool:
    if type(value) is not bool:
        raise _fail(where, "true or false", value)
    return value


def _text(value: object, where: str, most: int) -> str:
    if type(value) is not str or len(value) > most or not value.isprintable():
        raise _fail(where, f"printable text of {most} characters at most", value)
    return value


def _items(value: object, where: str, most: int) -> list:
    if type(value) is not list or len(value) > most:
        raise _fail(where, f"a list of {most} items at most", value)
    return value


def _fields(message: object, where: str, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if type(message) is not dict:
        raise _fail(where, "an object", message)
    missing = [n for n in names if n not in message]
    extra = [n for n in message if n not in names + optional]
    if missing or extra:
        name = f"{where}.{(missing or extra)[0]}".lstrip(".")
        raise ValueError(f"browser message field {name!r}: " + ("missing" if missing else "not a field of it"))
    return message


def parse_message(message: object) -> dict[str, Any]:
    """A page's message checked field by field (ValueError naming the first bad one); kinds: input, key, button,
    pong. Numbers are bounded, lists and text short, nothing else is accepted."""
    kind = message.get("kind") if type(message) is dict else None
    if kind == "input":
        m = _fields(message, "", ("kind", "seq", "t", "visible", "device", "keys"), ("pad", "phone", "xr"))
        if m["device"] not in KINDS:
            raise _fail("device", f"one of {KINDS}", m["device"])
        out = {"visible": _flag(m["visible"], "visible"), "device": m["device"],
               "keys": [_text(k, f"keys[{i}]", 24) for i, k in enumerate(_items(m["keys"], "keys", 16))]}
        if m.get("pad") is not None:
            pad = _fields(m["pad"], "pad", ("id", "axes", "buttons", "values"))
            out["pad"] = {"id": _text(pad["id"], "pad.id", 120),
                          "axes": [_number(a, f"pad.axes[{i}]", -1, 1) for i, a in enumerate(_items(
                              pad["axes"], "pad.axes", 8))],
                          "buttons": [_flag(b, f"pad.buttons[{i}]") for i, b in enumerate(_items(
                              pad["buttons"], "pad.buttons", 24))],
                          "values": [_number(v, f"pad.values[{i}]", 0, 1) for i, v in enumerate(_items(
                              pad["values"], "pad.values", 24))]}
        if m.get("phone") is not None:
            phone = _fields(m["phone"], "phone", ("beta", "gamma", "hold"))
            out["phone"] = {"beta": _number(phone["beta"], "phone.beta", -180, 180),
                            "gamma": _number(phone["gamma"], "phone.gamma", -90, 90),
                            "hold": _flag(phone["hold"], "phone.hold")}
        if m.get("xr") is not None:
            xr = _fields(m["xr"], "xr", ("pos", "trigger"))
            pos = _items(xr["pos"], "xr.pos", 3)
            if len(pos) != 3:
                raise _fail("xr.pos", "[x, y, z] in metres", pos)
            out["xr"] = {"pos": [_number(p, f"xr.pos[{i}]", -100, 100) for i, p in enumerate(pos)],
                         "trigger": _flag(xr["trigger"], "xr.trigger")}
    elif kind == "key":
        m = _fields(message, "", ("kind", "seq", "t", "key", "down"))
        out = {"key": _text(m["key"], "key", 24), "down": _flag(m["down"], "down")}
    elif kind == "button":
        m = _fields(message, "", ("kind", "seq", "t", "name"))
        if m["name"] not in (*PAGE_BUTTONS, RELEASE_E_STOP):
            raise _fail("name", f"one of {(*PAGE_BUTTONS, RELEASE_E_STOP)}", m["name"])
        out = {"name": m["name"]}
    elif kind == "pong":
        m = _fields(message, "", ("kind", "seq", "t", "id"))
        out = {"id": _count(m["id"], "id")}
    else:
        raise _fail("kind", "input, key, button or pong", kind)
    return {"kind": kind, "seq": _count(m["seq"], "seq"), "t": _number(m["t"], "t", 0, 1e15) / 1000.0, **out}


def key_name(browser_key: str) -> str:
    """pygame's name for a KeyboardEvent.key ("a", " " → "space", "Enter" → "return")."""
    return BROWSER_KEYS.get(browser_key, browser_key.lower())


def sdl_state(pad: dict[str, Any], t: float) -> GamepadState:
    """A standard-layout Gamepad API pad as SDL names it (missing axes and buttons read as rest)."""
    axes, buttons, values = pad["axes"], pad["buttons"], pad["values"]
    state = {name: float(axes[i]) if i < len(axes) else 0.0 for i, name in enumerate(STANDARD_AXES)}
    state["triggerleft"] = float(values[6]) if len(values) > 6 else 0.0
    state["triggerright"] = float(values[7]) if len(values) > 7 else 0.0
    pressed = {name: i < len(buttons) and buttons[i] for i, name in enumerate(STANDARD_BUTTONS) if name}
    return GamepadState(state, pressed, t)


def relative_axes(values: dict[str, float], origin: dict[str, float], full: float, wrap: float = 0.0
                  ) -> dict[str, float]:
    """Each value's offset from its origin as a fraction of `full`, in [-1, 1] (angles wrapped when wrap > 0)."""
    out = {}
    for name, value in values.items():
        delta = value - origin[name]
        if wrap:
            delta = (delta + wrap / 2) % wrap - wrap / 2
        out[name] = max(-1.0, min(1.0, delta / full))
    return out


class BrowserDevice:
    """One operator's page: HumanDevice for the station; push/connected/disconnected for the page's connection."""

    def __init__(self, config: BrowserConfig, gamepad: GamepadConfig, keyboard: KeyboardConfig, act_dim: int,
                 clock: Callable[[], float] = time.time):
        for name, axis_map in (("phone_axes", config.phone_axes), ("xr_axes", config.xr_axes)):
            known = {"phone_axes": ("beta", "gamma"), "xr_axes": ("x", "y", "z")}[name]
            if any(a.lstrip("-") not in known for a in axis_map):
                raise ValueError(f"browser: {name} {axis_map} names an axis not in {known}")
        self.config, self.act_dim, self.clock = config, act_dim, clock
        self.mapping = GamepadMapping(gamepad, act_dim)
        self.keyboard_config = keyboard
        self.lock = threading.Lock()
        self.session = 0
        self.open = False
        self.label = "browser"
        self.fresh = FreshReadings()
        self._reset()

    def _reset(self) -> None:
        self.keyboard = KeyboardTeleop(self.keyboard_config, self.act_dim)
        self.latest: dict[str, Any] | None = None  # the newest input message
        self.t_input: float | None = None  # its time on this clock
        self.seq = -1
        self.origin: dict[str, dict[str, float] | None] = {"phone": None, "xr": None}
        self.pings: dict[int, float] = {}  # ping id → when it was sent
        self.pinged = 0
        self.samples: deque[tuple[float, float]] = deque(maxlen=PINGS_KEPT)  # (round trip, page clock − ours)
        self.offset: float | None = None
        self.t_engaged: float | None = None  # when the page's current takeover input began, on this clock

    def connected(self) -> int:
        """A page's socket opened; returns its session (pass it to push). A newer one replaces an older one."""
        with self.lock:
            self.session += 1
            self.open = True
            self._reset()
            return self.session

    def disconnected(self, session: int) -> None:
        with self.lock:
            if session == self.session:
                self.open = False
                self._reset()

    def ping(self, now: float) -> dict[str, Any]:
        """A clock ping to send to the page (it answers with a pong carrying its clock)."""
        with self.lock:
            self.pinged += 1
            self.pings[self.pinged] = now
            for old in sorted(self.pings)[:-PINGS_KEPT]:
                del self.pings[old]
            return {"kind": "ping", "id": self.pinged}

    def push(self, message: dict, now: float, session: int | None = None) -> None:
        """A message from the page, arrived at `now`; ValueError naming the field that is wrong. A session other
        than the newest (a replaced tab's last words) is ignored."""
        m = parse_message(message)
        with self.lock:
            if session is not None and session != self.session or not self.open:
                return
            if m["seq"] <= self.seq:
                raise _fail("seq", f"a number above the last one ({self.seq})", m["seq"])
            self.seq = m["seq"]
            if m["kind"] == "pong":
                self._clock_sample(m["id"], m["t"], now)
                return
            t = self._local_time(m["t"], now)
            if m["kind"] == "key":
                (self.keyboard.press if m["down"] else self.keyboard.release)(key_name(m["key"]))
            elif m["kind"] == "button" and m["name"] == RELEASE_E_STOP:
                self.keyboard.clear_e_stop()
            elif m["kind"] == "button":
                key = getattr(self.keyboard_config, PAGE_BUTTONS[m["name"]])
                self.keyboard.press(key)
                self.keyboard.release(key)
            else:
                self._input(m, t)
            self._note_engaged(t)

    def _input(self, m: dict[str, Any], t: float) -> None:
        held = {key_name(k) for k in m["keys"]}
        for key in self.keyboard.pressed - held:  # a key whose release never came (the page lost focus)
            self.keyboard.release(key)
        if not m["visible"]:
            self.keyboard.engaged = False
        phone, xr = m.get("phone"), m.get("xr")
        if phone is None or not phone["hold"]:
            self.origin["phone"] = None
        elif self.origin["phone"] is None:
            self.origin["phone"] = {"beta": phone["beta"], "gamma": phone["gamma"]}
        if xr is None or not xr["trigger"]:
            self.origin["xr"] = None
        elif self.origin["xr"] is None:
            self.origin["xr"] = dict(zip("xyz", xr["pos"], strict=True))
        pad = f" ({m['pad']['id'][:60]})" if m["device"] == "gamepad" and m.get("pad") else ""
        self.label = f"browser {m['device']}{pad}"
        self.keyboard.pumped(t)
        self.latest, self.t_input = m, t
        self.fresh.add(t)

    def _note_engaged(self, t: float) -> None:
        """Keeps when the takeover input began (message by message: a burst of them reaches reading() at once)."""
        m = self.latest
        engaged = m is not None and m["visible"] and (
            self.keyboard.engaged if m["device"] == "keyboard" else self._held(m, t, t).takeover)
        if not engaged:
            self.t_engaged = None
        elif self.t_engaged is None:
            self.t_engaged = t

    def _clock_sample(self, ping_id: int, page_t: float, now: float) -> None:
        sent = self.pings.pop(ping_id, None)
        if sent is None:
            raise _fail("id", "the id of a ping this server sent", ping_id)
        self.samples.append((now - sent, page_t - (sent + now) / 2))
        self.offset = min(self.samples)[1]

    def _local_time(self, page_t: float, now: float) -> float:
        """The page's time on this clock; before the first pong (or for a time ahead of now), the arrival time."""
        return now if self.offset is None else min(now, page_t - self.offset)

    def reading(self) -> DeviceReading:
        now = self.clock()
        with self.lock:
            m, t = self.latest, self.t_input
            keys = self.keyboard.reading(now)  # its one-shots (hand back, skip, marks: keys or the page's buttons)
            if m is None or t is None:
                return replace(keys, action=None, takeover=False, deadman=False, age_s=0.0)
            if m["device"] == "keyboard":
                reading = keys
            else:
                held = self._held(m, t, now)
                reading = replace(held, hand_back=held.hand_back or keys.hand_back, skip=held.skip or keys.skip,
                                  e_stop=held.e_stop or keys.e_stop, mark=held.mark or keys.mark)
            if not m["visible"]:  # a hidden tab: nobody is looking, the deadman reads released
                reading = replace(reading, action=None, takeover=False, deadman=False)
            link = min(self.samples)[0] / 2 if self.samples else 0.0
            return replace(reading, age_s=now - t, t_read=t, link_s=link,
                           t_engaged=self.t_engaged if reading.takeover else None)

    def _held(self, m: dict[str, Any], t: float, now: float) -> DeviceReading:
        """The reading of a device held to intervene: a pad's shoulder, the phone's hold button, the XR trigger."""
        c, kind = self.config, m["device"]
        if kind == "gamepad":
            pad = m.get("pad")
            return DeviceReading(action=None, deadman=False) if pad is None else self.mapping.reading(
                sdl_state(pad, t), now)
        origin = self.origin[kind]
        if origin is None:
            return DeviceReading(action=None, deadman=False)
        if kind == "phone":
            axes, axis_map = relative_axes({k: m["phone"][k] for k in origin}, origin, c.tilt_deg, 360.0), \
                c.phone_axes
        else:
            axes, axis_map = relative_axes(dict(zip("xyz", m["xr"]["pos"], strict=True)), origin, c.xr_reach_m), \
                c.xr_axes
        action = np.zeros(self.act_dim)
        used = axis_map[: self.act_dim]
        action[: len(used)] = map_axes(axes, used, c.deadzone, 1.0)
        return DeviceReading(action=action, takeover=True, deadman=True)

    def present(self) -> bool:
        return self.open

    def e_stopped(self) -> bool:
        """The operator's e-stop (a key or the page's button) is latched: every robot offered to them stops."""
        with self.lock:
            return self.keyboard.e_stop

    def rate_hz(self) -> float:
        with self.lock:
            return self.fresh.rate_hz(self.clock())

    def clock_offset(self) -> float | None:
        """The page's clock minus this one (seconds), from the quickest ping round trip; None before a pong."""
        return self.offset

