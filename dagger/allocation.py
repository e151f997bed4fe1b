"""Allocation: which waiting robot an operator serves next.

    order = PriorityAllocator().order(requests, now)   # highest gate score first, then longest wait
"""

from __future__ import annotations

from dagger.core import HelpRequest


class PriorityAllocator:
    """A priority queue: gate score (higher first), then waiting time (longer first).

    With aging_s > 0 a waiting robot's priority grows by 1 every aging_s seconds, so a robot just
    over the threshold is not starved by robots that keep asking with higher scores.
    """

    def __init__(self, aging_s: float = 0.0):
        self.aging_s = aging_s

    def priority(self, request: HelpRequest, now: float) -> float:
        waited = now - request.t_requested
        return request.score + (waited / self.aging_s if self.aging_s > 0 else 0.0)

    def order(self, requests: list[HelpRequest], now: float) -> list[int]:
        ranked = sorted(requests, key=lambda r: (-self.priority(r, now), r.t_requested, r.robot))
        return [r.robot for r in ranked]


class FifoAllocator:
    """First come, first served."""

    def order(self, requests: list[HelpRequest], now: float) -> list[int]:
        return [r.robot for r in sorted(requests, key=lambda r: (r.t_requested, r.robot))]
