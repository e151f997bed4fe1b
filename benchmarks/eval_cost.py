"""What the trained-policy features cost: in-run evaluation against the robots' step rate, checkpoint
writes and reads, and `dagger eval` in one process and in two.

The fleet runs as fast as it can (gate `never`) while the learner publishes a version every 20 updates
and the evaluator is handed every version it is free for, so it is never idle: the worst case for the
robots. Three fleets, one after the other in the same run: no evaluation, evaluation at nice 19 (the
default) and at nice 15 (Ray's own workers' priority).

    python benchmarks/eval_cost.py [--robots 4] [--seconds 15] [--task reacher]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dagger.app.evaluate import evaluate_checkpoint
from dagger.checkpoint import read_checkpoint, write_checkpoint
from dagger.config import load_config
from dagger.evaluation import eval_seeds
from dagger.events import read_events
from dagger.tasks import TaskConfig
from workers.launch import run_loop
from workers.ray_fleet import RayFleet, init_ray


def fleet(task: str, robots: int, seconds: float, settings: list[str]) -> tuple[float, list[dict], Path]:
    """Robot steps/s over the run, its eval events and its run dir."""
    cfg = load_config(None, [f"task={task}", f"robots={robots}", f"minutes={seconds / 60}", "gate.name=never",
                             "robot.speed=1000000.0", "learner.max_updates_per_s=200.0",
                             "learner.publish_every=20", *settings])
    run_dir = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    run_loop(cfg, run_dir, RayFleet)
    events = read_events(run_dir / "events.jsonl")
    segments = [e for e in events if e["ev"] == "segment"]
    span = max(s["t_end"] for s in segments) - min(s["t_start"] for s in segments)
    return sum(s["steps"] for s in segments) / span, [e for e in events if e["ev"] == "eval"], run_dir


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median seconds of fn()."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--task", default="reacher")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    init_ray(num_cpus=2)
    runs = {"no evaluation": ["eval.every_versions=0"],
            "eval every version, nice 19": ["eval.every_versions=1", "eval.nice=19"],
            "eval every version, nice 15": ["eval.every_versions=1", "eval.nice=15"]}
    rates, evals, run_dir = {}, {}, Path()
    for name, settings in runs.items():
        rates[name], evals[name], run_dir = fleet(args.task, args.robots, args.seconds, settings)
    print(f"task {args.task}, {args.robots} robot actors, {args.seconds:.0f} s each, learner publishing every 20 "
          "updates")
    base = rates["no evaluation"]
    for name, rate in rates.items():
        done = evals[name]
        extra = f"   {len(done)} evaluations, {sum(e['eval_s'] for e in done) / max(1, len(done)):.1f} s each" \
            if done else ""
        print(f"{name:<30} {rate:8.0f} robot steps/s   {rate / base:5.2f}x{extra}")
    ckpt = read_checkpoint(run_dir)
    file = ckpt["path"]
    payload = {k: v for k, v in ckpt.items() if k not in ("format", "path")}
    scratch = Path(tempfile.mkdtemp(prefix="ckpt-bench-"))
    write_ms = 1000 * timed(lambda: write_checkpoint(scratch, payload))
    print(f"checkpoint write (atomic, 2 fsyncs)         {write_ms:6.1f} ms")
    print(f"checkpoint read (torch.load weights_only)   {1000 * timed(lambda: read_checkpoint(file)):6.1f} ms, "
          f"{Path(file).stat().st_size / 1024:.0f} KiB")
    seeds = eval_seeds(args.episodes)
    one = timed(lambda: evaluate_checkpoint(file, TaskConfig(args.task), seeds, 1), repeat=1)
    two = timed(lambda: evaluate_checkpoint(file, TaskConfig(args.task), seeds, 2), repeat=1)
    print(f"dagger eval, {args.episodes} episodes: 1 process {one:5.1f} s, 2 processes {two:5.1f} s "
          f"({one / two:.2f}x)")


if __name__ == "__main__":
    main()
