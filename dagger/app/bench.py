"""`dagger bench`: Interactive Fleet Learning in one process per run, allocators × seeds.

N robots step a batched task; each step an allocator orders them, the IFL rules assign M operators
(simulated: the expert with the live loop's human traits, see `SimulatedOperators`), operators' actions
become labels, and the ensemble trains every `update_every` steps. One `fleet_step` event per step goes to
the run's events.jsonl.

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
from typing import Any

import numpy as np
import torch

from buffers.labels import LabelBuffer
from buffers.transitions import TransitionStore
from dagger.allocators import FleetSignals, make_allocator
from dagger.assignment import FleetAssigner
from dagger.config import load_config
from dagger.critics import GoalCritic
from dagger.events import EventLog, read_events
from dagger.fleet_metrics import fleet_summary
from dagger.policies import EnsemblePolicy
from dagger.provenance import record_start
from dagger.vec_tasks import VecPointObstacle
from teleop_devices.scripted import Fatigue, HumanTraits, reaction_steps
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
    operator: HumanTraits = field(default_factory=lambda: HumanTraits(noise=0.05, switch_s=0.5))
    """the simulated operators' traits, in seconds of task time (VecPointObstacle.dt = 0.05 s per fleet step):
    reaction time, switch cost, action noise, fatigue; the published figures in teleop_devices/scripted.py.
    switch_s is 0.5 s here (the live demo's 0 is for one operator and four robots)"""
    risk_gamma: float = 0.9
    """discount of the safety critic (the chance of a violation soon, C.U.R.'s risk); the goal critic (fleet-thrifty's
    td_risk = 1 − its value) uses policy.gamma 0.9999 as ThriftyDAgger does"""
    ask_threshold: float = 0.05
    """fifo: a robot asks for help when its normalised uncertainty is above this"""
    workers: int = 2
    """runs in parallel (processes)"""


class SimulatedOperators:
    """M simulated operators in fleet steps of `dt` seconds, vectorised over operators, with the live loop's
    trait math (teleop_devices/scripted.py): once (re)assigned, an operator reacts for its sampled reaction
    time (plus `switch_s` for a robot other than its last one) before it acts; reaction and noise scale with
    its strain, which grows with continuous assigned time and resets after `rest_s` idle.

        ops = SimulatedOperators(cfg.operator, humans=10, dt=task.dt, rng=rng)
        fleet.assign(order)
        work = ops.step(fleet, step, stuck, task.expert_actions())   # work.acting robots take work.actions

    Reaction time counts as human time (the operator is assigned; IFL counts robot-steps with an operator),
    but IFL's t_T and t_R count from the operator's first action: an operator intervenes at least t_T steps,
    and a hard reset takes t_R steps of its work.
    """

    def __init__(self, traits: HumanTraits, humans: int, dt: float, rng: np.random.Generator):
        self.traits, self.dt, self.rng = traits, dt, rng
        self.robot_of = np.full(humans, -1)  # operator -> robot (-1: idle), as of the last assign
        self.last_robot = np.full(humans, -1)  # operator -> the robot it served last
        self.fatigue = Fatigue(traits, humans, 0.0)
        self.reacting = np.zeros(humans, int)  # fleet steps left before the operator's first action
        self.strain = np.ones(humans)
        self.noise = np.full(humans, traits.noise)

    def assign(self, robot_of: np.ndarray, step: int) -> np.ndarray:
        """Takes the fleet's assignment (operator -> robot) at this fleet step; returns the operators newly on
        a robot."""
        now = step * self.dt
        changed = robot_of != self.robot_of
        new = np.flatnonzero(changed & (robot_of >= 0))
        idle = np.flatnonzero(changed & (robot_of < 0))
        self.fatigue.free(idle, now)
        self.reacting[idle] = 0
        self.strain[new] = self.fatigue.assign(new, now)
        switching = (self.last_robot[new] >= 0) & (self.last_robot[new] != robot_of[new])
        reaction_s = self.traits.sample_reaction(self.rng, self.strain[new], switching)
        self.reacting[new] = reaction_steps(reaction_s, self.dt)
        self.noise[new] = self.traits.noise_at(self.strain[new])
        self.last_robot[new] = robot_of[new]
        self.robot_of = robot_of.copy()
        return new

    def step(self, fleet: FleetAssigner, step: int, stuck: np.ndarray, expert: np.ndarray) -> OperatorWork:
        """One fleet step of operator work, right after fleet.assign: advances the fleet's operator time."""
        self.assign(fleet.robot_of, step)
        human = fleet.human_of()
        helped = human >= 0
        reacting, noise = np.zeros(fleet.robots, bool), np.zeros(fleet.robots)
        reacting[helped], noise[helped] = self.reacting[human[helped]] > 0, self.noise[human[helped]]
        reset_done = np.zeros(fleet.robots, bool)
        reset_done[fleet.step(stuck & ~reacting)] = True  # t_R starts once the operator acts
        fleet.timer[self.reacting > 0] = 0  # so does t_T
        self.reacting = np.maximum(self.reacting - 1, 0)
        actions = np.clip(expert + self.rng.normal(0.0, 1.0, expert.shape) * noise[:, None], -1.0, 1.0)
        return OperatorWork(helped, reacting, helped & ~stuck & ~reacting, actions, reset_done)


@dataclass
class OperatorWork:
    """One fleet step of the operators' work, per robot ([N] arrays)."""

    helped: np.ndarray  # an operator is assigned (human time)
    reacting: np.ndarray  # ... and still reacting: the robot waits
    acting: np.ndarray  # ... and acting: the robot takes `actions` (a label)
    actions: np.ndarray  # [N, act_dim] the operators' noisy expert actions (meaningful where acting)
    reset_done: np.ndarray  # the robot's hard reset finished: reset it


def run_one(cfg: BenchConfig, allocator_name: str, seed: int, run_dir: Path) -> dict[str, object]:
    """One allocator, one seed; returns its summary (recomputed from its events.jsonl)."""
    torch.set_num_threads(1)
    began = time.time()
    rng = np.random.default_rng(seed)
    task = VecPointObstacle(cfg.robots, seed)
    labels = LabelBuffer(task.obs_dim, task.act_dim, seed)
    run_cfg = load_config(None, [f"policy.members={cfg.members}", f"policy.hidden={cfg.hidden}",
                                 f"learner.batch_size={cfg.batch_size}", f"seed={seed}",
                                 "gate.name=thrifty"])  # the learner trains the goal critic too
    learner = Learner(run_cfg, task.obs_dim, task.act_dim, LocalEndpoint(labels))
    safety = GoalCritic(task.obs_dim, task.act_dim, cfg.hidden, cfg.risk_gamma, seed=seed)  # reward 1 at a violation
    violations = TransitionStore(task.obs_dim, task.act_dim)
    allocator = make_allocator(allocator_name, cfg.humans, seed=seed)
    fleet = FleetAssigner(cfg.humans, cfg.robots, cfg.min_steps, cfg.hard_reset_steps)
    operators = SimulatedOperators(cfg.operator, cfg.humans, task.dt, rng)
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
        assert isinstance(learner.policy, EnsemblePolicy)  # the bench runs the default family
        members, goal, violation = assess(learner.policy, obs, safety)
        uncertainty = members.var(0).mean(1)  # the action box [-1, 1] has maximum variance 1
        stuck = task.stuck.copy()
        asking = (uncertainty > cfg.ask_threshold) | stuck
        waiting = np.where(asking, waiting + 1, 0)
        helped = fleet.human_of() >= 0
        # risk: the safety critic's pessimistic twin; td_risk: 1 − the goal critic's (pessimistic) value
        signals = FleetSignals(uncertainty, violation.max(0), 1.0 - goal.min(0), stuck, waiting, helped, step,
                               urgency=np.where(asking, uncertainty / cfg.ask_threshold, 0.0))
        switches = fleet.assign(allocator.allocate(signals))
        work = operators.step(fleet, step, stuck, task.expert_actions())
        actions = members.mean(0)
        actions[work.acting] = work.actions[work.acting]
        labels.add(obs[work.acting], actions[work.acting].astype(np.float32))
        res = task.step(actions)
        moving = ~stuck
        violated = res.constraint & moving
        before, taken, after = obs[moving], actions[moving], task.obs()[moving]
        ends = (res.done | violated)[moving].astype(np.float32)
        labels.transitions.add(before, taken, res.success[moving].astype(np.float32), after, ends)
        violations.add(before, taken, violated[moving].astype(np.float32), after, ends)
        task.reset(res.done | work.reset_done)
        waiting[work.helped] = 0
        log.write([{"ev": "fleet_step", "t": step, "human_actions": int(work.helped.sum()), "switches": switches,
                    "violations": int((res.constraint & ~stuck).sum()), "successes": int(res.success.sum()),
                    "hard_resets": int((work.helped & stuck).sum()), "idle": int(stuck.sum()),
                    "reacting": int(work.reacting.sum()), "reward": float(res.reward.sum()),
                    "risk": round(float(signals.risk.mean()), 4), "td_risk": round(float(signals.td_risk.mean()), 4)}])
        if step % cfg.update_every == 0:
            learner.train(1)
            batch = violations.sample(cfg.batch_size, rng)
            if batch is not None:
                learner.policy.update_critic(batch, safety)
    log.write([{"ev": "run_end", "t": time.time(), "wall_s": time.time() - began}])
    log.close()
    return {"allocator": allocator_name, "seed": seed, **fleet_summary(read_events(run_dir / "events.jsonl")),
            "wall_s": round(time.time() - began, 1)}


def assess(policy: EnsemblePolicy, obs: np.ndarray, safety: GoalCritic) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The members' actions [K, B, A] (task units), and the goal and safety critics' twins [2, B] at the mean action."""
    with torch.no_grad():
        x = policy.norm_obs(obs)
        members = policy.member_actions(x)
        mean = members.mean(0)
        return policy.units(members), policy.critic.q(x, mean).numpy(), safety.q(x, mean).numpy()


def run_grid(cfg: Any, out: Path, methods: list[str], key: str, run: Callable[..., dict],
             progress: Callable[[dict], None] | None = None) -> list[dict]:
    """run(cfg, method, seed, out/runs/<method>-<seed>) for every method × seed in cfg.workers processes;
    writes out/bench.json, out/run.json (what produced it) and out/results.csv (one row per run, in method then seed
    order)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(asdict(cfg), indent=2))
    record_start(out)
    rows = []
    with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
        futures = [pool.submit(run, cfg, m, seed, out / "runs" / f"{m}-{seed}") for m in methods
                   for seed in range(cfg.seeds)]
        for future in as_completed(futures):
            rows.append(future.result())
            if progress is not None:
                progress(rows[-1])
    rows.sort(key=lambda r: (methods.index(str(r[key])), r["seed"]))
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def run_bench(cfg: BenchConfig, out: Path, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Every allocator × seed; writes results.csv and runs/<allocator>-<seed>/events.jsonl (the plots and the
    report come from bench_report.write_bench_report, from those logs)."""
    return run_grid(cfg, out, cfg.allocators, "allocator", run_one, progress)
