"""`dagger bench`: Interactive Fleet Learning in one process per run, allocators × seeds.

N robots step a batched task; each step an allocator orders them, the IFL rules assign M operators
(simulated: the expert plus noise), operators' actions become labels, and the ensemble trains
every `update_every` steps. One `fleet_step` event per step goes to the run's events.jsonl.

    rows = run_bench(BenchConfig(), Path("bench-out"))      # results.csv, runs/*/events.jsonl, plots/
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from buffers.labels import LabelBuffer
from dagger.allocators import FleetSignals, make_allocator
from dagger.assignment import FleetAssigner
from dagger.config import load_config
from dagger.events import EventLog, read_events
from dagger.fleet_metrics import cumulative, fleet_summary
from dagger.vec_tasks import VecPointObstacle
from workers.learner import Learner
from workers.transport import LocalEndpoint


@dataclass
class BenchConfig:
    robots: int = 100
    """N robots in the fleet"""
    humans: int = 10
    """M operators"""
    steps: int = 10000
    """fleet steps per run"""
    min_steps: int = 5
    """t_T: an operator stays at least this many steps once assigned"""
    hard_reset_steps: int = 5
    """t_R: operator steps a constraint-violating robot needs"""
    allocators: list[str] = field(default_factory=lambda: ["random", "fleet-ensemble", "fleet-thrifty", "cur", "fifo"])
    """methods to compare"""
    seeds: int = 3
    """seeds per method"""
    demo_steps: int = 20
    """fleet steps of expert demonstrations (every robot) the policy starts from"""
    update_every: int = 2
    """fleet steps per gradient update (the IFL code does 2 updates per step on a GPU; see README)"""
    batch_size: int = 256
    """samples per ensemble member per update"""
    members: int = 5
    """ensemble size"""
    hidden: int = 64
    """hidden width of each member (2 layers)"""
    noise: float = 0.05
    """std of the simulated operators' action noise"""
    ask_threshold: float = 0.05
    """fifo: a robot asks for help when its normalised uncertainty is above this"""
    workers: int = 2
    """runs in parallel (processes)"""


def run_one(cfg: BenchConfig, allocator_name: str, seed: int, run_dir: Path) -> dict[str, object]:
    """One allocator, one seed; returns its summary (recomputed from its events.jsonl)."""
    torch.set_num_threads(1)
    began = time.time()
    rng = np.random.default_rng(seed)
    task = VecPointObstacle(cfg.robots, seed)
    labels = LabelBuffer(task.obs_dim, task.act_dim, seed)
    run_cfg = load_config(None, [f"policy.members={cfg.members}", f"policy.hidden={cfg.hidden}",
                                 f"learner.batch_size={cfg.batch_size}", f"seed={seed}"])
    learner = Learner(run_cfg, task.obs_dim, task.act_dim, LocalEndpoint(labels))
    allocator = make_allocator(allocator_name, cfg.humans, seed=seed)
    fleet = FleetAssigner(cfg.humans, cfg.robots, cfg.min_steps, cfg.hard_reset_steps)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "events.jsonl").exists():
        raise ValueError(f"{run_dir / 'events.jsonl'} exists: a bench writes into a new directory")
    log = EventLog(run_dir / "events.jsonl")
    log.write([{"ev": "run_start", "t": began, "allocator": allocator_name, "seed": seed, **asdict(cfg)}])
    for _ in range(cfg.demo_steps):
        labels.add(task.obs(), task.expert_actions())
        res = task.step(task.expert_actions())
        task.reset(res.done | res.constraint)
    learner.train(cfg.demo_steps * 10)
    waiting = np.zeros(cfg.robots)
    for step in range(cfg.steps):
        obs = task.obs()
        members = learner.policy.member_actions(obs)
        uncertainty = members.var(0).mean(1)  # the action box [-1, 1] has maximum variance 1
        stuck = task.stuck.copy()
        waiting = np.where((uncertainty > cfg.ask_threshold) | stuck, waiting + 1, 0)
        helped = fleet.human_of() >= 0
        signals = FleetSignals(uncertainty, np.zeros(cfg.robots), stuck, waiting, helped, step)
        switches = fleet.assign(allocator.allocate(signals))
        helped = fleet.human_of() >= 0
        reset_done = np.zeros(cfg.robots, bool)
        reset_done[fleet.step(stuck)] = True
        acting = helped & ~stuck
        actions = members.mean(0)
        expert = np.clip(task.expert_actions() + rng.normal(0, cfg.noise, actions.shape), -1, 1)
        actions[acting] = expert[acting]
        labels.add(obs[acting], actions[acting].astype(np.float32))
        res = task.step(actions)
        task.reset(res.done | reset_done)
        waiting[helped] = 0
        log.write([{"ev": "fleet_step", "t": step, "human_actions": int(helped.sum()), "switches": switches,
                    "violations": int((res.constraint & ~stuck).sum()), "successes": int(res.success.sum()),
                    "hard_resets": int((helped & stuck).sum()), "idle": int(stuck.sum()),
                    "reward": float(res.reward.sum())}])
        if step % cfg.update_every == 0:
            learner.train(1)
    log.write([{"ev": "run_end", "t": time.time(), "wall_s": time.time() - began}])
    log.close()
    return {"allocator": allocator_name, "seed": seed, **fleet_summary(read_events(run_dir / "events.jsonl")),
            "wall_s": round(time.time() - began, 1)}


def run_bench(cfg: BenchConfig, out: Path, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Every allocator × seed; writes results.csv, runs/<allocator>-<seed>/events.jsonl and plots/."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(asdict(cfg), indent=2))
    jobs = [(name, seed) for name in cfg.allocators for seed in range(cfg.seeds)]
    rows = []
    with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
        futures = [pool.submit(run_one, cfg, name, seed, out / "runs" / f"{name}-{seed}") for name, seed in jobs]
        for future in as_completed(futures):
            rows.append(future.result())
            if progress is not None:
                progress(rows[-1])
    rows.sort(key=lambda r: (cfg.allocators.index(str(r["allocator"])), r["seed"]))
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_bench(out, cfg)
    return rows


def plot_bench(out: Path, cfg: BenchConfig) -> None:
    """plots/cumulative.png (successes and human actions over time) and plots/rohe.png (mean ± std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "plots").mkdir(exist_ok=True)
    fig, (ax_s, ax_h) = plt.subplots(1, 2, figsize=(11, 4))
    rohes = []
    for name in cfg.allocators:
        runs = [read_events(out / "runs" / f"{name}-{seed}" / "events.jsonl") for seed in range(cfg.seeds)]
        successes = np.mean([cumulative(r, "successes") for r in runs], axis=0)
        humans = np.mean([cumulative(r, "human_actions") for r in runs], axis=0)
        ax_s.plot(successes, label=name)
        ax_h.plot(humans, successes, label=name)
        rohes.append([fleet_summary(r)["rohe"] for r in runs])
    ax_s.set(xlabel="fleet step", ylabel="cumulative successes", title=f"N={cfg.robots} robots, M={cfg.humans}")
    ax_h.set(xlabel="cumulative human actions", ylabel="cumulative successes", title="return on human effort")
    ax_s.legend()
    fig.tight_layout()
    fig.savefig(out / "plots" / "cumulative.png", dpi=110)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(cfg.allocators, [np.mean(r) for r in rohes], yerr=[np.std(r) for r in rohes], capsize=4)
    ax.set(ylabel="ROHE (successes / 1000 human actions)", title=f"mean ± std over {cfg.seeds} seeds")
    fig.tight_layout()
    fig.savefig(out / "plots" / "rohe.png", dpi=110)
    plt.close("all")
