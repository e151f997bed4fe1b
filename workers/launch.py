"""Runs one whole loop: demonstrations, pretraining, then robots + learner + supervisor.

    summary = run_loop(cfg, run_dir)                   # in-process, deterministic, no Ray
    summary = run_loop(cfg, run_dir, fleet=RayFleet(cfg, run_dir))
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from buffers.schema import DEMO, Segment
from dagger.config import RunConfig
from dagger.core import Task
from dagger.events import EventLog, read_events
from dagger.live import LiveStats
from dagger.report import summarize
from dagger.tasks import make_task
from teleop_devices.scripted import ScriptedOperator
from teleop_devices.station import HumanDevice
from workers.buffer import BufferWorker
from workers.learner import Learner
from workers.robot import RobotWorker
from workers.supervisor import Supervisor
from workers.transport import Endpoint, LocalEndpoint


class Fleet(Protocol):
    robots: list[Endpoint]
    buffer: Endpoint
    learner: Endpoint

    def start(self) -> None: ...

    def between(self) -> None: ...

    def stop(self) -> list[dict]: ...


class LocalFleet:
    """Every component in this process, stepped in lockstep by the supervisor's loop."""

    def __init__(self, cfg: RunConfig, run_dir: Path, obs_dim: int, act_dim: int, incarnation: int = 0):
        self.cfg = cfg
        self.buffer_worker = BufferWorker(run_dir / "segments", cfg.learner.human_fraction, cfg.seed)
        self.buffer: Endpoint = LocalEndpoint(self.buffer_worker)
        self.learner_worker = Learner(cfg, obs_dim, act_dim, self.buffer)
        self.learner: Endpoint = LocalEndpoint(self.learner_worker)
        self.robot_workers = [RobotWorker(i, cfg, self.buffer, incarnation=incarnation) for i in range(cfg.robots)]
        self.robots: list[Endpoint] = [LocalEndpoint(r) for r in self.robot_workers]
        self.ticks = 0

    def start(self) -> None:
        pass

    def between(self) -> None:
        """One control period of every robot and one learner update (a publish every few)."""
        for robot in self.robot_workers:
            robot.tick()
        self.learner_worker.train(1)
        self.ticks += 1
        if self.ticks % self.cfg.learner.publish_every == 0:
            self.learner_worker.publish()

    def stop(self) -> list[dict]:
        polls = [r.stop() for r in self.robot_workers] + [self.learner_worker.stop()]
        polls.append(self.buffer_worker.poll())
        self.buffer_worker.close()
        return polls


def collect_demos(cfg: RunConfig, task: Task) -> list[Segment]:
    """Scripted-expert episodes the policy is first cloned from (noise as the operator's)."""
    demos = []
    for episode in range(cfg.demos):
        expert = ScriptedOperator(dataclasses.replace(cfg.operator, reaction_s=0.0), task, -1,
                                  cfg.seed * 31 + episode, task.dt)
        obs, done = task.reset(seed=10**9 + cfg.seed * 1000 + episode), False
        steps: list[dict[str, Any]] = []
        while not done:
            action = expert.read().action
            assert action is not None
            res = task.step(action)
            steps.append({"obs": obs, "action": action, "policy_action": np.zeros(task.act_dim),
                          "version": 0, "spread": 0.0, "threshold": 0.0, "reward": res.reward,
                          "success": res.success, "constraint": res.constraint, "done": res.done,
                          "step": len(steps), "t_wall": time.time()})
            obs, done = res.obs, res.done
        demos.append(Segment.from_steps(-1, episode, episode, DEMO, "episode_end", time.time(), steps))
    return demos


FleetFactory = Callable[[RunConfig, Path, int, int, int], Fleet]


def previous_runs(run_dir: Path) -> int:
    """How many runs a resumed run dir already holds (robots of this one number their segments after them)."""
    path = run_dir / "events.jsonl"
    return sum(e["ev"] == "run_start" for e in read_events(path)) if path.exists() else 0


def run_loop(cfg: RunConfig, run_dir: Path, make_fleet: FleetFactory = LocalFleet,
             on_status: Callable[[dict], None] | None = None, stats: LiveStats | None = None,
             devices: dict[int, HumanDevice] | None = None, pump: Callable[[], None] | None = None,
             frames_every_s: float = 0.0) -> dict[str, Any]:
    """Runs the loop to its budget and returns the summary recomputed from events.jsonl."""
    torch.set_num_threads(1)
    task = make_task(cfg.task)
    incarnation = previous_runs(run_dir)
    log = EventLog(run_dir / "events.jsonl")
    log.write([{"ev": "run_start", "t": time.time(), "robots": cfg.robots, "operators": cfg.operators,
                "task": cfg.task, "gate": cfg.gate.name, "alpha": cfg.gate.alpha, "seed": cfg.seed,
                "control_period_ms": 1000 * task.dt / cfg.robot.speed}])
    fleet = make_fleet(cfg, run_dir, task.obs_dim, task.act_dim, incarnation)
    demos = collect_demos(cfg, task)
    fleet.buffer.call("add", demos).result()
    fleet.learner.call("train", cfg.learner.pretrain_updates).result()
    fleet.learner.call("publish").result()
    log.write([{"ev": "demos", "t": time.time(), "episodes": len(demos), "steps": sum(map(len, demos))}])
    restart = getattr(fleet, "restart_robot", None)
    supervisor = Supervisor(cfg, list(fleet.robots), fleet.buffer, fleet.learner, log, stats, restart=restart,
                            devices=devices, pump=pump)
    supervisor.poll()
    for robot in fleet.robots:
        robot.call("want_frames", frames_every_s)
    fleet.start()
    local = isinstance(fleet, LocalFleet)
    reason = supervisor.run(fleet.between, on_status, period=0.0 if local else 0.1)
    if reason == "interrupted":  # a second Ctrl-C while shutting down forces the exit
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    for result in fleet.stop():
        if "states" in result:
            supervisor.handle(result)
        else:
            supervisor.record(result["events"])
    log.write([{"ev": "run_end", "t": time.time(), "reason": reason}])
    log.close()
    return summarize(read_events(run_dir / "events.jsonl"))
