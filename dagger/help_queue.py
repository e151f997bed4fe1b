"""The help queue: robots that asked for an operator, what each operator serves, and who gets whom next.

It knows robots and operators by number only; the supervisor feeds it the robots' events and statuses and carries
out the assignments it returns (tells the robot, the operator station, the event log).

    queue = HelpQueue.for_run(cfg, robots=4, now=clock(), remote={0})      # operator 0 drives through a device
    queue.asked(event)                                     # a robot's help_requested event
    queue.released(event)                                  # a handback / assign_refused: the operator is free again
    for given in queue.allocate(now, statuses, steps):     # waiting robots to free operators, in priority order
        groups[group_of[given.robot]].call(RobotRole.assign, given)
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from dagger.allocators import FleetAllocator, FleetSignals, make_allocator
from dagger.config import RunConfig
from dagger.core import HelpRequest
from teleop_devices.scripted import Fatigue, OperatorConfig

RELEASES = ("handback", "assign_refused")
"""the robots' events that free an operator"""
DECLINED = ("skipped", "not_claimed")
"""handback reasons by which an operator turned an offered robot down: not offered that robot again next"""


@dataclass(frozen=True)
class Assignment:
    """One waiting robot given to one operator."""

    robot: int
    operator: int
    remote: bool
    """the operator drives through a device at the station (else a scripted operator runs on the robot)"""
    strain: float
    """the operator's fatigue factor now (1: rested): a scripted operator's noise and reaction time scale with it"""
    switching: bool
    """the operator comes from another robot (a context switch)"""
    queued_s: float
    """how long the robot waited for it"""


class HelpQueue:
    def __init__(self, operators: int, traits: OperatorConfig, allocator: FleetAllocator, robots: int, now: float,
                 remote: Collection[int] = ()):
        self.traits, self.allocator, self.robots = traits, allocator, robots
        self.remote = frozenset(remote)  # operators with a device at the station
        self.waiting: dict[int, HelpRequest] = {}
        self.unserved: list[int] = []  # waiting robots still unassigned after the last allocation, in its order
        self.serving: dict[int, set[int]] = {op: set() for op in range(operators)}
        self.fatigue = Fatigue(traits, operators, now)
        self.last_robot: dict[int, int] = {}  # operator -> the robot it served last
        self.skipped: dict[int, int] = {}  # operator -> the robot it declined last (not offered again next)

    @classmethod
    def for_run(cls, cfg: RunConfig, robots: int, now: float, remote: Collection[int] = ()) -> HelpQueue:
        """The queue a run's settings describe: its operators, their traits, its allocator."""
        allocator = make_allocator(cfg.allocator, cfg.operators, cfg.seed,
                                   **({"aging_s": cfg.aging_s} if cfg.allocator == "priority" else {}))
        return cls(cfg.operators, cfg.operator, allocator, robots, now, remote)

    def asked(self, event: dict[str, Any]) -> None:
        """A robot's help_requested event: it waits, its urgency the gate's score over its threshold."""
        urgency = event["score"] / event["threshold"] if event["threshold"] > 0 else event["score"]
        self.waiting[event["robot"]] = HelpRequest(event["robot"], event["t"], urgency, event["reason"])

    def released(self, event: dict[str, Any]) -> bool:
        """A robot's handback or assign_refused event: its operator serves it no more (and, serving nobody, rests
        from the event's time). False when the event names no operator of ours (e.g. from a robot replaced
        mid-handover)."""
        op, robot = event["operator"], event.get("robot", -1)
        if op not in self.serving:
            return False
        self.serving[op].discard(robot)
        if not self.serving[op]:
            self.fatigue.free(op, event["t"])
        if event.get("reason") in DECLINED:
            self.skipped[op] = robot
        return True

    def lost(self, robot: int) -> None:
        """A robot that stopped answering: its place in the queue and its operator are freed."""
        self.waiting.pop(robot, None)
        for served in self.serving.values():
            served.discard(robot)

    def allocate(self, now: float, statuses: list[dict[str, Any]], step: int,
                 away: Collection[int] = ()) -> list[Assignment]:
        """Gives waiting robots, in the allocator's order, to operators with attention to spare (none whose device is
        `away`); an operator is not offered the robot it declined last. statuses: every robot's latest status (the
        allocator's signals); step: the fleet's steps."""
        attention = self.traits.attention
        free = [op for op, robots in self.serving.items() if len(robots) < attention and op not in away]
        order = self.queue(now, statuses, step)  # once per round: allocators may keep state (running z-scores, rng)
        given = []
        for robot in order:
            op = next((o for o in free if self.skipped.get(o) != robot), None)
            if op is None:
                continue
            self.skipped.pop(op, None)
            self.serving[op].add(robot)
            if len(self.serving[op]) >= attention:
                free.remove(op)
            request = self.waiting.pop(robot)
            strain, switching = self.strain(op, now), self.last_robot.get(op, robot) != robot
            self.last_robot[op] = robot
            given.append(Assignment(robot, op, op in self.remote, strain, switching, now - request.t_requested))
        self.unserved = [r for r in order if r in self.waiting]
        return given

    def queue(self, now: float, statuses: list[dict[str, Any]], step: int) -> list[int]:
        """Waiting robots in the allocator's order; those it leaves out follow, longest waiting first, since a
        robot that asked holds still until someone serves it."""
        ranked = [r for r in self.allocator.allocate(self.signals(now, statuses, step)) if r in self.waiting]
        rest = sorted(set(self.waiting) - set(ranked), key=lambda r: (self.waiting[r].t_requested, r))
        return ranked + rest

    def signals(self, now: float, statuses: list[dict[str, Any]], step: int) -> FleetSignals:
        """Every robot's latest signals, as the fleet allocators read them."""
        waiting = [self.waiting.get(r) for r in range(self.robots)]
        served = set().union(*self.serving.values())
        return FleetSignals(
            uncertainty=np.array([s.get("uncertainty", 0.0) for s in statuses]),
            risk=np.array([s.get("risk", 0.0) for s in statuses]),  # the hazard critic's (trained: READS_RISK)
            td_risk=1.0 - np.array([s.get("safety", 1.0) for s in statuses]),
            constraint=np.array([bool(s.get("constraint", False)) for s in statuses]),
            waiting_s=np.array([0.0 if w is None else now - w.t_requested for w in waiting]),
            helped=np.array([r in served for r in range(self.robots)]), step=step,
            urgency=np.array([0.0 if w is None else w.score for w in waiting]))

    def strain(self, op: int, now: float) -> float:
        """The operator's fatigue factor, assigned now: grows with continuous work, resets after a rest."""
        return float(self.fatigue.assign(op, now))

    def queue_status(self, now: float) -> list[dict[str, Any]]:
        """The robots still waiting after the last allocation, in its order (the dashboard's and console's queue)."""
        return [{"robot": r, "reason": self.waiting[r].reason, "urgency": self.waiting[r].score,
                 "waiting_s": now - self.waiting[r].t_requested} for r in self.unserved if r in self.waiting]

    def serving_status(self) -> dict[int, list[int]]:
        """operator -> the robots it serves."""
        return {op: sorted(robots) for op, robots in self.serving.items()}
