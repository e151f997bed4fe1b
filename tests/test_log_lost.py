"""A resumed run whose segment log was torn or cut says, in one line and one `log_lost` event, how many frames and
human steps were lost, and the report leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest

from buffers.codec import decode_segment
from buffers.segment_log import SegmentLog, log_files
from dagger.events import read_events
from dagger.metrics import summarize
from tests.conftest import point_config
from workers.buffer import log_lost
from workers.launch import run_loop


def key(e: dict) -> str:
    return f"{e['robot']}:{e['seq']}"


def test_a_torn_log_on_resume_counts_the_frames_and_human_steps_it_lost(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    first = run_loop(point_config(), run_dir)
    events = read_events(run_dir / "events.jsonl")
    (number, path), = log_files(run_dir / "segments")
    records = list(SegmentLog.read(run_dir / "segments").records())
    cut = records[len(records) // 2]  # tear the file in the middle of this frame: it and every later one are gone
    with open(path, "r+b") as f:
        f.truncate(cut.offset + 7)
    kept = {decode_segment(r.payload).key for r in records if r.offset < cut.offset}

    # by hand: the reported segments past the cut; of them, the operators' the buffer acknowledged or trained on
    segments = {key(e): e for e in events if e["ev"] == "segment"}
    acked = {key(e) for e in events if e["ev"] == "stored"}
    trained = {e["key"] for e in events if e["ev"] == "segment_trained"}
    gone = [e for k, e in segments.items() if k not in kept]
    human = [e for e in gone if e["controller"] != "policy"]
    assert human and all(key(e) in acked for e in human)  # every one of them had been acknowledged durable
    capsys.readouterr()

    run_loop(point_config("steps=1600"), run_dir)
    again = read_events(run_dir / "events.jsonl")
    lost, = (e for e in again if e["ev"] == "log_lost")
    assert sorted(lost["keys"]) == sorted(key(e) for e in gone)
    assert (lost["frames"], lost["steps"]) == (len(gone), sum(e["steps"] for e in gone))
    assert (lost["human_segments"], lost["human_steps"]) == (len(human), sum(e["steps"] for e in human))
    assert lost["trained"] == sum(key(e) in (trained & acked) for e in human) > 0
    assert lost["files"] == [path.name]
    err = capsys.readouterr().err
    line, = (ln for ln in err.splitlines() if "frames" in ln and "are gone" in ln)
    assert f"{len(gone)} frames ({sum(e['steps'] for e in gone)} steps)" in line and path.name in line
    assert f"{len(human)} operators' segments ({sum(e['steps'] for e in human)} human steps" in line
    assert again.index(lost) < next(i for i, e in enumerate(again) if e["ev"] == "run_start" and e["resumed"])

    # the report counts only what the log kept, the first run's human steps less those lost
    report = summarize(again)
    first_run_kept = first["human_steps"] - sum(e["steps"] for e in human)
    resumed_human = sum(e["steps"] for e in again[again.index(lost):] if e["ev"] == "segment"
                        and e["controller"] != "policy" and key(e) in {key(s) for s in again if s["ev"] == "stored"})
    assert report["human_steps"] == first_run_kept + resumed_human


def segment(robot: int, seq: int, controller: str, steps: int, **extra: object) -> dict:
    return {"ev": "segment", "robot": robot, "seq": seq, "controller": controller, "steps": steps, **extra}


def test_a_segment_never_acknowledged_is_not_the_logs_loss_and_a_second_resume_does_not_count_again() -> None:
    reported = [segment(0, 0, "policy", 10), segment(0, 1, "operator:0", 4), {"ev": "stored", "robot": 0, "seq": 1},
                segment(0, 2, "operator:0", 3),  # taken, never acknowledged (the buffer was failing)
                segment(1, 0, "operator:1", 5, recovered=True), segment(-1, 0, "demo", 50),
                {"ev": "segment_trained", "key": "0:1"}, segment(1, 1, "policy", 8)]
    event = log_lost(reported, {"1:1"}, [], Path("/run/segments"))
    assert event is not None
    assert sorted(event["keys"]) == ["0:0", "0:1", "0:2", "1:0"]
    assert (event["frames"], event["steps"], event["human_segments"], event["human_steps"], event["trained"]) == (
        3, 19, 2, 9, 1)
    assert event["files"] == ["/run/segments"] and "cut at a frame boundary or removed" in event["what"]
    assert "1 operators' segments (3 steps) were never acknowledged" in event["what"]
    later = reported + [{"ev": "log_lost", **event}]
    assert log_lost(later, {"1:1"}, [], Path("/run/segments")) is None
    assert log_lost(reported, {"0:0", "0:1", "0:2", "1:0", "1:1"}, [], Path("/run/segments")) is None
