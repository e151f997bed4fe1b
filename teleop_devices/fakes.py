"""Byte-level SpaceMouse reports and a fake HID backend, for tests and demos without hardware.

Reports are built from the documented formats and go through the real parser and driver:

    hid = FakeHid([buttons(1), motion(x=200)])
    mouse = SpaceMouse(hid, name="SpaceMouse Compact", path="/dev/hidraw7")
    hid.unplug()                       # every later read fails, as after the cable is pulled
"""

from __future__ import annotations

import struct
from collections import deque


def motion(x: int = 0, y: int = 0, z: int = 0, rx: int = 0, ry: int = 0, rz: int = 0) -> bytes:
    """Newer devices: report 1 with translation and rotation (13 bytes)."""
    return struct.pack("<B6h", 1, x, y, z, rx, ry, rz)


def translation(x: int, y: int, z: int) -> bytes:
    """Older devices: report 1 with translation only (7 bytes)."""
    return struct.pack("<B3h", 1, x, y, z)


def rotation(rx: int, ry: int, rz: int) -> bytes:
    """Older devices: report 2 with rotation (7 bytes)."""
    return struct.pack("<B3h", 2, rx, ry, rz)


def buttons(mask: int, size: int = 2) -> bytes:
    """Report 3: the button bitmask, little-endian."""
    return bytes([3]) + mask.to_bytes(size, "little")


class FakeHid:
    """Replays byte reports the way hid.device.read does in non-blocking mode: list[int], [] when empty.

    push() may be called from another thread (deque appends and pops are atomic).
    """

    def __init__(self, reports: list[bytes] | None = None, fail_after: int | None = None):
        self.queue: deque[bytes] = deque(reports or [])
        self.reads = 0
        self.fail_after = fail_after
        self.closed = False

    def push(self, *reports: bytes) -> None:
        self.queue.extend(reports)

    def unplug(self) -> None:
        self.fail_after = self.reads

    def read(self, size: int, timeout_ms: int = 0) -> list[int]:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise OSError("read error")
        return list(self.queue.popleft()[:size]) if self.queue else []

    def close(self) -> None:
        self.closed = True
