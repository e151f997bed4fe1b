"""Fleet scale and real time: robots in groups (`robot.per_actor` = K robots a worker process, one batched policy call a
control period) against the same task + policy + gate in one plain loop, and how many robots each policy family keeps
in real time.

Table `scale`: N = 1, 4, 16, 64, 256 unthrottled robots (gate `never`, learner nearly idle, no evaluator) on each task,
K = ceil(N / 2) (2 cores: 2 worker processes) and, as the old shape, N = 4 with K = 1. Before each fleet the plain
loop runs again alone; up to N = 16 also as N copies in N processes started together (what the machine gives N
processes) and in N Ray actors made as robots are and polled as often (what Ray costs). The fleet's rate is taken
over its steady window (every robot running) from the segments in events.jsonl; the mean batch (robots a batched call
answered) from the robots' statuses; where the machine's CPU went in that window from /proc: robots, learner,
buffer, the supervisor (the driver), Ray's own processes and other programs on the machine. Every fleet pretrains 50
updates only (its policy's quality does not change what a step costs).

Table `realtime`: for each policy family on Meta-World reach at robot.speed=1, the largest N in 1, 2, 4, 8, ... whose
robots all keep their control period over the steady window: at most 1 % of every group's periods overrun and every
robot steps at >= 0.95 of 1/dt (the search stops at the first N that fails, after one more try where other programs
took over half a core meanwhile; N = 4 is always measured). Beside it, the p50 and p99 of one control period's work
for a group of K = 2 (N = 4's shape), timed in this process alone.

    python benchmarks/fleet_overhead.py [--table scale|realtime|both] [--robots 1 4 16 64 256] [--per-actor half]
        [--seconds 20] [--tasks reacher reach] [--families mlp-ensemble chunking diffusion implicit] [--infer beside]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import torch

from dagger.config import RunConfig, load_config
from dagger.events import read_events
from dagger.gates import make_gate
from dagger.policies import EnsemblePolicy
from dagger.tasks import make_task
from workers.buffer import BufferWorker
from workers.launch import run_loop
from workers.learner import Learner
from workers.ray_fleet import RayFleet, init_ray
from workers.robot import RobotWorker, group_members
from workers.transport import LocalEndpoint

ROLES = {"ray::RayRobot": "robots", "ray::RayLearner": "learner", "ray::RayBuffer": "buffer"}
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
GOALS = {"reacher": 5.0, "reach": 1.5}  # fleet / plain loop at N = 64
GOAL_N = 64
REALTIME_GOAL_N = 4
OVERRUN_MAX, RATE_MIN = 0.01, 0.95
BUSY = 0.5  # cores other programs took in a real-time run that missed, above which it is run once more
COMMON = ["gate.name=never", "eval.every_versions=0", "learner.max_updates_per_s=20.0", "learner.pretrain_updates=50",
          "log.writers=[jsonl]"]


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


@ray.remote(num_cpus=0, max_concurrency=4)  # type: ignore[call-overload]  # as dagger's robot actors are made
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
    """CPU seconds so far of this process ("supervisor") and everything under it, by role ("ray": the rest), and of
    the machine as a whole ("machine": what other programs took is its rise less ours)."""
    procs = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            title = _title(name)
        except OSError:  # gone meanwhile
            continue
        procs[int(name)] = (int(stat[1]), title, (int(stat[11]) + int(stat[12])) * TICK_S)
    me, out = os.getpid(), {"supervisor": 0.0}
    for pid, (_, title, cpu) in procs.items():
        chain = [pid]
        while chain[-1] != me and chain[-1] in procs and len(chain) < 32:
            chain.append(procs[chain[-1]][0])
        if chain[-1] != me:
            continue  # not ours (another program on the machine)
        role = "supervisor" if pid == me else next((r for t, r in ROLES.items() if title.startswith(t)), "ray")
        out[role] = out.get(role, 0.0) + cpu
    busy = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    out["machine"] = (sum(busy) - busy[3] - busy[4]) * TICK_S  # all but idle and iowait
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


@dataclass
class FleetRun:
    """One fleet's steady window: its steps/s, the cores each role used, and the robots' statuses at its ends."""

    robots: int
    per_actor: int
    rate: float
    cores: dict[str, float]
    span_s: float
    first: list[dict] = field(default_factory=list)  # every robot's status at the window's start
    last: list[dict] = field(default_factory=list)  # ... and at its end

    def batch(self) -> float:
        """Mean robots per batched policy call, over the groups (each group's mean since it started)."""
        return statistics.mean(self.last[g[0]].get("batch", 0.0) for g in self.groups())

    def groups(self) -> list[list[int]]:
        return group_members(self.robots, self.per_actor, os.cpu_count() or 1)

    def overrun_fraction(self) -> float:
        """The worst group's share of its periods in the window that ended past their time."""
        def share(g: list[int]) -> float:
            a, b = self.first[g[0]], self.last[g[0]]
            return (b["overruns"] - a["overruns"]) / max(1, b["periods"] - a["periods"])
        return max(share(g) for g in self.groups())

    def slowest_robot(self) -> float:
        """The slowest robot's steps/s in the window."""
        return min((b["steps"] - a["steps"]) / self.span_s for a, b in zip(self.first, self.last, strict=True))


def fleet(task_name: str, robots: int, per_actor: int, seconds: float, settings: list[str]) -> FleetRun:
    """Runs a fleet for `seconds` (+3) and measures its steady window."""
    cfg = load_config(None, [f"task={task_name}", f"robots={robots}", f"robot.per_actor={per_actor}",
                             f"minutes={(seconds + 3) / 60}", *COMMON, *settings])
    init_ray(num_cpus=2)
    run_dir = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    samples: list[tuple[float, dict[str, float]]] = []
    statuses: list[tuple[float, list[dict]]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append((time.time(), cpu_by_role()))

    def keep(status: dict) -> None:
        robots_now = status["robots"]
        if len(robots_now) == robots:
            statuses.append((time.time(), [{k: robots_now[r].get(k, 0) for k in ("steps", "periods", "overruns",
                                                                                 "batch")} for r in range(robots)]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run_loop(cfg, run_dir, RayFleet, on_status=keep)
    finally:
        done.set()
        sampler.join()
        settle()
    rate, t0, t1 = steady_rate(read_events(run_dir / "events.jsonl"))
    inside = [(t, cpu) for t, cpu in samples if t0 <= t <= t1]
    (ta, a), (tb, b) = inside[0], inside[-1]
    polled = [(t, s) for t, s in statuses if t0 <= t <= t1]
    (sa, first), (sb, last) = polled[0], polled[-1]
    cores = {role: (b.get(role, 0.0) - a.get(role, 0.0)) / (tb - ta) for role in b}
    cores["others"] = max(0.0, cores.pop("machine") - sum(cores.values()))  # /proc/stat and ours tick apart
    return FleetRun(robots, per_actor, rate, cores, sb - sa, first, last)


def period_work_ms(task_name: str, family: str, per_actor: int, seconds: float = 3.0) -> tuple[float, float]:
    """p50 and p99 of one control period's work (RobotWorker.tick: mailbox, a batched call, a step each, shipping) of a
    group of `per_actor` robots, in this process alone."""
    torch.set_num_threads(1)
    cfg: RunConfig = load_config(None, [f"task={task_name}", f"robots={per_actor}", f"policy.type={family}",
                                        *COMMON])
    task = make_task(task_name)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-tick-") as tmp:
        learner = Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(BufferWorker(Path(tmp) / "buffer")))
        learner.publish()
        group = RobotWorker(0, cfg, LocalEndpoint(_Drop()), count=per_actor)
        group.set_weights(learner.latest()[1])
        for _ in range(20):
            group.tick()
        took: list[float] = []
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            tick = time.perf_counter()
            group.tick()
            took.append(time.perf_counter() - tick)
        group.stop()
    cut = statistics.quantiles(took, n=100)
    return 1000 * cut[49], 1000 * cut[98]


class _Drop:
    """Where the timed group ships: takes every segment at once and keeps none."""

    def add(self, segments: list) -> list:
        return [s.key for s in segments]


def scale_table(args: argparse.Namespace) -> None:
    print(f"scale: {os.cpu_count()} cores, {args.seconds:.0f} s each, robots unthrottled, gate never, policy "
          f"mlp-ensemble; CPU in cores during the fleet's steady window. Goals: fleet / plain loop at N = {GOAL_N} "
          + ", ".join(f"{t} >= {g:g}x" for t, g in GOALS.items()), file=sys.stderr)
    print("| task | robots N | per actor K | fleet steps/s | plain loop | fleet / plain loop | per robot | mean batch "
          "| N plain processes | N Ray actors | CPU: robots | learner | buffer | supervisor | Ray | other programs "
          "| goal |")
    print("| --- " + "| ---: " * 15 + "| --- |")
    for task in args.tasks:
        compared: dict[int, tuple[float, float]] = {}
        for n, k in shapes(args.robots, args.per_actor):
            plain = plain_loop(task, args.seconds)
            if n <= args.compare_up_to and n not in compared:
                compared[n] = (plain_processes(task, args.seconds, n), plain_actors(task, args.seconds, n))
            procs, actors = (f"{x:,.0f}" for x in compared[n]) if n in compared else ("–", "–")
            run = fleet(task, n, k, args.seconds, ["robot.speed=1000000.0"])
            split = " | ".join(f"{run.cores.get(r, 0.0):.2f}" for r in ("robots", "learner", "buffer", "supervisor",
                                                                          "ray", "others"))
            ratio = run.rate / plain
            goal = ""
            if n == GOAL_N and task in GOALS:
                goal = f">= {GOALS[task]:g}x: {'met' if ratio >= GOALS[task] else 'missed'}"
            print(f"| {task} | {n} | {k} | {run.rate:,.0f} | {plain:,.0f} | {ratio:.2f}x | {run.rate / n:,.0f} | "
                  f"{run.batch():.1f} | {procs} | {actors} | {split} | {goal} |", flush=True)


def shapes(robots: list[int], per_actor: list[str]) -> list[tuple[int, int]]:
    """(N, K) to run: each N with each K asked for ("half": ceil(N / 2); none above N); by default also N = 4, K = 1
    (a process per robot, the old shape) beside N = 4's own."""
    out: list[tuple[int, int]] = []
    for n in robots:
        for k in per_actor:
            shape = (n, math.ceil(n / 2) if k == "half" else min(int(k), n))
            if shape not in out:
                out.append(shape)
        if per_actor == ["half"] and n == 4:
            out.append((4, 1))
    return out


def realtime_table(args: argparse.Namespace) -> None:
    dt = make_task(args.realtime_task).dt
    print(f"realtime: {args.realtime_task} at robot.speed=1 (period {1000 * dt:.1f} ms), {os.cpu_count()} cores, "
          f"{args.seconds:.0f} s each, K = ceil(N / 2), gate never; real time: every group's overruns <= "
          f"{OVERRUN_MAX:.0%} of its periods and every robot >= {RATE_MIN:g} / dt. Goal: every family real time at "
          f"N = {REALTIME_GOAL_N}", file=sys.stderr)
    print(f"| family | N max in real time | period work, K = 2 alone: p50 / p99 (ms of {1000 * dt:.1f}) "
          f"| overruns at N = {REALTIME_GOAL_N} | slowest robot at N = {REALTIME_GOAL_N} (steps/s) "
          f"| other programs at N = {REALTIME_GOAL_N} (cores) "
          "| searched (N: worst group's overruns, slowest robot's steps/s) | goal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for family in args.families:
        p50, p99 = period_work_ms(args.realtime_task, family, 2)
        name = family if args.infer == "inline" else f"{family}, infer {args.infer}"
        tried: dict[int, FleetRun] = {}
        n_max, n = 0, 1
        while n <= args.max_realtime:
            tried[n] = realtime_run(args, family, n)
            if not keeps_time(tried[n], dt):
                break
            n_max, n = n, 2 * n
        if REALTIME_GOAL_N not in tried:
            tried[REALTIME_GOAL_N] = realtime_run(args, family, REALTIME_GOAL_N)
        at = tried[REALTIME_GOAL_N]
        searched = ", ".join(f"{size}: {r.overrun_fraction():.1%}, {r.slowest_robot():.1f}"
                             for size, r in sorted(tried.items()))
        capped = " (cap)" if n > args.max_realtime else ""
        goal = f"N = {REALTIME_GOAL_N}: {'met' if keeps_time(at, dt) else 'missed'}"
        print(f"| {name} | {n_max}{capped} | {p50:.1f} / {p99:.1f} | {at.overrun_fraction():.1%} | "
              f"{at.slowest_robot():.1f} | {at.cores.get('others', 0.0):.2f} | {searched} | {goal} |", flush=True)


def realtime_run(args: argparse.Namespace, family: str, robots: int, again: bool = True) -> FleetRun:
    """N robots of `family` in real time, K = ceil(N / 2); says on stderr how it went. A run that missed real time
    while other programs took more than BUSY cores runs once more (the machine is shared)."""
    run = fleet(args.realtime_task, robots, math.ceil(robots / 2), args.seconds,
                ["robot.speed=1", f"policy.type={family}", f"robot.infer={args.infer}"])
    print(f"  {family} N={robots}: overruns {run.overrun_fraction():.1%}, slowest robot {run.slowest_robot():.1f} "
          f"steps/s, batch {run.batch():.2f}, cores " + ", ".join(f"{role} {c:.2f}" for role, c in run.cores.items()),
          file=sys.stderr, flush=True)
    if again and run.cores.get("others", 0.0) > BUSY and not keeps_time(run, make_task(args.realtime_task).dt):
        print(f"  (other programs took {run.cores['others']:.2f} cores: once more)", file=sys.stderr)
        return realtime_run(args, family, robots, again=False)
    return run


def keeps_time(run: FleetRun, dt: float) -> bool:
    return run.overrun_fraction() <= OVERRUN_MAX and run.slowest_robot() >= RATE_MIN / dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=["scale", "realtime", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=20.0, help="each fleet's and plain loop's")
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 4, 16, 64, 256], help="N of the scale table")
    parser.add_argument("--per-actor", nargs="+", default=["half"],
                        help="K for every N of the scale table: numbers, or half (ceil(N / 2))")
    parser.add_argument("--tasks", nargs="+", default=["reacher", "reach"], help="of the scale table")
    parser.add_argument("--compare-up-to", type=int, default=16,
                        help="largest N also run as N plain processes and N Ray actors")
    parser.add_argument("--families", nargs="+", default=["mlp-ensemble", "chunking", "diffusion", "implicit"])
    parser.add_argument("--realtime-task", default="reach")
    parser.add_argument("--infer", choices=["inline", "beside"], default="inline",
                        help="where the real-time table's groups run their policy (robot.infer)")
    parser.add_argument("--max-realtime", type=int, default=128, help="largest N the real-time search tries")
    args = parser.parse_args()
    if args.table in ("scale", "both"):
        scale_table(args)
    if args.table in ("realtime", "both"):
        realtime_table(args)


if __name__ == "__main__":
    main()
