"""Steps/s of N robot actors on Ray versus the same task + policy + gate in one plain loop.

Both run as fast as they can (robots unthrottled, gate `never`, learner nearly idle), in the same
process tree, one after the other. Prints the ratio; on 2 cores the ideal for N=4 is about 2x.

    python benchmarks/fleet_overhead.py [--robots 4] [--seconds 15] [--task reacher]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dagger.config import load_config
from dagger.events import read_events
from dagger.gates import make_gate
from dagger.policies import EnsemblePolicy
from dagger.tasks import make_task
from workers.launch import run_loop
from workers.ray_fleet import RayFleet, init_ray


def plain_loop(task_name: str, seconds: float) -> float:
    """One process: task.step(policy.act(obs)) with the gate consulted, like a robot's step."""
    torch.set_num_threads(1)
    task = make_task(task_name)
    policy = EnsemblePolicy(task.obs_dim, task.act_dim)
    gate = make_gate(load_config(None, ["gate.name=never"]).gate)
    obs, steps, began = task.reset(seed=0), 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        out = policy.act(obs)
        gate.should_request_help(out)
        res = task.step(out.action)
        obs = task.reset() if res.done else res.obs
        steps += 1
    return steps / (time.perf_counter() - began)


def fleet(task_name: str, robots: int, seconds: float) -> float:
    cfg = load_config(None, [f"task={task_name}", f"robots={robots}", f"minutes={seconds / 60}",
                             "gate.name=never", "robot.speed=1000000.0", "learner.max_updates_per_s=20.0"])
    init_ray(num_cpus=2)
    run_dir = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    run_loop(cfg, run_dir, RayFleet)
    segments = [e for e in read_events(run_dir / "events.jsonl") if e["ev"] == "segment"]
    span = max(s["t_end"] for s in segments) - min(s["t_start"] for s in segments)
    return sum(s["steps"] for s in segments) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--task", default="reacher")
    args = parser.parse_args()
    plain = plain_loop(args.task, args.seconds)
    ours = fleet(args.task, args.robots, args.seconds)
    print(f"task {args.task}, {args.robots} robot actors, {args.seconds:.0f} s each")
    print(f"plain loop (1 process)      {plain:10.0f} steps/s")
    print(f"fleet ({args.robots} Ray actors)        {ours:10.0f} steps/s   ({ours / args.robots:.0f} per robot)")
    print(f"ratio fleet / plain loop    {ours / plain:10.2f}x")
    print(f"ratio per robot / plain     {ours / args.robots / plain:10.2f}x")


if __name__ == "__main__":
    main()
