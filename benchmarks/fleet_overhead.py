"""Steps/s of N robot actors on Ray versus the same task + policy + gate in one plain loop, at N = 1, 4, 16.

Both run as fast as they can (robots unthrottled, gate `never`, learner nearly idle, no evaluator), one after the
other; before each fleet the plain loop runs again: alone, as N copies in N processes started together (what the
machine gives N processes), and as N copies in N Ray actors made as robots are and polled as often (what Ray
costs). The fleet's rate is taken over its steady window (every robot running) from the segments in events.jsonl,
and where the machine's CPU went in that window is read from /proc: robots, learner, buffer, the supervisor (the
driver) and Ray's own processes. On 2 cores the ceiling is 2x the plain loop (1x at N = 1: one robot is one
thread), less what N processes lose sharing the cores.

    python benchmarks/fleet_overhead.py [--robots 1 4 16] [--seconds 20] [--task reacher]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ray
import torch

from dagger.config import load_config
from dagger.events import read_events
from dagger.gates import make_gate
from dagger.policies import EnsemblePolicy
from dagger.tasks import make_task
from workers.launch import run_loop
from workers.ray_fleet import RayFleet, init_ray

ROLES = {"ray::RayRobot": "robots", "ray::RayLearner": "learner", "ray::RayBuffer": "buffer"}
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def plain_loop(task_name: str, seconds: float, start: Any = None, out: Any = None) -> float:
    """One process: task.step(policy.act(obs)) with the gate consulted, like a robot's step. `start` (a barrier) is
    waited for once all is built; `out` (a queue) gets the rate."""
    torch.set_num_threads(1)
    task = make_task(task_name)
    policy = EnsemblePolicy(task.obs_dim, task.act_dim)
    gate = make_gate(load_config(None, ["gate.name=never"]).gate)
    obs, steps = task.reset(seed=0), 0
    if start is not None:
        start.wait()
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        act = policy.act(obs)
        gate.should_request_help(act)
        res = task.step(act.action)
        obs = task.reset() if res.done else res.obs
        steps += 1
    rate = steps / (time.perf_counter() - began)
    if out is not None:
        out.put(rate)
    return rate


def plain_processes(task_name: str, seconds: float, count: int) -> float:
    """Total steps/s of `count` plain loops in `count` processes started together."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(count), context.Queue()
    procs = [context.Process(target=plain_loop, args=(task_name, seconds, start, out)) for _ in range(count)]
    for proc in procs:
        proc.start()
    total = sum(out.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total


@ray.remote(num_cpus=0, max_concurrency=4)  # as dagger's robot actors are made
class PlainActor:
    """The plain loop in a Ray actor's thread, polled as the supervisor polls a robot: what Ray alone costs."""

    def __init__(self) -> None:
        torch.set_num_threads(1)
        self.rate: float | None = None

    def start(self, task_name: str, seconds: float) -> None:
        threading.Thread(target=lambda: setattr(self, "rate", plain_loop(task_name, seconds)), daemon=True).start()

    def poll(self) -> float | None:
        return self.rate


def plain_actors(task_name: str, seconds: float, count: int) -> float:
    """Total steps/s of `count` plain loops in `count` Ray actors (built first, then started together), each polled
    every 0.1 s."""
    init_ray(num_cpus=2)
    actors = [PlainActor.remote() for _ in range(count)]  # type: ignore[attr-defined]
    ray.get([a.poll.remote() for a in actors])
    ray.get([a.start.remote(task_name, seconds) for a in actors])
    while None in (rates := ray.get([a.poll.remote() for a in actors])):
        time.sleep(0.1)
    for actor in actors:
        ray.kill(actor)
    settle()
    return sum(rates)


def settle(timeout_s: float = 60.0) -> None:
    """Waits until the actors killed last are gone (a dying actor's process still takes CPU)."""
    began = time.time()
    while time.time() - began < timeout_s and any(
            title.startswith(("ray::RayRobot", "ray::RayLearner", "ray::RayBuffer", "ray::PlainActor"))
            for title in (_title(pid) for pid in filter(str.isdigit, os.listdir("/proc")))):
        time.sleep(0.5)
    time.sleep(2.0)


def _title(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of this process ("supervisor") and everything under it, by role ("ray": the rest)."""
    procs = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            title = _title(pid)
        except OSError:  # gone meanwhile
            continue
        procs[int(pid)] = (int(stat[1]), title, (int(stat[11]) + int(stat[12])) * TICK_S)
    me, out = os.getpid(), {"supervisor": 0.0}
    for pid, (_, title, cpu) in procs.items():
        chain = [pid]
        while chain[-1] != me and chain[-1] in procs and len(chain) < 32:
            chain.append(procs[chain[-1]][0])
        if chain[-1] != me:
            continue  # not ours (another program on the machine)
        role = "supervisor" if pid == me else next((r for t, r in ROLES.items() if title.startswith(t)), "ray")
        out[role] = out.get(role, 0.0) + cpu
    return out


def steady_rate(events: list[dict]) -> tuple[float, float, float]:
    """Steps/s while every robot was running: from the latest first segment start (+1 s) to the earliest last
    segment end, each segment's steps counted for the part of it inside; returns (rate, t0, t1)."""
    segments = [e for e in events if e["ev"] == "segment" and e["steps"]]
    robots = {s["robot"] for s in segments}
    t0 = max(min(s["t_start"] for s in segments if s["robot"] == r) for r in robots) + 1.0
    t1 = min(max(s["t_end"] for s in segments if s["robot"] == r) for r in robots)
    steps = 0.0
    for s in segments:
        span = s["t_end"] - s["t_start"]
        inside = max(0.0, min(s["t_end"], t1) - max(s["t_start"], t0))
        steps += s["steps"] * (inside / span if span > 0 else float(t0 <= s["t_start"] <= t1))
    return steps / (t1 - t0), t0, t1


def fleet(task_name: str, robots: int, seconds: float) -> tuple[float, dict[str, float]]:
    """The fleet's steady steps/s and the cores each role used meanwhile."""
    cfg = load_config(None, [f"task={task_name}", f"robots={robots}", f"minutes={(seconds + 3) / 60}",
                             "gate.name=never", "eval.every_versions=0", "robot.speed=1000000.0",
                             "learner.max_updates_per_s=20.0", "log.writers=[jsonl]"])
    init_ray(num_cpus=2)
    run_dir = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    samples: list[tuple[float, dict[str, float]]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append((time.time(), cpu_by_role()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run_loop(cfg, run_dir, RayFleet)
    finally:
        done.set()
        sampler.join()
        settle()
    rate, t0, t1 = steady_rate(read_events(run_dir / "events.jsonl"))
    inside = [(t, cpu) for t, cpu in samples if t0 <= t <= t1]
    (ta, a), (tb, b) = inside[0], inside[-1]
    return rate, {role: (b.get(role, 0.0) - a.get(role, 0.0)) / (tb - ta) for role in b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=20.0, help="each fleet's and plain loop's")
    parser.add_argument("--task", default="reacher")
    args = parser.parse_args()
    print(f"task {args.task}, {os.cpu_count()} cores, {args.seconds:.0f} s each; CPU in cores during the fleet's "
          "steady window", file=sys.stderr)
    print("| robots | plain loop | N plain loops: N processes | in N Ray actors | fleet | per robot | fleet / plain "
          "loop | fleet / N processes | fleet / N Ray actors | CPU: robots | learner | buffer | supervisor | Ray |")
    print("| ---: " * 14 + "|")
    for n in args.robots:
        plain = plain_loop(args.task, args.seconds)
        processes = plain_processes(args.task, args.seconds, n)
        actors = plain_actors(args.task, args.seconds, n)
        ours, cores = fleet(args.task, n, args.seconds)
        split = " | ".join(f"{cores.get(r, 0.0):.2f}" for r in ("robots", "learner", "buffer", "supervisor", "ray"))
        print(f"| {n} | {plain:,.0f} | {processes:,.0f} | {actors:,.0f} | {ours:,.0f} | {ours / n:,.0f} | "
              f"{ours / plain:.2f}x | {ours / processes:.2f}x | {ours / actors:.2f}x | {split} |", flush=True)


if __name__ == "__main__":
    main()
