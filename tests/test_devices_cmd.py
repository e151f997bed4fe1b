"""`dagger devices`: listing and --watch, with a SpaceMouse replayed through the real driver."""

import hid
from rich.console import Console

from dagger.app import devices as cmd
from dagger.config import load_config
from teleop_devices.fakes import FakeHid, buttons, motion
from teleop_devices.spacemouse import SpaceMouse

COMPACT = {"vendor_id": 0x256F, "product_id": 0xC635, "path": b"/dev/hidraw7", "product_string": "SpaceMouse Compact",
           "manufacturer_string": "3Dconnexion", "serial_number": "", "usage_page": 1, "usage": 8,
           "interface_number": 0}
KEYBOARD = {**COMPACT, "vendor_id": 0x046D, "product_id": 0xC31C, "path": b"/dev/hidraw2", "product_string": "Keyboard"}


def test_lists_only_known_spacemice(monkeypatch):
    monkeypatch.setattr(hid, "enumerate", lambda *a: [COMPACT, KEYBOARD])
    found = cmd.list_devices()
    assert [d["kind"] for d in found] == ["spacemouse"]
    line = cmd.describe(found[0])
    assert "SpaceMouse Compact" in line and "256f:c635" in line and "/dev/hidraw7" in line


def test_watch_shows_live_readings(monkeypatch):
    monkeypatch.setattr(hid, "enumerate", lambda *a: [COMPACT])
    fake = FakeHid([buttons(1), motion(x=175)])
    monkeypatch.setattr(SpaceMouse, "open", classmethod(
        lambda cls, config=None, index=0, **kw: cls(fake, config, name="SpaceMouse Compact", path="/dev/hidraw7")))
    console = Console(record=True, width=120, force_terminal=True)
    cmd.watch(load_config(), console, act_dim=2, seconds=0.3)
    text = console.export_text()
    assert "SpaceMouse Compact" in text and "held" in text and "+0.47" in text
