"""Append-only log of checksummed frames, rotated over numbered files in one directory.

A frame is a 10-byte header (magic, payload length uint32, CRC32 of the payload; little-endian)
followed by the payload. Opening a log for append truncates a torn tail (a frame cut short by a
crash) and appends after the last complete frame; reading reports and skips bad frames.

    with SegmentLog(run_dir / "segments") as log:
        log.append(payload, durable=True)   # on disk (fsync) when this returns
    scan = SegmentLog.read(run_dir / "segments")
    payloads = list(scan); print(scan.problems)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

MAGIC = b"\xd4\x67"
HEADER = struct.Struct("<2sII")
MAX_PAYLOAD = 2**32 - 1
DEFAULT_MAX_FILE_BYTES = 64 * 2**20
FILE_RE = re.compile(r"segments-(\d{6,})\.log")
LOCK_NAME = ".lock"


def file_name(index: int) -> str:
    return f"segments-{index:06d}.log"


def log_files(directory: Path) -> list[tuple[int, Path]]:
    """(number, path) of the log files in a directory, in order."""
    found = ((m, p) for p in directory.iterdir() if (m := FILE_RE.fullmatch(p.name)))
    return sorted((int(m.group(1)), p) for m, p in found)


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
        if found:  # complete frame, bad CRC: skip it by its length if a good frame (or EOF) follows
            skip_to = pos + HEADER.size + found[0]
            if skip_to == len(data) or _good_at(data, skip_to):
                problems.append(LogProblem(path, pos, f"bad CRC in frame of {found[0]} bytes, skipped"))
                pos = end = skip_to
                continue
        nxt = _next_good(data, pos + 1)
        if nxt is None:  # nothing decodable follows: a torn (or garbled) tail
            break
        what = "bad CRC" if found else "bad frame header"
        problems.append(LogProblem(path, pos, f"{what}; skipped {nxt - pos} bytes to the next good "
                                              f"frame at offset {nxt}"))
        pos = end = nxt
    return records, problems, end


@dataclass
class LogScan:
    """The frames of a log, in order; iterating fills `problems` (bad frames, torn tails, gaps)."""

    directory: Path
    problems: list[LogProblem] = field(default_factory=list)

    def records(self) -> Iterator[LogRecord]:
        """Yields (file, offset, payload) of every good frame; problems are logged and recorded."""
        self.problems = []
        if not self.directory.is_dir():
            raise FileNotFoundError(f"segment log directory {self.directory} does not exist")
        previous = None
        for number, path in log_files(self.directory):
            if previous is not None and number != previous + 1:
                self._report(LogProblem(path, 0, f"log file(s) missing before {path.name}"))
            previous = number
            records, problems, end = scan_file(path)
            size = path.stat().st_size
            if end < size:
                problems.append(LogProblem(path, end, f"torn tail: {size - end} bytes after the last "
                                                      "complete frame"))
            for problem in problems:
                self._report(problem)
            yield from records

    def __iter__(self) -> Iterator[bytes]:
        return (record.payload for record in self.records())

    def _report(self, problem: LogProblem) -> None:
        log.warning("segment log: %s", problem)
        self.problems.append(problem)


class SegmentLog:
    """Appends frames to the newest file of a directory; one writer per directory (flock)."""

    def __init__(self, directory: str | os.PathLike[str],
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.directory = Path(directory)
        self.max_file_bytes = max_file_bytes
        self.problems: list[LogProblem] = []  # what opening found and repaired
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock_fd)
            raise RuntimeError(f"segment log {self.directory} is already open for append elsewhere") from e
        files = log_files(self.directory)
        self._index = files[-1][0] if files else 0
        path = self.directory / file_name(self._index)
        if files:
            self._repair_tail(path)
        self._closed = False
        self._open(path)

    def _repair_tail(self, path: Path) -> None:
        _, _, end = scan_file(path)
        size = path.stat().st_size
        if end < size:
            problem = LogProblem(path, end, f"torn tail: truncated {size - end} bytes after the last "
                                            "complete frame")
            log.warning("segment log: %s", problem)
            self.problems.append(problem)
            with open(path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())

    def _open(self, path: Path) -> None:
        new = not path.exists()
        self._file = open(path, "ab", buffering=0)
        self._path = path
        self._size = self._file.seek(0, os.SEEK_END)
        if new:  # make the new directory entry itself durable
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    @property
    def path(self) -> Path:
        """The file being appended to."""
        return self._path

    def append(self, payload: bytes, durable: bool = False) -> None:
        """Writes one frame; durable=True returns only after it is fsync'd to disk."""
        if self._closed:
            raise ValueError(f"segment log {self.directory} is closed")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes exceeds the frame limit of {MAX_PAYLOAD}")
        data = frame(payload)
        if self._size > 0 and self._size + len(data) > self.max_file_bytes:
            self._rotate()
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view) or 0:]
        except BaseException:
            with contextlib.suppress(OSError):  # leave no partial frame behind
                os.ftruncate(self._file.fileno(), self._size)
            raise
        self._size += len(data)
        if durable:
            self.sync()

    def _rotate(self) -> None:
        os.fsync(self._file.fileno())  # frames already written stay durable across the switch
        self._file.close()
        self._index += 1
        self._open(self.directory / file_name(self._index))

    def sync(self) -> None:
        """Forces everything appended so far onto disk."""
        if not self._closed:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Syncs, closes the file and releases the directory lock; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
            os.close(self._lock_fd)

    def __enter__(self) -> SegmentLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def read(directory: str | os.PathLike[str]) -> LogScan:
        """A scan of every good frame in order; see LogScan.problems after iterating."""
        return LogScan(Path(directory))
