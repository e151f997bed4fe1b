"""Runs one whole loop: demonstrations, pretraining, then robots + learner + supervisor.

The policy starts from the demonstrations, from the run dir's newest checkpoint when a run resumes,
or from another run's checkpoint (`init_from`).

    summary = run_loop(cfg, run_dir)                   # in-process, exactly repeatable per seed, no Ray
    summary = run_loop(cfg, run_dir, make_fleet=RayFleet)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from buffers.schema import DEMO, Segment
from dagger.checkpoint import has_checkpoint, read_checkpoint
from dagger.config import RunConfig, to_dict
from dagger.core import Task, camera_image
from dagger.evaluation import demo_seed
from dagger.events import EventLog, read_events
from dagger.formats.demos import demo_segments, read_dataset
from dagger.metrics import summarize
from dagger.policies import make_policy
from dagger.policies.remote import PolicyServer, RemotePolicy
from dagger.scalars import ScalarLogger, make_writers
from dagger.tasks import make_task
from dagger.wire import client_tls, new_token_file, read_token
from teleop_devices.scripted import ScriptedOperator
from teleop_devices.station import HumanDevice
from workers.buffer import BufferWorker
from workers.evaluator import Evaluator
from workers.learner import Learner
from workers.robot import RobotWorker, group_members, replace_robot
from workers.roles import BufferRole, EvaluatorRole, Fleet, LearnerRole, RobotRole
from workers.supervisor import Supervisor
from workers.transport import Endpoint, LocalEndpoint, cause_of, guard, settled


class SimClock:
    """In-process time: starts at the wall clock and advances one control period per tick, so a run's events
    (and everything decided from time: shipping, waiting, fatigue) repeat exactly for a seed."""

    def __init__(self, period: float):
        self.period, self.start, self.ticks = period, time.time(), 0

    def __call__(self) -> float:
        return self.start + self.ticks * self.period


class LocalFleet:
    """Every component in this process, stepped in lockstep by the supervisor's loop on simulated time."""

    def __init__(self, cfg: RunConfig, run_dir: Path, obs_dim: int, act_dim: int, incarnation: int = 0):
        self.cfg = cfg
        self.clock = SimClock(period=0.0)  # one robot control period a tick, set below
        self.buffer_worker = BufferWorker.for_run(run_dir / "segments", cfg, self.clock)
        self.buffer: Endpoint[BufferRole] = LocalEndpoint(self.buffer_worker)
        self.learner_worker = Learner(cfg, obs_dim, act_dim, self.buffer, self.clock, run_dir / "checkpoints")
        self.learner: Endpoint[LearnerRole] = LocalEndpoint(self.learner_worker)
        self.members = group_members(cfg.robots, cfg.robot.per_actor, os.cpu_count() or 1)
        self.incarnations = [incarnation] * cfg.robots
        self.robot_workers = [RobotWorker(ids[0], cfg, self.buffer, self.clock, incarnation,
                                          budgeted=cfg.minutes == 0, count=len(ids)) for ids in self.members]
        self.groups: list[Endpoint[RobotRole]] = [LocalEndpoint(r) for r in self.robot_workers]
        self.clock.period = self.robot_workers[0].period
        self.evaluator: Endpoint[EvaluatorRole] = LocalEndpoint(Evaluator(cfg, self.clock))
        self.ticks = 0
        self.owed = 0.0  # learner updates due, carried between periods

    def start(self) -> None:
        pass

    def between(self) -> None:
        """One control period of every robot and the learner's updates in it (a publish every few)."""
        for robot in self.robot_workers:
            robot.tick()
        if not self.learner_worker.failure:  # a failure stops training, as a dead thread does on Ray
            guard(self.learn, self.learner_worker.loop_failed)()
        self.ticks += 1
        self.clock.ticks += 1

    def learn(self) -> None:
        """The updates the learner's clock allows in one period: learner.max_updates_per_s of simulated time, as
        its thread runs on Ray when the cores keep up (0, no cap: one a period); a publish as often as on Ray."""
        rate = self.cfg.learner.max_updates_per_s
        self.owed += rate * self.clock.period if rate > 0 else 1.0
        n, self.owed = int(self.owed), self.owed - int(self.owed)
        learner = self.learner_worker
        if n > 0:
            learner.train(n)
        if learner.updates - learner.updates_at_publish >= self.cfg.learner.publish_every:
            learner.publish()

    def fetch(self, published: Any) -> dict:
        return published

    def replace_robot(self, robot: int) -> None:
        replace_robot(self.groups, self.members, self.incarnations, robot)

    def restart_group(self, group: int) -> Endpoint[RobotRole]:
        raise RuntimeError(f"robots {self.members[group]} failed: in-process robot workers are not restarted")

    def kill_hung(self, component: Endpoint[Any]) -> None:
        raise RuntimeError("in-process components are not restarted")

    def stop(self) -> list[dict]:
        polls = [p for r in self.robot_workers for p in r.stop()]
        polls.append(stopped("learner", self.learner_worker.stop, self.clock))
        polls.append(self.buffer_worker.poll())
        polls.append(closed(LocalEndpoint(self.buffer_worker), self.clock))
        return polls


def stopped(component: str, stop: Callable[[], dict], clock: Callable[[], float]) -> dict:
    """A component's final poll at the end of a run; one whose storage refused (a full disk: the learner's last
    checkpoint, the buffer's log) says so in an event instead, and the run still ends with run_end and a report."""
    try:
        return stop()
    except Exception as err:  # noqa: BLE001 - the run still ends, with run_end and a report
        return {"events": [{"ev": "loop_failed", "t": clock(), "component": component,
                            "error": f"stopping: {cause_of(err)}"}]}


def closed(buffer: Endpoint[BufferRole], clock: Callable[[], float]) -> dict:
    """Closes the buffer at the end of a run (see stopped)."""
    return stopped("buffer", lambda: settled(buffer, BufferRole.close) or {"events": []}, clock)


def collect_demos(cfg: RunConfig, task: Task, clock: Callable[[], float] = time.time) -> list[Segment]:
    """Scripted-expert episodes the policy is first cloned from (noise as the operator's), and `demo_file`'s."""
    demos = []
    for episode in range(cfg.demos):
        expert = ScriptedOperator(dataclasses.replace(cfg.operator, reaction_s=0.0), task, -1,
                                  cfg.seed * 31 + episode, task.dt)
        obs, done = task.reset(seed=demo_seed(cfg.seed, episode)), False
        steps: list[dict[str, Any]] = []
        while not done:
            action = expert.read().action
            assert action is not None
            image = camera_image(task)
            res = task.step(action)
            steps.append({"obs": obs, "action": action, "policy_action": np.zeros(task.act_dim),
                          "version": 0, "spread": 0.0, "threshold": 0.0, "reward": res.reward,
                          "success": res.success, "constraint": res.constraint, "done": res.done,
                          "step": len(steps), "t_wall": clock(), **({} if image is None else {"image": image})})
            obs, done = res.obs, res.done
        demos.append(Segment.from_steps(-1, episode, episode, DEMO, "episode_end", clock(), steps))
    if cfg.demo_file:  # someone else's demonstrations, after the scripted ones
        demos += demo_segments(read_dataset(cfg.demo_file, task), first=cfg.demos)
    return demos


def clone_from_demos(cfg: RunConfig, task: Task, directory: Path, updates: int) -> Learner:
    """Behaviour cloning in this process: cfg.demos scripted demonstrations into a replay buffer in `directory`, then
    `updates` learner updates and a published version (how benchmarks train a policy family)."""
    buffer = BufferWorker.for_run(directory, cfg)
    buffer.add(collect_demos(cfg, task))
    learner = Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer))
    learner.train(updates)
    learner.publish()
    return learner


FleetFactory = Callable[[RunConfig, Path, int, int, int], Fleet]
LOSS_EVIDENCE = ("segment", "stored", "segment_trained", "log_lost")
"""the events of earlier runs a resumed buffer's log is checked against (BufferWorker.lost)"""


def previous_runs(events: list[dict]) -> tuple[int, list[str]]:
    """The first incarnation no robot of a resumed run dir's earlier runs used (each run and each robot restart took
    one; this run's robots number their segments after them), and the keys of the segments they reported."""
    return (sum(e["ev"] in ("run_start", "robot_restarted") for e in events),
            [f"{e['robot']}:{e['seq']}" for e in events if e["ev"] == "segment"])


def start_policy(cfg: RunConfig, run_dir: Path, task: Task, fleet: Fleet, resumed: bool,
                 on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Puts the first policy in the learner: the run's newest checkpoint when resuming (training continues, versions
    keep increasing), else the demonstrations plus `init_from`'s policy or behavior cloning. Returns an event.
    on_progress(line) hears each step as it begins, and how long pretraining took."""
    say = on_progress or (lambda line: None)
    learner, clock = fleet.learner, fleet.clock
    if resumed and has_checkpoint(run_dir):
        say(f"resuming from the newest checkpoint in {run_dir}")
        ckpt = read_checkpoint(run_dir)
        settled(learner, LearnerRole.restore, ckpt, True)
        return {"ev": "policy_start", "t": clock(), "source": "resume", "path": ckpt["path"],
                "version": int(ckpt["version"])}
    sources = [f"{cfg.demos} from the scripted expert"] if cfg.demos else []
    sources += [f"those in {cfg.demo_file}"] if cfg.demo_file else []
    say("collecting demonstrations: " + " and ".join(sources))
    demos = collect_demos(cfg, task, clock)
    settled(fleet.buffer, BufferRole.add, demos)
    event = {"ev": "policy_start", "t": clock(), "demo_episodes": len(demos), "demo_steps": sum(map(len, demos))}
    if cfg.init_from:
        say(f"starting from the policy in {cfg.init_from}")
        ckpt = read_checkpoint(cfg.init_from)
        settled(learner, LearnerRole.restore, ckpt, False)
        event.update(source="init_from", path=ckpt["path"], version=int(ckpt["version"]))
    else:
        updates, began = cfg.learner.pretrain_updates, time.perf_counter()
        say(f"pretraining the policy: {updates} updates on {event['demo_steps']} demonstration steps")
        loss = settled(learner, LearnerRole.train, updates)  # one call: the same batches as ever (no progress between)
        say(f"pretrained the policy: {updates} updates in {time.perf_counter() - began:.1f} s, loss {loss:.4f}")
        event.update(source="demos", version=0)
    return event


def serve_policy(cfg: RunConfig, run_dir: Path, task: Task) -> tuple[RunConfig, PolicyServer | RemotePolicy | None]:
    """For `policy.type=remote`: where the weights go — a client of the server `policy.address` names, or a server
    started here on loopback hosting `policy.serve` (its secret in run_dir/policy_token) — and the config the robots
    get, which names it. Other policy types: (cfg, None)."""
    if cfg.policy.type != "remote":
        return cfg, None
    if cfg.policy.address:
        return cfg, RemotePolicy(cfg.policy.address, read_token(cfg.policy.token_file), deadline_ms=10_000,
                                 tls=client_tls(cfg.policy.tls_ca) if cfg.policy.tls_ca else None)
    path = run_dir / "policy_token"
    token = new_token_file(path)
    server = PolicyServer(lambda: make_policy(cfg.policy, task.obs_dim, task.act_dim, cfg.seed, task.image_shape),
                          token).start()
    served = dataclasses.replace(cfg.policy, address=server.address, token_file=str(path))
    return dataclasses.replace(cfg, policy=served), server


class ServedWeights:
    """Where a remote run's weights go: its policy server (`server`: the one started here, or a client of the one
    `policy.address` names). `fetch` turns what the learner publishes into the weights (on Ray, an object reference
    the server's wire could not carry)."""

    def __init__(self, server: PolicyServer | RemotePolicy, fetch: Callable[[Any], dict]):
        self.server, self.fetch = server, fetch

    def load(self, published: Any) -> None:
        self.server.load(self.fetch(published))


def run_loop(cfg: RunConfig, run_dir: Path, make_fleet: FleetFactory = LocalFleet,
             on_status: Callable[[dict], None] | None = None,
             on_events: Callable[[list[dict]], None] | None = None,
             devices: dict[int, HumanDevice] | None = None, pump: Callable[[], None] | None = None,
             frames_every_s: float = 0.0, on_progress: Callable[[str], None] | None = None,
             remote_operators: bool = False) -> dict[str, Any]:
    """Runs the loop to its budget and returns the summary recomputed from events.jsonl. on_progress(line) hears each
    start-up step as it begins (demonstrations, pretraining, robots), for a console that would otherwise sit silent.
    remote_operators: operators watch from afar (a browser page): statuses twice as often, and frames only of the
    robots waiting for help or helped."""
    torch.set_num_threads(1)
    task = make_task(cfg.task)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = EventLog(run_dir / "events.jsonl")  # a torn last line (a killed run) is cut off here
    earlier = read_events(log.path)
    incarnation, logged = previous_runs(earlier)
    scalars = ScalarLogger(make_writers(cfg.log.writers, run_dir, cfg.log.wandb_project, to_dict(cfg)), cfg.log.every_s)
    scalars.absorb(earlier)  # a resumed run's numbers go on from where the killed one left them
    log.listeners.append(scalars.add)
    cfg, served = serve_policy(cfg, run_dir, task)
    fleet = make_fleet(cfg, run_dir, task.obs_dim, task.act_dim, incarnation)
    clock = fleet.clock
    if incarnation:  # segments the killed run stored but never reported belong to that run, before this one starts
        log.write(settled(fleet.buffer, BufferRole.unreported, logged))
        lost = settled(fleet.buffer, BufferRole.lost, [e for e in earlier if e["ev"] in LOSS_EVIDENCE])
        for e in lost:  # what a torn or damaged log lost, counted (its log_problem warnings only say where)
            print(f"dagger: warning: {e['what']}", file=sys.stderr)
        log.write(lost)
    kinds = cfg.operator.kinds
    log.write([{"ev": "run_start", "t": clock(), "robots": cfg.robots, "operators": cfg.operators,
                "operator_kinds": [kinds[op % len(kinds)] for op in range(cfg.operators)],
                "task": cfg.task.name, "policy": cfg.policy.type, "gate": cfg.gate.name, "alpha": cfg.gate.alpha,
                "seed": cfg.seed,
                "control_period_ms": 1000 * task.dt / cfg.robot.speed, "resumed": incarnation > 0}])
    first = start_policy(cfg, run_dir, task, fleet, resumed=incarnation > 0, on_progress=on_progress)
    settled(fleet.learner, LearnerRole.publish)
    log.write([first])
    supervisor = Supervisor(cfg, fleet, log, on_events, clock=clock, devices=devices, pump=pump,
                            served=None if served is None else ServedWeights(served, fleet.fetch))
    supervisor.poll()
    for group in fleet.groups:
        group.call(RobotRole.want_frames, frames_every_s, remote_operators)
    if on_progress is not None:
        on_progress(f"starting {cfg.robots} robot{'' if cfg.robots == 1 else 's'}")
    fleet.start()
    local = isinstance(fleet, LocalFleet)
    reason = supervisor.run(fleet.between, on_status, period=0.0 if local else 0.05 if remote_operators else 0.1)
    if reason == "interrupted":  # a second Ctrl-C while shutting down forces the exit
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    supervisor.weights.final_eval(fleet.fetch)
    for result in fleet.stop():
        if "states" in result:
            supervisor.handle(result)
        else:
            supervisor.record(result["events"])
    if served is not None:
        served.close()
    log.write([{"ev": "run_end", "t": clock(), "reason": reason, **({"error": supervisor.failed} if reason == "failed"
                                                                      else {})}])
    try:
        log.close()  # StorageError: the disk filled and even the run's end could not be logged
    finally:
        scalars.close()
    return summarize(read_events(run_dir / "events.jsonl"))
