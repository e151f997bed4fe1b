"""Group commit: concurrent durable appends share fsyncs, each returns only once an fsync covered its frame, and a
failed fsync fails every caller it would have acknowledged (and the log, until reopened)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from buffers.schema import Segment
from buffers.segment_log import LogFailed, SegmentLog, file_name
from workers.buffer import BufferWorker

REAL_FSYNC = os.fsync


def make_segment(robot: int, seq: int, n: int, controller: str = "operator:0") -> Segment:
    steps = [{"obs": [0.0, 1.0, 2.0], "action": [0.5, -0.5], "policy_action": [0.0, 0.0], "version": 1,
              "spread": 0.0, "threshold": 1.0, "reward": 0.0, "success": False, "constraint": False,
              "done": False, "step": i, "t_wall": 0.0} for i in range(n)]
    return Segment.from_steps(robot, seq, 0, controller, "handback", 1.0, steps)


class Disk:
    """os.fsync as a test sees it: the file size each completed fsync covered, a delay, failures on chosen calls."""

    def __init__(self, delay_s: float = 0.0, fail_calls: set[int] = frozenset(),  # type: ignore[assignment]
                 before: Callable[[int], None] | None = None) -> None:
        self.delay_s, self.fail_calls, self.before = delay_s, set(fail_calls), before
        self.calls = 0
        self.covered: list[int] = []  # sizes made durable by successful fsyncs of the log file
        self.lock = threading.Lock()

    def fsync(self, fd: int) -> None:
        with self.lock:
            call, self.calls = self.calls, self.calls + 1
        if self.before is not None:
            self.before(call)
        size = os.fstat(fd).st_size
        time.sleep(self.delay_s)
        if call in self.fail_calls:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        REAL_FSYNC(fd)
        with self.lock:
            self.covered.append(size)

    def durable(self) -> int:
        with self.lock:
            return max(self.covered, default=0)


def append_all(log: SegmentLog, payloads: list[bytes], durable: list[bool]) -> list[int | BaseException]:
    """Appends each payload from its own thread, all at once; each result is the frame's end when its append
    returned, checked against what fsyncs had covered by then, or the exception it raised."""
    results: list[int | BaseException] = [0] * len(payloads)
    start = threading.Barrier(len(payloads))

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = log.append(payloads[i], durable=durable[i])
        except BaseException as e:  # noqa: BLE001 - the test reads it
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_durable_appends_are_durable_when_acknowledged_and_share_fsyncs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = Disk(delay_s=0.005)  # a slow disk: appends pile up behind each fsync
    acked_at: dict[int, int] = {}
    with SegmentLog(tmp_path) as log:
        monkeypatch.setattr(os, "fsync", disk.fsync)
        original = log.append

        def append(payload: bytes, durable: bool = False) -> int:
            end = original(payload, durable)
            acked_at[end] = disk.durable()  # what was on disk when this caller was acknowledged
            return end

        monkeypatch.setattr(log, "append", append)
        payloads = [bytes([i]) * 100 for i in range(16)]
        results = append_all(log, payloads, [True] * 16)
        fsyncs = log.fsyncs
    assert all(isinstance(r, int) for r in results)
    assert all(acked_at[end] >= end for end in acked_at)  # single file: a frame's end is its file offset
    assert fsyncs < 16  # some callers shared an fsync
    assert sorted(SegmentLog.read(tmp_path)) == sorted(payloads)


def test_a_failed_fsync_fails_every_waiting_caller_and_the_log_until_reopened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = SegmentLog(tmp_path, commit_wait_s=0.0)
    written = 4 * (10 + 100)

    def all_written(call: int) -> None:  # the first fsync begins only once every caller's frame is written
        deadline = time.monotonic() + 10
        while call == 0 and log._written < written and time.monotonic() < deadline:
            time.sleep(0.001)

    disk = Disk(fail_calls={0}, before=all_written)
    monkeypatch.setattr(os, "fsync", disk.fsync)
    results = append_all(log, [bytes([i]) * 100 for i in range(4)], [True] * 4)
    assert all(isinstance(r, LogFailed) and "Input/output error" in str(r) for r in results), results
    assert disk.covered == []
    with pytest.raises(LogFailed, match="Input/output error.*until reopened"):
        log.append(b"after", durable=False)  # not even a frame that needs no fsync: the log's state is unknown
    log.reopen()
    assert log.append(b"after", durable=True)
    log.close()
    assert list(SegmentLog.read(tmp_path))[-1] == b"after"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=8), st.sets(st.integers(0, 6), max_size=3),
       st.floats(0, 0.002))
def test_any_interleaving_acknowledges_only_what_a_good_fsync_covered(durable: list[bool], fail_calls: set[int],
                                                                      delay_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        disk = Disk(delay_s=delay_s, fail_calls=fail_calls)
        log = SegmentLog(tmp, commit_wait_s=0.001)
        os.fsync = disk.fsync  # type: ignore[assignment]
        try:
            payloads = [bytes([i]) * (50 + i) for i in range(len(durable))]
            results = append_all(log, payloads, durable)
            for ok, result in zip(durable, results, strict=True):
                if isinstance(result, BaseException):
                    assert isinstance(result, LogFailed), result
                elif ok:  # acknowledged durable: a successful fsync covered it
                    assert disk.durable() >= result
            if log.failed is not None:  # nothing is acknowledged after a failed fsync, until reopened
                with pytest.raises(LogFailed):
                    log.append(b"x", durable=True)
            with contextlib.suppress(LogFailed):
                log.close()
        finally:
            os.fsync = REAL_FSYNC
        kept = list(SegmentLog.read(tmp))
        for ok, payload, result in zip(durable, payloads, results, strict=True):
            if ok and not isinstance(result, BaseException):
                assert payload in kept


def test_storage_fault_is_in_the_buffers_status_with_its_cause_until_an_add_is_durable_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    buffer = BufferWorker(tmp_path / "segments", clock=lambda: now[0])
    buffer.replay.reopen_every_s = 0.0
    assert buffer.poll()["status"]["storage"] == {"ok": True, "error": None, "since": None}
    disk = Disk(fail_calls={0, 1})
    monkeypatch.setattr(os, "fsync", disk.fsync)
    with pytest.raises(OSError, match="Input/output error"):
        buffer.add([make_segment(0, 0, 3)])
    assert "0:0" not in buffer.replay  # never stored: not trained on, not taken as a duplicate when sent again
    now[0] = 101.0
    with pytest.raises(OSError, match="Input/output error"):
        buffer.add([make_segment(0, 0, 3)])
    storage = buffer.poll()["status"]["storage"]
    assert storage["ok"] is False and storage["since"] == 100.0
    assert "Input/output error" in storage["error"] and "fsync" in storage["error"]
    assert buffer.add([make_segment(0, 0, 3), make_segment(0, 1, 2, controller="policy")]) == ["0:0", "0:1"]
    assert buffer.poll()["status"]["storage"] == {"ok": True, "error": None, "since": None}
    buffer.close()
    again = BufferWorker(tmp_path / "segments")
    assert again.stats()["labelled_steps"] == 3 and again.stats()["duplicates"] <= 2
    again.close()


FILE_TOO_LARGE = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from tests.test_group_commit import make_segment
from workers.buffer import BufferWorker
buffer = BufferWorker(Path(sys.argv[1]))
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
try:
    for seq in range(100):
        buffer.add([make_segment(0, seq, 5)])
except OSError as err:
    print("raised:", err)
print("storage:", buffer.poll()["status"]["storage"])
print("stored:", buffer.stats()["stored_segments"])
"""


def test_a_log_that_cannot_grow_says_file_too_large_to_the_caller_and_in_the_status(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", FILE_TOO_LARGE, str(tmp_path / "segments")], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "raised: [Errno 27]" in done.stdout and "File too large" in done.stdout.split("storage:")[0]
    assert "'ok': False" in done.stdout and "File too large" in done.stdout.split("storage:")[1]
    stored = int(done.stdout.split("stored:")[1])
    assert stored == sum(1 for _ in (SegmentLog.read(tmp_path / "segments")))  # no partial frame was left
    assert (tmp_path / "segments" / file_name(0)).stat().st_size <= 2000


def test_many_callers_each_woken_once_an_fsync_covers_them_across_rotations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """16 threads append 40 durable frames each through a small file limit: every caller returns (none is left
    waiting for a wake-up), each acknowledged only once the fsyncs covered its frame, and every frame reads back."""
    disk = Disk(delay_s=0.0005)
    monkeypatch.setattr(os, "fsync", disk.fsync)
    payloads = [[bytes([t, i]) * 40 for i in range(40)] for t in range(16)]
    late: list[tuple[int, int]] = []
    with SegmentLog(tmp_path, max_file_bytes=4000) as log:
        def one(t: int) -> None:
            for payload in payloads[t]:
                with log.coming():
                    end = log.append(payload)
                log.sync(end)
                if log._durable < end:  # noqa: SLF001 - the acknowledgement's own record
                    late.append((t, end))

        threads = [threading.Thread(target=one, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert late == [] and log.fsyncs < 16 * 40
    assert sorted(SegmentLog.read(tmp_path)) == sorted(p for ps in payloads for p in ps)
