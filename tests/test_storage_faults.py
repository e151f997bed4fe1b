"""Storage that fails mid-run, on a real filesystem that fills: the segment log on a small tmpfs (as root), filled to
the last byte once operators have corrected something. Robots must stop asking and hold, nobody's correction may be
taken that cannot be kept, and the report must count only what the log holds."""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from buffers.codec import decode_segment
from buffers.schema import is_human
from buffers.segment_log import SegmentLog
from dagger.events import read_events
from dagger.metrics import summarize
from tests.conftest import ROOT, point_config, run_dagger, wait_until
from workers.launch import run_loop

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted at tmp_path/disk (unmounted afterwards)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", f"dagger-test-{uuid.uuid4().hex[:8]}", str(disk)],
                   check=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Writes a file until the disk is full; returns it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


class FillsAfterTakeovers:
    """An on_events hook: fills the disk once `after` human segments are stored; `then` is called at storage_failed."""

    def __init__(self, disk: Path, after: int, then=None):
        self.disk, self.after, self.then = disk, after, then
        self.filler: Path | None = None
        self.stored = 0

    def __call__(self, events: list[dict]) -> None:
        for e in events:
            self.stored += e["ev"] == "stored"
            if self.filler is None and self.stored >= self.after:
                self.filler = fill(self.disk)
            if e["ev"] == "storage_failed" and self.then is not None:
                self.then(self)
                self.then = None


def logged_human_steps(segments: Path) -> dict[str, int]:
    """robot:seq -> steps of every operator's segment the log holds."""
    held = {}
    for payload in SegmentLog.read(segments):
        seg = decode_segment(payload)
        if is_human(seg.controller) and seg.controller != "demo":
            held[seg.key] = len(seg)
    return held


def run_on_small_disk(disk: Path, tmp_path: Path, *overrides: str, then=None) -> tuple[dict, list[dict]]:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "segments").symlink_to(disk, target_is_directory=True)
    cfg = point_config("steps=3000", "storage_wait_s=3", "operator.style=until_done", *overrides)
    summary = run_loop(cfg, run_dir, on_events=FillsAfterTakeovers(disk, after=3, then=then))
    return summary, read_events(run_dir / "events.jsonl")


def test_a_full_disk_holds_the_robots_asks_nobody_and_stops_the_run_saying_why(small_disk, tmp_path):
    summary, events = run_on_small_disk(small_disk, tmp_path)
    kinds = [e["ev"] for e in events]
    failed = kinds.index("storage_failed")
    assert "No space left on device" in events[failed]["error"]
    end = events[-1]
    assert end["ev"] == "run_end" and end["reason"] == "failed", end
    assert "storage failed" in end["error"] and "No space left on device" in end["error"]
    # nobody is asked to help, and nobody takes over, once storage failed
    after = events[failed + 1:]
    assert not [e for e in after if e["ev"] in ("operator_assigned", "takeover")]
    assert any(e["ev"] == "storage_hold" for e in after)
    # the robots hold: no robot takes a step after its storage_hold until the run ends
    held_at = {e["robot"]: e["t"] for e in after if e["ev"] == "storage_hold"}
    moved = [e for e in after if e["ev"] == "segment" and e["t_start"] > held_at.get(e["robot"], float("inf"))]
    assert not moved, moved
    # the report counts what the log holds; what was taken and never stored is named as lost
    held = logged_human_steps(tmp_path / "run" / "segments")
    assert summary["human_steps"] == sum(held.values()) > 0
    unstored = sum(e["steps"] for e in events if e["ev"] == "unstored")
    assert summary["human_steps_taken"] - summary["human_steps"] == summary["human_steps_lost"] == unstored
    assert summary == summarize(events)


def test_storage_that_comes_back_lets_the_run_finish_and_loses_nothing(small_disk, tmp_path):
    summary, events = run_on_small_disk(small_disk, tmp_path, "storage_wait_s=600",
                                        then=lambda hook: hook.filler.unlink())
    kinds = [e["ev"] for e in events]
    assert kinds.index("storage_failed") < kinds.index("storage_back")
    assert events[-1]["reason"] == "budget" and summary["steps"] == 3000
    assert not [e for e in events if e["ev"] == "unstored"]
    # every correction the operators made is in the log, and the report says so
    held = logged_human_steps(tmp_path / "run" / "segments")
    taken = {f"{e['robot']}:{e['seq']}": e["steps"] for e in events
             if e["ev"] == "segment" and is_human(e["controller"]) and e["controller"] != "demo"}
    assert held == taken
    assert summary["human_steps"] == summary["human_steps_taken"] == sum(held.values())
    assert summary["human_steps_lost"] == 0


def test_a_full_disk_under_the_event_log_is_one_line_and_exit_1(small_disk, tmp_path):
    run_dir = small_disk / "run"
    fill_later = small_disk / "filler"
    # the run's own disk fills as soon as it starts writing its events: leave 256 KiB beyond the reserve
    with fill_later.open("wb") as f:
        os.posix_fallocate(f.fileno(), 0, 4 * 2**20 - 640 * 1024)
    out = run_dagger("start", "--in-process", "--task", "point", "--robots", "2", "--steps", "200000",
                     "--run-dir", str(run_dir), "demos=2", "learner.pretrain_updates=20", "robot.speed=50")
    assert out.returncode == 1, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("dagger: error:") and "No space left on device" in errors[0], \
        out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    events = read_events(run_dir / "events.jsonl")
    assert events[-1]["ev"] == "run_end" and events[-1]["reason"] == "failed"


def test_sigterm_while_storage_is_down_still_ends_the_run_with_run_end_and_a_report(small_disk, tmp_path):
    # the run's segment log on its own (small) disk: a run dir holding only that is one to continue (--resume)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "segments").symlink_to(small_disk, target_is_directory=True)
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    run = subprocess.Popen([sys.executable, "-m", "dagger.app.cli", "start", "--in-process", "--resume", "--run-dir",
                            str(run_dir), "--task", "point", "--robots", "2", "--steps", "10000000", "demos=2",
                            "learner.pretrain_updates=20", "robot.speed=50", "storage_wait_s=36000",
                            "operator.style=until_done"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, cwd=ROOT)
    events = run_dir / "events.jsonl"
    try:
        wait_until(lambda: events.is_file() and events.read_bytes().count(b'"ev":"stored"') >= 3, 120,
                   "three stored corrections")
        fill(small_disk)
        wait_until(lambda: b'"ev":"storage_failed"' in events.read_bytes(), 120, "storage_failed")
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    logged = read_events(events)
    assert logged[-1]["ev"] == "run_end" and logged[-1]["reason"] == "interrupted"
    assert (run_dir / "report.md").is_file() and (run_dir / "summary.json").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["human_steps"] == sum(logged_human_steps(run_dir / "segments").values())
