"""StepBudget: a run's `--steps` shared among its robots, so that together they take exactly that many.

Each robot steps up to its allowance (a count of its own steps) and then holds; the supervisor raises allowances from
what is left, a second's worth of steps ahead. When nothing is left and a robot that could step has run dry, robots
that cannot step (waiting for help, held) give back what they have not used. Allowances may reach a robot late or out
of order (Ray runs an actor's calls on several threads): each carries a sequence number, and until a robot's status
confirms the newest one, the budget counts the highest it has sent that robot, so the robots' allowances never add up
to more than the budget. A replaced robot's steps stay counted; its replacement starts with none allowed.

    budget = StepBudget(3000, robots=4, lead=320)
    budget.seen(robot, steps=..., allowed=..., seq=...)     # from each robot's status
    for robot, allowed, seq in budget.grants(stepping={0, 2, 3}): robots[robot].call(RobotRole.allow, allowed, seq)
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Share:
    """One robot's part: its earlier incarnations' steps, its steps now, and the allowances sent to it."""

    base: int = 0  # steps its earlier incarnations took
    steps: int = 0  # steps this incarnation has taken, as last seen
    sent: int = 0  # the newest allowance sent
    seq: int = 0  # that allowance's sequence number
    bound: int = 0  # the most this incarnation may have been allowed: what the budget counts for it

    @property
    def unused(self) -> int:
        return self.bound - self.steps


class StepBudget:
    def __init__(self, total: int, robots: int, lead: int):
        self.total, self.lead = total, max(1, lead)
        self.shares = [Share() for _ in range(robots)]

    @property
    def taken(self) -> int:
        """Steps the fleet has taken, as last seen (replaced robots' included)."""
        return sum(s.base + s.steps for s in self.shares)

    @property
    def left(self) -> int:
        """Steps no robot has been allowed yet."""
        return self.total - sum(s.base + s.bound for s in self.shares)

    def seen(self, robot: int, steps: int, allowed: int, seq: int) -> None:
        """A robot's status: its steps, and the allowance it runs under with that allowance's sequence number."""
        share = self.shares[robot]
        share.steps = steps
        if seq == share.seq:  # it runs under the newest allowance sent: what it may take is known exactly
            share.bound = max(allowed, steps)

    def replaced(self, robot: int) -> None:
        """The robot's actor was replaced: its steps so far stay counted; the new one starts with none allowed."""
        share = self.shares[robot]
        self.shares[robot] = Share(base=share.base + share.steps)

    def grants(self, stepping: set[int]) -> list[tuple[int, int, int]]:
        """(robot, allowance, sequence number) to send: raises for robots that can step, a second's worth of steps
        ahead (less near the end, shared evenly); give-backs from robots that cannot, when nothing is left and a
        robot that can step has run dry."""
        messages = []
        dry = any(self.shares[r].unused <= 0 for r in stepping)
        if self.left <= 0 and dry:
            for robot, share in enumerate(self.shares):
                if robot not in stepping and share.unused > 0 and share.sent > share.steps:
                    messages.append(self.send(robot, share.steps))
        left, remaining = self.left, self.total - self.taken
        ahead = min(self.lead, math.ceil(remaining / max(1, len(stepping))))
        for robot in sorted(stepping, key=lambda r: self.shares[r].unused):
            share = self.shares[robot]
            give = min(left, share.steps + ahead - share.bound)
            if give > 0 and share.unused < ahead / 2:  # topped up when half spent: few messages
                messages.append(self.send(robot, share.bound + give))
                left -= give
        return messages

    def send(self, robot: int, allowed: int) -> tuple[int, int, int]:
        share = self.shares[robot]
        share.seq += 1
        share.sent, share.bound = allowed, max(share.bound, allowed)
        return robot, allowed, share.seq
