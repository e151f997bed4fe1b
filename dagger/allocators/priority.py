"""The live loop's default: robots that asked for help by urgency (the gate's score over its threshold),
plus one unit per `aging_s` seconds waited so a robot just over the threshold is not starved; ties go to
the longest waiting."""

from __future__ import annotations

import numpy as np

from dagger.allocators.base import FleetSignals


class PriorityAllocator:
    def __init__(self, humans: int, aging_s: float = 2.0, seed: int = 0):
        self.humans, self.aging_s = humans, aging_s

    def priority(self, s: FleetSignals) -> np.ndarray:
        return s.urgency + (s.waiting_s / self.aging_s if self.aging_s > 0 else 0.0)

    def allocate(self, s: FleetSignals) -> list[int]:
        asking = np.flatnonzero((s.urgency > 0) | (s.waiting_s > 0))
        priority = self.priority(s)
        return sorted((int(i) for i in asking), key=lambda i: (-priority[i], -s.waiting_s[i], i))
