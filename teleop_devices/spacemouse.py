"""3Dconnexion SpaceMouse over HID (hidapi): a pure report parser, a pure mapping and a driver.

    mouse = SpaceMouse.open()                  # first SpaceMouse found; DeviceError says how to fix permissions
    reading = mouse.reading(act_dim=3)         # drains every pending report, then maps the newest state

The device sends reports only while an axis is off-centre or a button changes; at rest it sends nothing,
so `age_s` grows while the puck is untouched. A caller may read "no report" as "device at rest" only while
the device is still enumerated (`SpaceMouse.present()`); the max-age policy lives in the safety layer.
"""

from __future__ import annotations

import difflib
import logging
import math
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType, ModuleType
from typing import Any, Protocol

import numpy as np

from teleop_devices.axes import apply_deadzone
from teleop_devices.reading import DeviceReading

logger = logging.getLogger(__name__)

VENDOR_3DCONNEXION = 0x256F
VENDOR_LOGITECH = 0x046D
KNOWN_DEVICES: MappingProxyType[tuple[int, int], str] = MappingProxyType({
    (VENDOR_3DCONNEXION, 0xC635): "SpaceMouse Compact",
    (VENDOR_3DCONNEXION, 0xC62E): "SpaceMouse Wireless",
    (VENDOR_3DCONNEXION, 0xC63A): "SpaceMouse Wireless",
    (VENDOR_3DCONNEXION, 0xC632): "SpaceMouse Pro Wireless",
    (VENDOR_3DCONNEXION, 0xC638): "SpaceMouse Pro Wireless (Bluetooth)",
    (VENDOR_3DCONNEXION, 0xC633): "SpaceMouse Enterprise",
    (VENDOR_3DCONNEXION, 0xC641): "SpaceMouse USB",
    (VENDOR_3DCONNEXION, 0xC652): "3Dconnexion Universal Receiver",
    (VENDOR_LOGITECH, 0xC626): "SpaceNavigator",
    (VENDOR_LOGITECH, 0xC627): "SpaceExplorer",
    (VENDOR_LOGITECH, 0xC62B): "SpaceMouse Pro",
    (VENDOR_LOGITECH, 0xC625): "SpacePilot",
    (VENDOR_LOGITECH, 0xC629): "SpacePilot Pro",
})
"""(vendor_id, product_id) -> model name; read-only."""

AXES = ("x", "y", "z", "rx", "ry", "rz")
AXIS_LIMIT = 2000  # full scale is about ±350; anything beyond this is a corrupt report, not a hard push
RULES_PATH = "/etc/udev/rules.d/99-spacemouse.rules"


class ReportError(ValueError):
    """A HID report that cannot be parsed; the message names the device and the bytes in hex."""

    def __init__(self, device: str, data: bytes, problem: str, kind: str):
        self.device, self.data, self.problem, self.kind = device, data, problem, kind
        self.report_id = data[0] if data else None
        super().__init__(f"{device}: {problem} in report [{data.hex(' ') or 'empty'}] ({len(data)} bytes)")


class DeviceError(OSError):
    """A SpaceMouse that cannot be found or opened; the message says how to fix it."""


@dataclass(frozen=True)
class SixDof:
    """Raw device state: axis counts (about ±350 at full deflection), button bitmask, time of the last report."""

    x: int = 0
    y: int = 0
    z: int = 0
    rx: int = 0
    ry: int = 0
    rz: int = 0
    buttons: int = 0
    t: float | None = None  # set by the caller (the driver's clock); None until the first good report


BUTTON_REPORT_BYTES = (3, 5)
"""report 3: the id, then a 16-bit (SpaceNavigator, SpaceMouse Compact and Wireless) or 32-bit (Pro, Enterprise) mask"""


def parse_report(data: bytes | Sequence[int], state: SixDof, device: str = "SpaceMouse") -> SixDof:
    """The state after one HID report; raises ReportError (and nothing else) for a report it cannot trust.

    Only the documented layouts are taken, each at its exact length: report 1, 7 bytes (translation as three
    little-endian int16 in bytes 1-6) or 13 bytes (newer devices: rotation in bytes 7-12 too); report 2, 7 bytes
    (older devices: rotation); report 3, 3 or 5 bytes (a 16- or 32-button bitmask). Anything else could be a
    torn or corrupt report, and a corrupt button report must never read as "deadman held".
    """
    try:
        raw = bytes(data)
    except (TypeError, ValueError) as e:
        raise ReportError(device, b"", f"not a byte string ({e}): {data!r:.80}", "malformed") from None
    if not raw:
        raise ReportError(device, raw, "empty report", "short")
    rid, n = raw[0], len(raw)
    if rid == 1 and n == 7:
        x, y, z = struct.unpack_from("<3h", raw, 1)
        new = replace(state, x=x, y=y, z=z)
    elif rid == 1 and n == 13:
        x, y, z, rx, ry, rz = struct.unpack_from("<6h", raw, 1)
        new = replace(state, x=x, y=y, z=z, rx=rx, ry=ry, rz=rz)
    elif rid == 2 and n == 7:
        rx, ry, rz = struct.unpack_from("<3h", raw, 1)
        new = replace(state, rx=rx, ry=ry, rz=rz)
    elif rid == 3 and n in BUTTON_REPORT_BYTES:
        return replace(state, buttons=int.from_bytes(raw[1:], "little"))
    elif rid in (1, 2, 3):
        need = "7 or 13" if rid == 1 else "7" if rid == 2 else "3 or 5"
        raise ReportError(device, raw, f"torn report id {rid}: {n} bytes, expected {need}", "short")
    else:
        raise ReportError(device, raw, f"unknown report id {rid}", "unknown_id")
    for name in AXES:
        value = getattr(new, name)
        if abs(value) > AXIS_LIMIT:
            raise ReportError(device, raw, f"axis {name}={value} beyond ±{AXIS_LIMIT}", "range")
    return new


def _parse_axis(entry: str) -> tuple[float, str]:
    return (-1.0, entry[1:]) if entry.startswith("-") else (1.0, entry)


@dataclass
class SpaceMouseConfig:
    """How the six raw axes and the buttons become a DeviceReading."""

    full_scale: float = 350.0
    """raw axis count at full deflection; raw / full_scale is the normalised axis in [-1, 1]"""
    deadzone: float = 0.05
    """fraction of full scale read as zero (the puck rarely rests at exactly 0); the rest is rescaled to reach 1"""
    axis_map: Sequence[str] = ("x", "y", "z", "rx", "ry", "rz")
    """raw axis driving each action dim, in order: one of x y z rx ry rz, "-" in front flips it"""
    scale: Sequence[float] = (1.0,)
    """gain per action dim, applied before clipping to [-1, 1]; a single value applies to every dim"""
    takeover_button: int = 0
    """button bit to take over and hold (the deadman): left button; releasing it hands the robot to safety"""
    hand_back_button: int | None = 1
    """button bit that hands control back to the policy: right button; None disables it"""
    e_stop_button: int | None = None
    """button bit for an emergency stop; None by default (two-button models have no spare button)"""

    def __post_init__(self) -> None:
        self.axis_map, self.scale = tuple(self.axis_map), tuple(float(s) for s in self.scale)
        if self.full_scale <= 0:
            raise ValueError(f"spacemouse: full_scale must be > 0, got {self.full_scale}")
        if not 0.0 <= self.deadzone < 1.0:
            raise ValueError(f"spacemouse: deadzone must be in [0, 1), got {self.deadzone}")
        for i, entry in enumerate(self.axis_map):
            name = _parse_axis(entry)[1]
            if name not in AXES:
                close = difflib.get_close_matches(name, AXES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"spacemouse: axis_map[{i}]={entry!r} is not one of {AXES} (optionally '-'){hint}")
        if len(self.scale) not in (1, len(self.axis_map)):
            raise ValueError(f"spacemouse: scale has {len(self.scale)} values; give 1 or {len(self.axis_map)}")
        bits = [b for b in (self.takeover_button, self.hand_back_button, self.e_stop_button) if b is not None]
        if any(b < 0 for b in bits) or len(set(bits)) != len(bits):
            raise ValueError(f"spacemouse: button bits must be distinct and >= 0, got {bits}")


def to_reading(state: SixDof, config: SpaceMouseConfig, act_dim: int, now: float) -> DeviceReading:
    """Pure mapping: raw state -> DeviceReading. The action is None unless the deadman (takeover) is held."""
    if act_dim > len(config.axis_map):
        raise ValueError(f"spacemouse: axis_map has {len(config.axis_map)} axes, the task needs {act_dim}")

    def pressed(bit: int | None) -> bool:
        return bit is not None and bool(state.buttons >> bit & 1)

    held = pressed(config.takeover_button)
    action = None
    if held and state.t is not None:
        scale = tuple(config.scale) * act_dim if len(config.scale) == 1 else tuple(config.scale[:act_dim])
        values = []
        for entry, gain in zip(config.axis_map[:act_dim], scale, strict=True):
            sign, name = _parse_axis(entry)
            values.append(sign * gain * apply_deadzone(getattr(state, name) / config.full_scale, config.deadzone))
        action = np.clip(np.array(values, dtype=float), -1.0, 1.0)
    age = math.inf if state.t is None else max(0.0, now - state.t)
    return DeviceReading(action=action, takeover=held, hand_back=pressed(config.hand_back_button), deadman=held,
                         e_stop=pressed(config.e_stop_button), age_s=age)


class HidBackend(Protocol):
    """What the driver needs from a HID handle (hid.device, or a fake in tests)."""

    def read(self, size: int, timeout_ms: int = 0) -> list[int] | bytes: ...  # non-blocking; empty when none

    def close(self) -> None: ...


def _hid() -> ModuleType:
    try:
        import hid
    except ImportError as e:
        raise DeviceError("spacemouse: hidapi is missing: pip install hidapi (not the clashing 'hid' package)") from e
    return hid


def udev_rule(vendor_id: int, product_id: int | None = None) -> str:
    """The udev line giving the logged-in user (and everyone: mode 0666) access to this device's hidraw node."""
    product = "" if product_id is None else f', ATTRS{{idProduct}}=="{product_id:04x}"'
    return f'KERNEL=="hidraw*", ATTRS{{idVendor}}=="{vendor_id:04x}"{product}, MODE="0666", TAG+="uaccess"'


def enumerate_spacemice() -> list[dict[str, Any]]:
    """Connected devices from the table: name, vendor_id, product_id, path (str), serial_number; [] if none.

    A model can expose several HID interfaces; where one is the multi-axis controller (usage page 1,
    usage 8) only that one is kept.
    """
    found = []
    for d in _hid().enumerate():
        key = (d.get("vendor_id", 0), d.get("product_id", 0))
        if key in KNOWN_DEVICES:
            path = d.get("path", b"")
            found.append({"name": KNOWN_DEVICES[key], "vendor_id": key[0], "product_id": key[1],
                          "path": path.decode(errors="surrogateescape") if isinstance(path, bytes) else str(path),
                          "serial_number": d.get("serial_number") or "",
                          "usage": (d.get("usage_page", 0), d.get("usage", 0))})
    axis_devices = {(d["vendor_id"], d["product_id"], d["serial_number"]) for d in found if d["usage"] == (1, 8)}
    return [d for d in found if d["usage"] == (1, 8)
            or (d["vendor_id"], d["product_id"], d["serial_number"]) not in axis_devices]


class SpaceMouse:
    """One SpaceMouse: owns its backend and state (instances share nothing, so two devices work at once)."""

    READ_SIZE = 64
    MAX_REPORTS_PER_POLL = 4096  # far above the kernel's hidraw queue; only a runaway backend reaches it

    def __init__(self, backend: HidBackend, config: SpaceMouseConfig | None = None, name: str = "SpaceMouse",
                 path: str = "", clock: Callable[[], float] = time.monotonic, rate_window_s: float = 2.0):
        self.backend, self.config, self.name, self.path = backend, config or SpaceMouseConfig(), name, path
        self.clock = clock
        self.state = SixDof()
        self.reports = 0  # good reports applied
        self.bad_reports = 0  # reports skipped as corrupt, torn or unknown
        self.connected = True  # False after a read error (unplugged) or close()
        self.rate_window_s = rate_window_s
        self._history: deque[tuple[float, int]] = deque()  # (poll time, reports so far) for rate_hz
        self._warned: set[tuple[str, int | None]] = set()

    @classmethod
    def open(cls, path: str | bytes | None = None, config: SpaceMouseConfig | None = None, index: int = 0,
             clock: Callable[[], float] = time.monotonic) -> SpaceMouse:
        """Opens the device at `path`, or the index-th one enumerate_spacemice() finds; raises DeviceError."""
        hid, found = _hid(), enumerate_spacemice()
        if path is None:
            if not 0 <= index < len(found):
                listed = ", ".join(f"{d['name']} ({d['path']})" for d in found) or "none"
                raise DeviceError(f"spacemouse: no SpaceMouse at index {index}; found: {listed}. Is it plugged in "
                                  "(and, for a wireless model, is its receiver)?")
            info = found[index]
        else:
            p = path.decode(errors="surrogateescape") if isinstance(path, bytes) else path
            info = next((d for d in found if d["path"] == p), {"name": "SpaceMouse", "path": p, "vendor_id": None})
        device = hid.device()
        try:
            device.open_path(info["path"].encode(errors="surrogateescape"))
            device.set_nonblocking(1)
        except OSError as e:
            raise DeviceError(_open_help(info, e)) from e
        return cls(device, config, name=info["name"], path=info["path"], clock=clock)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.path or 'no path'})"

    @property
    def last_report_t(self) -> float | None:
        """Clock time of the newest good report; None before the first."""
        return self.state.t

    def poll(self) -> int:
        """Drains every pending report so the state is the newest; returns how many good reports it applied.

        Reading one report per tick lets the kernel queue fill, and the robot keeps moving ~1 s after the
        puck is released. Bad reports are skipped, counted and logged once per kind; poll never raises.
        """
        if not self.connected:
            return 0
        state, applied, now = self.state, 0, self.clock()
        for _ in range(self.MAX_REPORTS_PER_POLL):
            try:
                data = self.backend.read(self.READ_SIZE, 0)
            except OSError as e:
                logger.error("%s: read failed (%s); treating the device as disconnected", self.label, e)
                self.connected = False
                break
            if not data:
                break
            try:
                state = parse_report(data, state, self.label)
                applied += 1
            except ReportError as e:
                self.bad_reports += 1
                if (e.kind, e.report_id) not in self._warned:
                    self._warned.add((e.kind, e.report_id))
                    logger.warning("skipping bad report (further ones like it are only counted): %s", e)
        else:
            logger.warning("%s: still reports pending after %d reads", self.label, self.MAX_REPORTS_PER_POLL)
        if applied:
            self.state = replace(state, t=now)
            self.reports += applied
            self._history.append((now, self.reports))
        return applied

    def reading(self, act_dim: int) -> DeviceReading:
        """Polls, then maps the newest state; age_s = now - last good report (inf before the first one).

        Disconnected: the deadman reads released and the action None, so the robot holds.
        """
        self.poll()
        state = self.state if self.connected else replace(self.state, buttons=0)
        return to_reading(state, self.config, act_dim, self.clock())

    def read(self) -> DeviceReading:
        """TeleopDevice protocol: reading() over every configured axis."""
        return self.reading(len(self.config.axis_map))

    def rate_hz(self, now: float | None = None) -> float:
        """Good reports per second over the last rate_window_s (0 at rest: the device sends nothing then)."""
        now = self.clock() if now is None else now
        while self._history and self._history[0][0] < now - self.rate_window_s:
            self._history.popleft()
        if len(self._history) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._history[0], self._history[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def present(self) -> bool:
        """Still enumerated (hid.enumerate() scans the bus: call it at a low rate, not every tick)."""
        return self.connected and (not self.path or any(d["path"] == self.path for d in enumerate_spacemice()))

    def close(self) -> None:
        self.connected = False
        self.backend.close()


def _open_help(info: dict[str, Any], error: OSError) -> str:
    vendor = info.get("vendor_id")
    rule = udev_rule(vendor or VENDOR_3DCONNEXION, info.get("product_id") if vendor == VENDOR_LOGITECH else None)
    return (f"spacemouse: could not open {info['name']} at {info['path']} ({error}). On Linux this is usually "
            f"permission on /dev/hidraw*. Add the udev rule\n    {rule}\nto {RULES_PATH} (or copy this repo's "
            f"configs/udev/99-spacemouse.rules there), then run\n"
            f"    sudo udevadm control --reload-rules && sudo udevadm trigger\nand replug the device. If it still "
            f"fails, spacenavd may hold the device: sudo systemctl stop spacenavd")
