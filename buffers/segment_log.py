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
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from buffers.frames import HEADER, MAGIC, LogProblem, LogRecord, frame, scan_file

__all__ = ["HEADER", "MAGIC", "LogFailed", "LogProblem", "LogRecord", "LogScan", "SegmentLog", "file_name", "frame",
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


class LogFailed(OSError):
    """The log could not make frames durable: an fsync failed (or a write it depended on). The frames written since
    the last good fsync may be lost even where the page cache still shows them, so the log takes no more appends
    until it is reopened (a second fsync would succeed without having written them: the fsyncgate lesson)."""


class _Follower:
    """A caller waiting for an fsync to cover `upto`: `woken` is held until a leader releases it, having set `covered`
    when its fsync covered `upto` (else the caller looks again: the log failed or closed, or it is to lead)."""

    __slots__ = ("covered", "upto", "woken")

    def __init__(self, upto: int) -> None:
        self.upto, self.covered, self.woken = upto, False, threading.Lock()
        self.woken.acquire()


class SegmentLog:
    """Appends frames to the newest file of a directory; one writer per directory (flock). Thread-safe.

    Durable appends are group-committed: frames are written under a lock, then each durable caller waits for an
    fsync that covers its frame's end. The first waiter leads: it fsyncs everything written so far, so one fsync
    acknowledges every caller whose frame was written before it began; callers that arrive meanwhile wait for the
    next. An fsync that fails fails every caller it would have acknowledged, and the log (`failed`) until reopen().
    """

    def __init__(self, directory: str | os.PathLike[str],
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, commit_wait_s: float = 0.002) -> None:
        self.directory = Path(directory)
        self.max_file_bytes = max_file_bytes
        self.commit_wait_s = commit_wait_s  # a leader waits up to this long for appends already under way
        self.problems: list[LogProblem] = []  # what opening found and repaired
        self.failed: OSError | None = None  # why the log takes no appends until reopen(), or None
        self.fsyncs = 0  # fsyncs that made appended frames durable (group commit: fewer than durable appends)
        self._write = threading.Lock()  # the file, its size, `_written`; taken before `_sync`, never after
        self._sync = threading.Lock()  # `_durable`, `_syncing`, `_writing`, `_followers`, `failed`
        self._arrived = threading.Condition(self._sync)  # a leader waits here for the appends under way
        self._followers: list[_Follower] = []  # callers waiting for an fsync, in order of arrival
        self._written = 0  # bytes appended since opening, over every file: where the next frame ends up
        self._durable = 0  # of those, the bytes an fsync has covered
        self._lost_upto = 0  # frames ending up to here were written before reopen(): never durable, for this reason
        self._lost_why: OSError | None = None
        self._syncing = False  # a leader is in fsync
        self._writing: set[int] = set()  # tickets of appends between their start (or coming()) and their frame's write
        self._tickets = 0  # tickets handed out: a leader waits only for appends that began before it leads
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

    def reopen(self) -> None:
        """After a failure: closes the file and opens the newest again (truncating a torn tail), taking appends again.
        Frames that were never acknowledged may or may not be there; their senders send them again."""
        with self._write:
            if self._closed:
                raise ValueError(f"segment log {self.directory} is closed")
            with contextlib.suppress(OSError):
                self._file.close()
            self._open_last()
            with self._sync:
                self._lost_upto, self._lost_why = self._written, self.failed
                self.failed = None

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Around preparing and appending frames that will be synced: a leader about to fsync waits for them (up to
        commit_wait_s), so appends that arrive together share one fsync rather than alternate between two.

            with log.coming():
                end = log.append(encode(item))
            log.sync(end)
        """
        with self._sync:
            ticket = self._tickets
            self._tickets += 1
            self._writing.add(ticket)
        try:
            yield
        finally:
            with self._sync:
                self._writing.discard(ticket)
                if self._syncing:  # a leader may be waiting for this frame
                    self._arrived.notify()

    def append(self, payload: bytes, durable: bool = False) -> int:
        """Writes one frame; durable=True returns only after an fsync covered it (group commit: see the class).
        Returns where the frame ends, for sync(upto). Raises OSError (LogFailed once an fsync failed) otherwise."""
        if len(payload) >= 2**32:
            raise ValueError(f"payload of {len(payload)} bytes exceeds the frame limit of 2**32 - 1")
        data = frame(payload)
        with self.coming() if durable else contextlib.nullcontext(), self._write:
            end = self._write_frame(data)
        if durable:
            self.sync(end)
        return end

    def _write_frame(self, data: bytes) -> int:
        if self._closed:
            raise ValueError(f"segment log {self.directory} is closed")
        if self.failed is not None:
            raise LogFailed(self.failed.errno, f"{self.failed.strerror} (it takes no appends until reopened)")
        if self._size > 0 and self._size + len(data) > self.max_file_bytes:
            self._rotate()
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view) or 0:]
        except OSError as e:
            with contextlib.suppress(OSError):  # leave no partial frame behind
                os.ftruncate(self._file.fileno(), self._size)
            raise OSError(e.errno, f"segment log {self.path}: writing a frame of {len(data)} bytes at "
                                   f"{self._size} failed: {e.strerror or e}") from e
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), self._size)
            raise
        self._size += len(data)
        self._written += len(data)
        return self._written

    def _rotate(self) -> None:
        try:
            os.fsync(self._file.fileno())  # frames already written stay durable across the switch
        except OSError as e:
            self._fail(e, f"fsync of {self.path} before moving to the next file failed")
        with self._sync:
            self._durable = self._written
            self._wake()
        self._file.close()
        self._index += 1
        try:
            self._open(self.directory / file_name(self._index))
        except OSError as e:
            self._fail(e, f"opening {file_name(self._index)} failed")

    def _fail(self, err: OSError, what: str) -> None:
        failed = LogFailed(err.errno, f"segment log {self.directory}: {what}: {err.strerror or err}")
        with self._sync:
            self.failed = self.failed or failed
            self._wake()
        raise failed from err

    def sync(self, upto: int | None = None) -> None:
        """Returns once everything appended so far (or up to `upto`, an end append returned) is on disk. One fsync
        serves every caller waiting when it begins; raises LogFailed for frames a failed fsync did not make durable."""
        if upto is None:
            with self._write:
                upto = self._written
        while not self._lead(upto):
            pass

    def _lead(self, upto: int) -> bool:
        """True once `upto` is durable; else fsyncs as the leader (or returns False to look again)."""
        if not self._turn(upto):
            return True
        target, fd, synced = 0, -1, False
        try:
            with self._write:  # what this fsync covers; a dup stays valid should a rotation close the file
                if self._closed:  # close() synced (or failed): look again
                    return False
                target, fd = self._written, os.dup(self._file.fileno())
            os.fsync(fd)
            self.fsyncs += 1
            synced = True
        except OSError as e:
            self._fail(e, f"fsync of {self.path} failed; its frames up to byte {target} of this session may be lost")
        finally:
            if fd >= 0:
                os.close(fd)
            with self._sync:
                self._syncing = False
                if synced:
                    self._durable = max(self._durable, target)
                self._wake()
        return False

    def _turn(self, upto: int) -> bool:
        """Waits while another caller syncs: False once `upto` is durable; True when this caller is to lead the next
        fsync (`_syncing` set, appends under way waited for); raises LogFailed for frames a failure lost."""
        self._sync.acquire()
        held = True
        try:
            while self._durable < upto and self._syncing and self.failed is None:
                follower = _Follower(upto)
                self._followers.append(follower)
                self._sync.release()
                held = False
                follower.woken.acquire()  # released by a leader's _wake
                if follower.covered:  # an fsync covered it: back without taking the lock the others want too
                    return False
                self._sync.acquire()
                held = True
            if self._durable >= upto:
                return False
            why = self.failed or (self._lost_why if upto <= self._lost_upto else None)
            if why is not None:
                raise LogFailed(why.errno, why.strerror)
            self._syncing = True
            if self.commit_wait_s > 0 and self._writing:  # appends under way: let their frames join this fsync
                began = self._tickets  # but not those that begin while it waits: they would keep it waiting
                self._arrived.wait_for(lambda: not self._writing or min(self._writing) >= began, self.commit_wait_s)
            return True
        finally:
            if held:
                self._sync.release()

    def _wake(self) -> None:
        """With `_sync` held: wakes the callers an fsync covered (all, once the log failed) and, while none syncs, the
        first of the others, to lead the next fsync. Waking only these (not every waiter, as notify_all would) spares
        a busy log a context switch per waiting caller per fsync."""
        if self.failed is not None or self._closed:
            woken, self._followers = self._followers, []
        else:
            woken = [f for f in self._followers if f.upto <= self._durable]
            for follower in woken:
                follower.covered = True
            self._followers = [f for f in self._followers if f.upto > self._durable]
            if self._followers and not self._syncing:
                woken.append(self._followers.pop(0))
        for follower in woken:
            follower.woken.release()

    def close(self) -> None:
        """Syncs, closes the file and releases the directory lock; idempotent. A failed fsync raises LogFailed."""
        with self._write:
            if self._closed:
                return
            self._closed = True
            try:
                os.fsync(self._file.fileno())
            except OSError as e:
                self._fail(e, f"fsync of {self.path} on closing failed")
            else:
                with self._sync:
                    self._durable = self._written
                    self._wake()
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
