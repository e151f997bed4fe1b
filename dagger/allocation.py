"""Allocation: which waiting robot an operator serves next.

    order = PriorityAllocator().order(requests, now)   # highest gate score first, then longest wait
"""

from __future__ import annotations

from dagger.core import HelpRequest


class PriorityAllocator:
    """A priority queue: gate score (higher first), then waiting time (longer first)."""

    def order(self, requests: list[HelpRequest], now: float) -> list[int]:
        ranked = sorted(requests, key=lambda r: (-r.score, r.t_requested, r.robot))
        return [r.robot for r in ranked]


class FifoAllocator:
    """First come, first served."""

    def order(self, requests: list[HelpRequest], now: float) -> list[int]:
        return [r.robot for r in sorted(requests, key=lambda r: (r.t_requested, r.robot))]
