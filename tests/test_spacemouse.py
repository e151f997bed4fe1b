"""SpaceMouse driver: byte-level reports in the documented formats, through the real parser and driver.

No hardware in CI: a fake backend replays byte reports exactly as hidapi's read() returns them (list[int]).
"""

from __future__ import annotations

import logging
import re
from collections import deque
from pathlib import Path

import hid
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from teleop_devices.fakes import FakeHid, buttons, motion, rotation, translation
from teleop_devices.spacemouse import (
    KNOWN_DEVICES,
    DeviceError,
    ReportError,
    SixDof,
    SpaceMouse,
    SpaceMouseConfig,
    enumerate_spacemice,
    parse_report,
    to_reading,
)

RULES = Path(__file__).resolve().parents[1] / "configs" / "udev" / "99-spacemouse.rules"
axis = st.integers(-2000, 2000)


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def mouse(reports: list[bytes] | None = None, config: SpaceMouseConfig | None = None, **kw) -> SpaceMouse:
    return SpaceMouse(FakeHid(reports), config, name="SpaceMouse Compact", path="/dev/hidraw7", clock=Clock(), **kw)


# --- parser -------------------------------------------------------------------------------------------

@given(axis, axis, axis, axis, axis, axis)
def test_new_layout_round_trips(x: int, y: int, z: int, rx: int, ry: int, rz: int) -> None:
    s = parse_report(motion(x, y, z, rx, ry, rz), SixDof(buttons=5))
    assert (s.x, s.y, s.z, s.rx, s.ry, s.rz, s.buttons) == (x, y, z, rx, ry, rz, 5)


@given(axis, axis, axis, axis, axis, axis)
def test_old_layout_round_trips(x: int, y: int, z: int, rx: int, ry: int, rz: int) -> None:
    s = parse_report(translation(x, y, z), SixDof(rx=1, ry=2, rz=3))
    assert (s.x, s.y, s.z, s.rx, s.ry, s.rz) == (x, y, z, 1, 2, 3)  # rotation untouched by a 7-byte report 1
    s = parse_report(rotation(rx, ry, rz), s)
    assert (s.x, s.y, s.z, s.rx, s.ry, s.rz) == (x, y, z, rx, ry, rz)


def test_buttons_are_a_little_endian_bitmask() -> None:
    assert parse_report(buttons(0b10), SixDof()).buttons == 2
    assert parse_report(buttons(0x0201, size=4), SixDof(x=9)) == SixDof(x=9, buttons=0x0201)


@pytest.mark.parametrize("data, problem", [
    (motion(1, 2, 3, 4, 5, 6)[:10], "torn report id 1: 10 bytes"),
    (translation(1, 2, 3)[:4], "torn report id 1: 4 bytes"),
    (rotation(1, 2, 3)[:6], "torn report id 2: 6 bytes"),
    (b"\x03", "torn report id 3: 1 bytes"),
    (b"", "empty report"),
    (bytes([0x17, 0x64, 0x00]), "unknown report id 23"),
    (motion(0, 2001, 0), "axis y=2001 beyond"),
    (rotation(0, 0, -2500), "axis rz=-2500 beyond"),
])
def test_bad_reports_raise_report_error_naming_device_and_bytes(data: bytes, problem: str) -> None:
    with pytest.raises(ReportError) as info:
        parse_report(data, SixDof(), "SpaceMouse Compact (/dev/hidraw7)")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert problem in message
    assert "SpaceMouse Compact (/dev/hidraw7)" in message
    assert f"[{data.hex(' ') or 'empty'}]" in message


@given(st.binary(max_size=20) | st.lists(st.integers(-5, 300), max_size=20))
def test_parser_raises_nothing_but_report_error(data: bytes | list[int]) -> None:
    try:
        parse_report(data, SixDof())
    except ReportError:
        pass


# --- driver -------------------------------------------------------------------------------------------

def test_poll_drains_a_backlog_and_stops_on_release() -> None:
    push = [motion(i * 7, -i * 7, 0) for i in range(1, 50)] + [motion()]  # 50 reports; the last is the release
    m = mouse([buttons(1)] + push)
    assert m.poll() == 51
    assert m.backend.queue == deque()  # type: ignore[attr-defined]
    assert m.state == SixDof(buttons=1, t=100.0)
    r = m.reading(3)
    assert r.deadman and r.action is not None
    np.testing.assert_array_equal(r.action, np.zeros(3))  # zero on the tick right after release: no backlog lag


def test_each_tick_sees_the_newest_report_even_with_many_queued() -> None:
    m = mouse([buttons(1)])
    for tick in range(5):
        m.backend.push(*[motion(x=350) for _ in range(20)], motion(x=35 * tick))  # type: ignore[attr-defined]
        r = m.reading(1)
        assert r.action is not None and m.state.x == 35 * tick
    assert m.reports == 1 + 5 * 21


def test_bad_report_mid_stream_is_skipped_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    m = mouse([motion(x=100), motion(x=5)[:9], motion(x=200, rz=-50), motion(x=6)[:11], bytes([0x17, 9])])
    with caplog.at_level(logging.WARNING, logger="teleop_devices.spacemouse"):
        assert m.poll() == 2
        assert (m.state.x, m.state.y, m.state.rz) == (200, 0, -50)
        m.backend.push(motion(y=9)[:5], motion(y=40))  # type: ignore[attr-defined]
        assert m.poll() == 1
    assert (m.state.x, m.state.y, m.state.rz) == (0, 40, 0)
    assert (m.reports, m.bad_reports) == (3, 4)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # one torn report-1 warning, one unknown-id warning
    assert "01 05 00" in warnings[0] and "SpaceMouse Compact (/dev/hidraw7)" in warnings[0]
    assert "unknown report id 23" in warnings[1]


def test_two_devices_do_not_interfere() -> None:
    left = mouse([buttons(1), motion(x=350)])
    right = SpaceMouse(FakeHid([buttons(2), motion(y=-350)]), name="SpaceMouse Wireless", path="/dev/hidraw9",
                       clock=Clock(50.0))
    a, b = left.reading(2), right.reading(2)
    assert a.action is not None and b.action is None  # right holds only the hand-back button
    np.testing.assert_allclose(a.action, [1.0, 0.0])
    assert (b.hand_back, b.deadman, a.hand_back) == (True, False, False)
    assert (left.state.y, right.state.x, left.reports, right.reports) == (0, 0, 2, 2)
    left.backend.push(motion(x=7)[:3])  # type: ignore[attr-defined]
    left.poll()
    assert (left.bad_reports, right.bad_reports) == (1, 0)


def test_deadzone_scale_clip_and_axis_signs() -> None:
    config = SpaceMouseConfig(deadzone=0.1, axis_map=["-y", "x", "rz", "z"], scale=[0.5, 1.0, 2.0, 1.0])
    state = SixDof(x=17, y=-350, rz=35 + 157, z=-1400, buttons=1, t=0.0)  # x inside the dead-zone (17/350 < 0.1)
    r = to_reading(state, config, 4, now=0.0)
    assert r.action is not None
    # -y: 1.0 * 0.5; x: 0 in dead-zone; rz: 192/350 -> ((0.5486-0.1)/0.9) * 2 = 0.997; z: clipped to -1
    np.testing.assert_allclose(r.action, [0.5, 0.0, 2 * (192 / 350 - 0.1) / 0.9, -1.0])
    assert to_reading(state, config, 2, now=0.0).action.shape == (2,)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="axis_map has 4 axes, the task needs 5"):
        to_reading(state, config, 5, now=0.0)


def test_buttons_map_to_takeover_deadman_hand_back_and_e_stop() -> None:
    config = SpaceMouseConfig(e_stop_button=2)
    reading = {mask: to_reading(SixDof(buttons=mask, t=0.0), config, 3, now=0.0) for mask in (0, 1, 2, 4)}
    assert [(r.takeover, r.deadman, r.hand_back, r.e_stop) for r in reading.values()] == [
        (False, False, False, False), (True, True, False, False), (False, False, True, False),
        (False, False, False, True)]
    assert reading[0].action is None and reading[1].action is not None  # action only while the deadman is held


def test_age_grows_at_rest_and_rate_is_estimated() -> None:
    m = mouse()
    r = m.reading(3)
    assert r.action is None and r.age_s == float("inf") and not r.deadman and m.last_report_t is None
    clock: Clock = m.clock  # type: ignore[assignment]
    for _ in range(10):  # 10 reports per 0.1 s tick = 100 Hz
        m.backend.push(buttons(1), *[motion(x=100)] * 9)  # type: ignore[attr-defined]
        m.poll()
        clock.t += 0.1
    assert m.last_report_t == pytest.approx(100.9)
    assert m.rate_hz() == pytest.approx(100.0)
    clock.t += 0.5  # the device sends nothing at rest
    assert m.reading(3).age_s == pytest.approx(0.6)
    clock.t += 5.0
    assert m.rate_hz() == 0.0


def test_unplugged_device_reads_as_released_and_poll_does_not_raise() -> None:
    backend = FakeHid([buttons(1), motion(x=300)], fail_after=3)  # 2 reports, 1 empty read, then unplugged
    m = SpaceMouse(backend, clock=Clock())
    assert m.reading(1).deadman
    m.backend.push(motion(x=300))  # type: ignore[attr-defined]
    r = m.reading(1)
    assert not m.connected and not r.deadman and r.action is None and not m.present()
    m.close()
    assert m.backend.closed  # type: ignore[attr-defined]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"axis_map\[1\]='-ry2'.*did you mean 'ry'"):
        SpaceMouseConfig(axis_map=["x", "-ry2"])
    with pytest.raises(ValueError, match="scale has 2 values"):
        SpaceMouseConfig(scale=[1.0, 2.0])
    with pytest.raises(ValueError, match="distinct"):
        SpaceMouseConfig(hand_back_button=0)


# --- hidapi: enumerate and open -----------------------------------------------------------------------

HID_LIST = [
    {"path": b"/dev/hidraw3", "vendor_id": 0x256F, "product_id": 0xC635, "serial_number": "", "release_number": 0x437,
     "manufacturer_string": "3Dconnexion", "product_string": "SpaceMouse Compact", "usage_page": 1, "usage": 8,
     "interface_number": 0, "bus_type": 1},
    {"path": b"/dev/hidraw1", "vendor_id": 0x046D, "product_id": 0xC31C, "serial_number": "", "release_number": 0x6400,
     "manufacturer_string": "Logitech", "product_string": "USB Keyboard", "usage_page": 1, "usage": 6,
     "interface_number": 0, "bus_type": 1},
]


def test_enumerate_keeps_only_known_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hid, "enumerate", lambda *a: [])
    assert enumerate_spacemice() == []
    monkeypatch.setattr(hid, "enumerate", lambda *a: HID_LIST)
    [found] = enumerate_spacemice()
    assert (found["name"], found["vendor_id"], found["product_id"], found["path"]) == (
        "SpaceMouse Compact", 0x256F, 0xC635, "/dev/hidraw3")


def test_enumerate_keeps_only_the_multi_axis_interface_of_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = {"vendor_id": 0x256F, "product_id": 0xC652, "serial_number": "R1", "usage_page": 1, "usage": 8}
    listing = [{**receiver, "path": b"/dev/hidraw5"}, {**receiver, "path": b"/dev/hidraw6", "usage_page": 0xFF00},
               {**HID_LIST[0], "path": b"/dev/hidraw8", "usage_page": 0, "usage": 0}]  # usage unknown: kept
    monkeypatch.setattr(hid, "enumerate", lambda *a: listing)
    assert [(d["name"], d["path"]) for d in enumerate_spacemice()] == [
        ("3Dconnexion Universal Receiver", "/dev/hidraw5"), ("SpaceMouse Compact", "/dev/hidraw8")]


def test_open_permission_error_explains_the_udev_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    class Denied:
        def open_path(self, path: bytes) -> None:
            raise OSError("open failed")

    monkeypatch.setattr(hid, "enumerate", lambda *a: HID_LIST)
    monkeypatch.setattr(hid, "device", Denied)
    with pytest.raises(DeviceError) as info:
        SpaceMouse.open()
    message = str(info.value)
    for text in ("SpaceMouse Compact", "/dev/hidraw3", "open failed", "/etc/udev/rules.d/99-spacemouse.rules",
                 'KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0666", TAG+="uaccess"',
                 "sudo udevadm control --reload-rules && sudo udevadm trigger", "spacenavd"):
        assert text in message


def test_open_sets_nonblocking_and_reads_through_hidapi(monkeypatch: pytest.MonkeyPatch) -> None:
    class Device(FakeHid):
        def open_path(self, path: bytes) -> None:
            self.path = path

        def set_nonblocking(self, on: int) -> None:
            self.nonblocking = on

    monkeypatch.setattr(hid, "enumerate", lambda *a: HID_LIST)
    monkeypatch.setattr(hid, "device", lambda: Device([buttons(1), motion(z=-350)]))
    m = SpaceMouse.open()
    assert (m.backend.path, m.backend.nonblocking, m.label) == (  # type: ignore[attr-defined]
        b"/dev/hidraw3", 1, "SpaceMouse Compact (/dev/hidraw3)")
    np.testing.assert_allclose(m.reading(3).action, [0.0, 0.0, -1.0])  # type: ignore[arg-type]
    assert m.present()
    monkeypatch.setattr(hid, "enumerate", lambda *a: [])
    assert not m.present()
    with pytest.raises(DeviceError, match="no SpaceMouse at index 0; found: none"):
        SpaceMouse.open()


def test_udev_rules_cover_every_known_device() -> None:
    rules = [line for line in RULES.read_text().splitlines() if line.startswith("KERNEL==")]
    assert rules and all('MODE="0666"' in line and 'TAG+="uaccess"' in line for line in rules)
    for vendor, product in KNOWN_DEVICES:
        ids = [re.findall(r'ATTRS\{id(?:Vendor|Product)\}=="(\w+)"', line) for line in rules]
        assert [f"{vendor:04x}"] in ids or [f"{vendor:04x}", f"{product:04x}"] in ids, (vendor, product)
    assert all("idProduct" in line for line in rules if '"046d"' in line), "never grant every Logitech device"


@given(st.binary(min_size=0, max_size=64))
def test_a_button_report_of_an_undocumented_length_never_reads_as_a_press(tail):
    report = bytes([3, 0xFF]) + tail  # every button bit set, if it were taken
    if len(report) in (3, 5):
        assert parse_report(report, SixDof()).buttons & 1
    else:
        with pytest.raises(ReportError, match="expected 3 or 5"):
            parse_report(report, SixDof())


@pytest.mark.parametrize("report", [bytes([1]) + bytes(12) + b"\x00", bytes([2]) + bytes(7), bytes([1]) + bytes(8)])
def test_motion_reports_are_taken_only_at_their_exact_lengths(report):
    with pytest.raises(ReportError, match="torn report"):
        parse_report(report, SixDof())
