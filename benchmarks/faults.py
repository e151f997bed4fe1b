"""Faults survived: SIGKILL a robot actor (one robot, or a group of two), the buffer, the learner or the driver at
a random moment of a `dagger start` run on Ray (operators mid-takeover most of the time), then compare the human
steps the buffer acknowledged with those in the durable segment log.

Per fault and trial: the run is started as a user starts it (a subprocess, point task, 2 robots, a
scripted operator that keeps control until the episode ends, a Ray of its own); once the first takeover
is logged, the process is killed 0 to a third of the budget later (0-8 s at the default 25 s); a killed
driver is followed by `dagger start --resume`. (A kill during start-up, before the supervisor runs, is
not measured: the driver's own start-up calls do not retry.)

Columns: human steps acknowledged to the robots (the buffer returned the segment's key after its fsync;
each such ack is a `stored` event), those found in the segment log, missing, duplicated (a key stored
twice), corrupt frames the log reader skipped, and runs that finished their budget. Only the trial's own
processes are killed: they carry a marker in their environment, which Ray's workers inherit.

    python benchmarks/faults.py [--trials 20] [--seconds 25] [--parallel 1]

--parallel N runs up to N trials at once (each has its own Ray, run directory and marker, so no trial can kill
another's processes); the kill delays are drawn before any trial starts, in the order the sequential run draws
them, so a seed picks the same delays either way. Trials side by side share the machine's cores: more of each run's
budget goes by per step, which is why the default, for the measured table, is one at a time.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from buffers.codec import decode_segment
from buffers.segment_log import SegmentLog
from dagger.events import read_events

MARKER = "DAGGER_FAULT_TRIAL"
FAULTS = {"robot": "ray::RayRobot", "group": "ray::RayRobot", "buffer": "ray::RayBuffer", "learner": "ray::RayLearner",
          "driver": ""}
GROUPED = {"group": ("robot.per_actor=2",)}
"""faults whose run drives its two robots from one worker process: its kill takes both, mid-takeover"""


def start(run_dir: Path, seconds: float, *extra: str) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, MARKER: str(run_dir)}
    args = [sys.executable, "-m", "dagger.app.cli", "start", "--task", "point", "--robots", "2", "--run-dir",
            str(run_dir), "--minutes", str(seconds / 60), "robot.speed=10", "operator.style=until_done",
            "learner.checkpoint_every=2", "gate.threshold=0.002", *extra]
    with (run_dir.parent / "driver.log").open("a") as log:  # what a driver that died said, to read afterwards
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env)


def wait_for_takeover(events: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (events.is_file() and b'"ev":"takeover"' in events.read_bytes()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{events}: no takeover within {timeout:.0f} s")
        time.sleep(0.2)


def kill_actor(title: str, run_dir: Path) -> bool:
    """SIGKILLs the first process titled `title` that belongs to this trial; False when there is none."""
    mark = f"{MARKER}={run_dir}".encode()
    for pid in subprocess.run(["pgrep", "-f", title], capture_output=True, text=True).stdout.split():
        try:
            if mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                os.kill(int(pid), signal.SIGKILL)
                return True
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return False


def trial(fault: str, seconds: float, delay: float) -> dict:
    """One run of `seconds`, its `fault` process killed `delay` seconds after the first takeover."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"fault-{fault}-")) / "run"
    driver = start(run_dir, seconds, *GROUPED.get(fault, ()))
    wait_for_takeover(run_dir / "events.jsonl", 300.0)  # Ray may start slowly on a busy machine
    time.sleep(delay)
    if fault == "driver":
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        time.sleep(2.0)
        driver = start(run_dir, seconds / 2, "--resume", *GROUPED.get(fault, ()))
    elif not kill_actor(FAULTS[fault], run_dir):
        raise RuntimeError(f"{run_dir}: no {FAULTS[fault]} process of this trial to kill")
    driver.wait(timeout=seconds * 4 + 60)
    events = read_events(run_dir / "events.jsonl")
    acked = {f"{e['robot']}:{e['seq']}": e["steps"] for e in events if e["ev"] == "stored"}
    scan = SegmentLog.read(run_dir / "segments")
    stored = Counter()
    steps: dict[str, int] = {}
    for payload in scan:
        seg = decode_segment(payload)
        if seg.human:
            stored[seg.key] += 1
            steps[seg.key] = len(seg)
    ends = [e for e in events if e["ev"] == "run_end"]
    return {"acked": sum(acked.values()), "found": sum(n for k, n in acked.items() if k in stored),
            "missing": sum(n for k, n in acked.items() if k not in stored),
            "duplicated": sum(steps[k] * (c - 1) for k, c in stored.items() if c > 1),
            "corrupt": len(scan.problems), "continued": bool(ends) and ends[-1]["reason"] == "budget"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=1, help="trials run at once (default 1)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    faults = args.faults.split(",")
    delays = {(f, i): rng.uniform(0.0, args.seconds / 3) for f in faults for i in range(args.trials)}
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        futures = {key: pool.submit(trial, key[0], args.seconds, delay) for key, delay in delays.items()}
        print(f"{'fault':<8} {'trials':>6} {'acked steps':>12} {'found':>6} {'missing':>8} {'duplicated':>11} "
              f"{'corrupt frames':>15} {'continued':>10}", flush=True)
        for fault in faults:  # a fault's row once its trials are done, in the order asked for
            rows = [futures[fault, i].result() for i in range(args.trials)]
            total = {k: sum(r[k] for r in rows) for k in ("acked", "found", "missing", "duplicated", "corrupt",
                                                          "continued")}
            print(f"{fault:<8} {args.trials:>6} {total['acked']:>12} {total['found']:>6} {total['missing']:>8} "
                  f"{total['duplicated']:>11} {total['corrupt']:>15} {total['continued']:>6}/{args.trials}",
                  flush=True)


if __name__ == "__main__":
    main()
