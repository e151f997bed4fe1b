"""Faults survived: SIGKILL a robot actor (one robot, or a group of two), the buffer, the learner or the driver at
a random moment of a `dagger start` run on Ray (operators mid-takeover most of the time); stop the segment log from
growing for 8 s (`storage`: the buffer process's file-size limit set to its log's size, as root, so appends fail
with "File too large", then lifted); or SIGSTOP the learner for 20 s (`hang`). Then compare
the human steps the buffer acknowledged with those in the durable segment log, and the report's stored count with
the log's.

Per fault and trial: the run is started as a user starts it (a subprocess, point task, 2 robots, a
scripted operator that keeps control until the episode ends, a Ray of its own); once the first takeover
is logged, the process is killed 0 to a third of the budget later (0-8 s at the default 25 s); a killed
driver is followed by `dagger start --resume`. (A kill during start-up, before the supervisor runs, is
not measured: the driver's own start-up calls do not retry.)

Columns: human steps acknowledged to the robots (the buffer returned the segment's key after its fsync;
each such ack is a `stored` event), those found in the segment log, missing, duplicated (a key stored
twice), corrupt frames the log reader skipped, runs that finished their budget, runs whose report
(`human_steps`, recomputed from events.jsonl) equals the operators' steps the log holds, and steps in the fault
against the same span just before it ('-' for an actor's kill): for `hang`, the fleet's steps while the learner is
stopped; for `storage`, the steps robots took while held for storage (between their storage_hold and
storage_resumed); for `driver`, the fleet's steps while the driver is down (none: the run's robots stop with it).
Only the trial's own processes are killed: they carry a marker in their environment, which Ray's workers inherit.

    python benchmarks/faults.py [--trials 20] [--seconds 25] [--parallel 1]

--parallel N runs up to N trials at once (each has its own Ray, run directory and marker, so no trial can kill
another's processes); the kill delays are drawn before any trial starts, in the order the sequential run draws
them, so a seed picks the same delays either way. Trials side by side share the machine's cores: more of each run's
budget goes by per step, which is why the default, for the measured table, is one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from buffers.codec import decode_segment
from buffers.schema import DEMO
from buffers.segment_log import SegmentLog
from dagger.events import read_events
from dagger.metrics import summarize

MARKER = "DAGGER_FAULT_TRIAL"
FAULTS = {"robot": "ray::RayRobot", "group": "ray::RayRobot", "buffer": "ray::RayBuffer", "learner": "ray::RayLearner",
          "driver": "", "storage": "", "hang": "ray::RayLearner"}
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


LASTS = {"hang": 20.0, "storage": 8.0}
"""how long the learner is stopped (SIGSTOP) in a `hang` trial, and the segment log cannot grow in a `storage` one"""


def kill_actor(title: str, run_dir: Path, sig: int = signal.SIGKILL) -> int:
    """Sends `sig` to the first process titled `title` that belongs to this trial; its pid (0: there is none)."""
    mark = f"{MARKER}={run_dir}".encode()
    for pid in subprocess.run(["pgrep", "-f", title], capture_output=True, text=True).stdout.split():
        try:
            if mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                os.kill(int(pid), sig)
                return int(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return 0


def cap_growth(run_dir: Path, seconds: float) -> None:
    """Sets the trial's buffer process's file-size limit to its newest log file's size for `seconds` (its appends
    fail with EFBIG, "File too large"), then lifts it."""
    pid = kill_actor(FAULTS["buffer"], run_dir, 0)
    if not pid:
        raise RuntimeError(f"{run_dir}: no {FAULTS['buffer']} process of this trial")
    size = max(p.stat().st_size for p in (run_dir / "segments").glob("segments-*.log"))
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]))
    time.sleep(seconds)
    with contextlib.suppress(ProcessLookupError):
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


def stall(title: str, run_dir: Path, seconds: float) -> None:
    """SIGSTOPs the trial's process titled `title` for `seconds`, then SIGCONTs it (if it was not killed meanwhile)."""
    pid = kill_actor(title, run_dir, signal.SIGSTOP)
    if not pid:
        raise RuntimeError(f"{run_dir}: no {title} process of this trial to stop")
    time.sleep(seconds)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def steps_between(events: list[dict], start: float, end: float, robot: int | None = None) -> int:
    """Fleet steps (or `robot`'s) in segments that began in [start, end)."""
    return sum(e["steps"] for e in events if e["ev"] == "segment" and start <= e["t_start"] < end
               and robot in (None, e["robot"]))


def steps_held(events: list[dict]) -> int:
    """Steps robots took in segments begun while they were held for storage (storage_hold to storage_resumed)."""
    held: dict[int, float] = {}
    steps = 0
    for e in events:
        if e["ev"] == "storage_hold":
            held[e["robot"]] = e["t"]
        elif e["ev"] == "storage_resumed" and e["robot"] in held:
            steps += steps_between(events, held.pop(e["robot"]), e["t"], e["robot"])
    return steps + sum(steps_between(events, t, float("inf"), robot) for robot, t in held.items())


def trial(fault: str, seconds: float, delay: float, lasts: float) -> dict:
    """One run of `seconds`, its `fault` process killed `delay` seconds after the first takeover."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"fault-{fault}-")) / "run"
    extra = (*GROUPED.get(fault, ()), *(("storage_wait_s=600",) if fault == "storage" else ()))
    driver = start(run_dir, seconds + lasts, *extra)
    wait_for_takeover(run_dir / "events.jsonl", 300.0)  # Ray may start slowly on a busy machine
    time.sleep(delay)
    began = time.time()
    if fault == "storage":
        cap_growth(run_dir, lasts)
    elif fault == "hang":
        stall(FAULTS[fault], run_dir, lasts)
    elif fault == "driver":
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        time.sleep(2.0)
        driver = start(run_dir, seconds / 2, "--resume", *GROUPED.get(fault, ()))
    elif not kill_actor(FAULTS[fault], run_dir):
        raise RuntimeError(f"{run_dir}: no {FAULTS[fault]} process of this trial to kill")
    ended = time.time()
    driver.wait(timeout=seconds * 4 + lasts + 60)
    events = read_events(run_dir / "events.jsonl")
    acked = {f"{e['robot']}:{e['seq']}": e["steps"] for e in events if e["ev"] == "stored"}
    scan = SegmentLog.read(run_dir / "segments")
    stored = Counter()
    steps: dict[str, int] = {}
    operators: dict[str, int] = {}  # the operators' segments the log holds (not the demonstrations)
    for payload in scan:
        seg = decode_segment(payload)
        if seg.human:
            stored[seg.key] += 1
            steps[seg.key] = len(seg)
        if seg.human and seg.controller != DEMO:
            operators[seg.key] = len(seg)
    ends = [e for e in events if e["ev"] == "run_end"]
    span = ended - began
    return {"acked": sum(acked.values()), "found": sum(n for k, n in acked.items() if k in stored),
            "missing": sum(n for k, n in acked.items() if k not in stored),
            "duplicated": sum(steps[k] * (c - 1) for k, c in stored.items() if c > 1),
            "corrupt": len(scan.problems), "continued": bool(ends) and ends[-1]["reason"] == "budget",
            "report": summarize(events)["human_steps"] == sum(operators.values()),
            "during": None if span <= 1 else (
                steps_held(events) if fault == "storage" else steps_between(events, began, ended),
                steps_between(events, began - span, began))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=1, help="trials run at once (default 1)")
    parser.add_argument("--hang-s", type=float, default=LASTS["hang"], help="how long the learner is stopped")
    parser.add_argument("--full-s", type=float, default=LASTS["storage"], help="how long storage refuses")
    args = parser.parse_args()
    lasts = {"hang": args.hang_s, "storage": args.full_s}
    rng = random.Random(args.seed)
    faults = args.faults.split(",")
    delays = {(f, i): rng.uniform(0.0, args.seconds / 3) for f in faults for i in range(args.trials)}
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        futures = {key: pool.submit(trial, key[0], args.seconds, delay, lasts.get(key[0], 0.0))
                   for key, delay in delays.items()}
        print(f"{'fault':<8} {'trials':>6} {'acked steps':>12} {'found':>6} {'missing':>8} {'duplicated':>11} "
              f"{'corrupt frames':>15} {'continued':>10} {'report=log':>10} {'steps in fault/before':>22}", flush=True)
        for fault in faults:  # a fault's row once its trials are done, in the order asked for
            rows = [futures[fault, i].result() for i in range(args.trials)]
            total = {k: sum(r[k] for r in rows) for k in ("acked", "found", "missing", "duplicated", "corrupt",
                                                          "continued", "report")}
            during = "-" if rows[0]["during"] is None else \
                "/".join(str(sum(r["during"][i] for r in rows)) for i in (0, 1))
            print(f"{fault:<8} {args.trials:>6} {total['acked']:>12} {total['found']:>6} {total['missing']:>8} "
                  f"{total['duplicated']:>11} {total['corrupt']:>15} {total['continued']:>6}/{args.trials} "
                  f"{total['report']:>6}/{args.trials} {during:>22}", flush=True)


if __name__ == "__main__":
    main()
