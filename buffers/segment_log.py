"""Append-only log of checksummed frames, rotated over numbered files in one directory.

Frames (buffers.frames) are checksummed. Opening for append truncates a torn tail (a frame cut
short by a crash) and appends after the last complete frame; reading reports and skips bad frames.

    with SegmentLog(run_dir / "segments") as log:
        log.append(payload, durable=True)   # on disk (fsync) when this returns
    scan = SegmentLog.read(run_dir / "segments"); payloads = list(scan); print(scan.problems)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from buffers.frames import HEADER, MAGIC, LogProblem, LogRecord, frame, scan_file

__all__ = ["HEADER", "MAGIC", "LogProblem", "LogRecord", "LogScan", "SegmentLog", "file_name", "frame",
           "log_files", "scan_file"]

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 64 * 2**20
FILE_RE = re.compile(r"segments-(\d{6,})\.log")
LOCK_NAME = ".lock"


def file_name(index: int) -> str:
    """The name of the index-th log file."""
    return f"segments-{index:06d}.log"


def log_files(directory: Path) -> list[tuple[int, Path]]:
    """(number, path) of the log files in a directory, in order."""
    found = ((m, p) for p in directory.iterdir() if (m := FILE_RE.fullmatch(p.name)))
    return sorted((int(m.group(1)), p) for m, p in found)


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
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise RuntimeError(f"segment log {self.directory} is already open for append") from e
            self._open_last()
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _open_last(self) -> None:
        """Opens the newest file for append, first truncating a torn tail."""
        files = log_files(self.directory)
        self._index = files[-1][0] if files else 0
        path = self.directory / file_name(self._index)
        if files and (end := scan_file(path)[2]) < (size := path.stat().st_size):  # torn tail
            self.problems.append(LogProblem(path, end, f"torn tail: truncated {size - end} bytes after "
                                                       "the last complete frame"))
            log.warning("segment log: %s", self.problems[-1])
            with open(path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        self._closed = False
        self._open(path)

    def _open(self, path: Path) -> None:
        new = not path.exists()
        self._file, self.path = open(path, "ab", buffering=0), path  # path: the file appended to
        self._size = self._file.seek(0, os.SEEK_END)
        if new:  # make the new directory entry itself durable
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def append(self, payload: bytes, durable: bool = False) -> None:
        """Writes one frame; durable=True returns only after it is fsync'd to disk."""
        if self._closed:
            raise ValueError(f"segment log {self.directory} is closed")
        if len(payload) >= 2**32:
            raise ValueError(f"payload of {len(payload)} bytes exceeds the frame limit of 2**32 - 1")
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
