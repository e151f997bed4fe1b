"""The segment log reads back what was appended, repairs torn tails and reports bad frames."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from buffers.segment_log import HEADER, LogScan, SegmentLog, file_name

PAYLOADS = st.lists(st.binary(max_size=64), max_size=12)
NONEMPTY = st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=12)


def write(directory: Path, payloads: list[bytes], **kwargs: int) -> None:
    with SegmentLog(directory, **kwargs) as log:
        for i, p in enumerate(payloads):
            log.append(p, durable=i % 2 == 0)


def read(directory: Path) -> tuple[list[bytes], LogScan]:
    scan = SegmentLog.read(directory)
    return list(scan), scan


def offsets(payloads: list[bytes]) -> list[int]:
    """Start offset of each frame in a single file, then the end of the last."""
    out = [0]
    for p in payloads:
        out.append(out[-1] + HEADER.size + len(p))
    return out


@settings(max_examples=100, deadline=None)
@given(PAYLOADS)
def test_appended_payloads_read_back_identical(payloads: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp), payloads)
        got, scan = read(Path(tmp))
        assert got == payloads
        assert scan.problems == []


@settings(max_examples=100, deadline=None)
@given(PAYLOADS, st.data())
def test_truncation_at_any_offset_keeps_complete_frames(payloads: list[bytes], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write(d, payloads)
        path = d / file_name(0)
        ends = offsets(payloads)
        cut = data.draw(st.integers(0, ends[-1]))
        with open(path, "r+b") as f:
            f.truncate(cut)
        kept = max(i for i, end in enumerate(ends) if end <= cut)  # complete frames before the cut
        with SegmentLog(d) as log:
            if cut == ends[kept]:
                assert log.problems == []
            else:
                [problem] = log.problems
                assert (problem.file, problem.offset) == (path, ends[kept])
                assert "torn tail" in problem.what
        assert path.stat().st_size == ends[kept]
        got, scan = read(d)
        assert got == payloads[:kept]
        assert scan.problems == []


@settings(max_examples=100, deadline=None)
@given(NONEMPTY, st.data())
def test_flipped_payload_byte_is_reported_and_skipped(payloads: list[bytes], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write(d, payloads)
        path = d / file_name(0)
        starts = offsets(payloads)
        bad = data.draw(st.integers(0, len(payloads) - 1))
        pos = starts[bad] + HEADER.size + data.draw(st.integers(0, len(payloads[bad]) - 1))
        raw = bytearray(path.read_bytes())
        raw[pos] ^= data.draw(st.integers(1, 255))
        path.write_bytes(bytes(raw))
        got, scan = read(d)
        assert got == payloads[:bad] + payloads[bad + 1:]
        [problem] = scan.problems
        assert (problem.file, problem.offset) == (path, starts[bad])
        assert "CRC" in problem.what
        with SegmentLog(d) as log:  # a bad frame is not a torn tail: nothing truncated
            assert log.problems == []
        assert path.stat().st_size == len(raw)


@settings(max_examples=50, deadline=None)
@given(NONEMPTY, st.data())
def test_corrupt_header_loses_only_that_frame(payloads: list[bytes], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write(d, payloads)
        path = d / file_name(0)
        starts = offsets(payloads)
        bad = data.draw(st.integers(0, len(payloads) - 1))
        raw = bytearray(path.read_bytes())
        raw[starts[bad] + data.draw(st.integers(0, HEADER.size - 1))] ^= data.draw(st.integers(1, 255))
        path.write_bytes(bytes(raw))
        got, scan = read(d)
        assert got == payloads[:bad] + payloads[bad + 1:]
        assert [p.offset for p in scan.problems] == [starts[bad]]


def test_problems_are_logged_as_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, [b"abc", b"defg"])
    path = tmp_path / file_name(0)
    raw = bytearray(path.read_bytes())
    raw[HEADER.size] ^= 1
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        assert list(SegmentLog.read(tmp_path)) == [b"defg"]
    assert f"{path}@0" in caplog.text and "CRC" in caplog.text


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=100), min_size=1, max_size=30), st.integers(20, 300))
def test_rotation_reads_back_in_order(payloads: list[bytes], max_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write(d, payloads[:len(payloads) // 2], max_file_bytes=max_bytes)
        write(d, payloads[len(payloads) // 2:], max_file_bytes=max_bytes)  # reopen continues the last file
        files = sorted(d.glob("segments-*.log"))
        assert [f.name for f in files] == [file_name(i) for i in range(len(files))]
        for f in files:  # only a single oversized frame may exceed the bound
            assert f.stat().st_size <= max_bytes or _frames_in(f) == 1
        got, scan = read(d)
        assert got == payloads and scan.problems == []


def _frames_in(path: Path) -> int:
    return sum(1 for r in SegmentLog.read(path.parent).records() if r.file == path)


def test_rotation_makes_several_files(tmp_path: Path) -> None:
    payloads = [bytes([i]) * 50 for i in range(20)]
    write(tmp_path, payloads, max_file_bytes=200)
    assert len(list(tmp_path.glob("segments-*.log"))) >= 5
    assert list(SegmentLog.read(tmp_path)) == payloads


@settings(max_examples=50, deadline=None)
@given(NONEMPTY, PAYLOADS, st.data())
def test_append_after_torn_tail_reads_all_good_frames(old: list[bytes], new: list[bytes],
                                                      data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write(d, old)
        path = d / file_name(0)
        ends = offsets(old)
        cut = data.draw(st.integers(ends[-2] + 1, ends[-1] - 1))  # inside the last frame
        with open(path, "r+b") as f:
            f.truncate(cut)
        with SegmentLog(d) as log:
            assert [p.offset for p in log.problems] == [ends[-2]]
            for p in new:
                log.append(p, durable=True)
        got, scan = read(d)
        assert got == old[:-1] + new
        assert scan.problems == []


def test_torn_tail_in_an_earlier_file_is_reported_not_repaired(tmp_path: Path) -> None:
    write(tmp_path, [b"a" * 40, b"b" * 40, b"c" * 40], max_file_bytes=60)
    first = tmp_path / file_name(0)
    with open(first, "ab") as f:
        f.write(HEADER.pack(b"\xd4\x67", 99, 0)[:7])
    got, scan = read(tmp_path)
    assert got == [b"a" * 40, b"b" * 40, b"c" * 40]
    assert [(p.file, p.offset) for p in scan.problems] == [(first, HEADER.size + 40)]
    with SegmentLog(tmp_path, max_file_bytes=60) as log:
        assert log.problems == []


def test_one_writer_per_directory(tmp_path: Path) -> None:
    with SegmentLog(tmp_path), pytest.raises(RuntimeError, match="already open"):
        SegmentLog(tmp_path)
    with SegmentLog(tmp_path) as log:  # the lock is released on close
        log.append(b"x")


def test_closed_log_refuses_appends(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path)
    log.close()
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.append(b"x")


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        list(SegmentLog.read(tmp_path / "nope"))
