"""The frame format of the segment log and the scan of one file.

A frame is a 10-byte header (magic, payload length uint32, CRC32 of the payload; little-endian)
then the payload. A scan yields the good frames, reports bad ones with their byte offset and
resynchronises on the next good frame, so one damaged frame never hides the ones after it.

    data = frame(b"payload")
    records, problems, end = scan_file(path)   # end: just after the last complete frame
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

MAGIC = b"\xd4\x67"
HEADER = struct.Struct("<2sII")


def frame(payload: bytes) -> bytes:
    """The on-disk bytes of one frame."""
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class LogProblem:
    """Something wrong in the log: which file, at which byte offset, and what."""

    file: Path
    offset: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}@{self.offset}: {self.what}"


class LogRecord(NamedTuple):
    """One good frame: where it starts and its payload."""

    file: Path
    offset: int
    payload: bytes


def _frame_at(data: bytes, pos: int) -> tuple[int, bool] | None:
    """(payload length, CRC ok) of a structurally complete frame at pos, or None."""
    if pos + HEADER.size > len(data):
        return None
    magic, length, crc = HEADER.unpack_from(data, pos)
    if magic != MAGIC or pos + HEADER.size + length > len(data):
        return None
    start = pos + HEADER.size
    return length, zlib.crc32(memoryview(data)[start:start + length]) == crc


def _good_at(data: bytes, pos: int) -> bool:
    found = _frame_at(data, pos)
    return found is not None and found[1]


def _next_good(data: bytes, pos: int) -> int | None:
    """Offset of the next frame with a valid CRC at or after pos, or None."""
    while (pos := data.find(MAGIC, pos)) >= 0:
        if _good_at(data, pos):
            return pos
        pos += 1
    return None


def scan_file(path: Path) -> tuple[list[LogRecord], list[LogProblem], int]:
    """Good frames, problems, and the end offset of the last complete frame of one file."""
    data = path.read_bytes()
    records: list[LogRecord] = []
    problems: list[LogProblem] = []
    pos = end = 0
    while pos < len(data):
        found = _frame_at(data, pos)
        if found and found[1]:
            start = pos + HEADER.size
            records.append(LogRecord(path, pos, data[start:start + found[0]]))
            pos = end = start + found[0]
            continue
        nxt = _next_good(data, pos + 1)
        skip_to = pos + HEADER.size + found[0] if found else -1
        if nxt == skip_to or (nxt is None and skip_to == len(data)):  # only the payload is bad
            problems.append(LogProblem(path, pos, f"bad CRC in frame of {skip_to - pos} bytes, skipped"))
        elif nxt is None:  # nothing good follows: a torn (or garbled) tail
            break
        else:
            problems.append(LogProblem(path, pos, f"{'bad CRC' if found else 'bad frame header'}; skipped "
                                                  f"{nxt - pos} bytes to the next good frame at {nxt}"))
        pos = end = skip_to if nxt is None else nxt
    return records, problems, end
