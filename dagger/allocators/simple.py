"""Baselines: random order with a human-time budget, and first come first served."""

from __future__ import annotations

import numpy as np

from dagger.allocators.base import FleetSignals


class RandomAllocator:
    """Random order; the number of busy operators is drawn to spend `budget` (a fraction of operator
    time) in expectation. Robots already being helped stay first, as in the IFL benchmark."""

    def __init__(self, humans: int, budget: float = 0.5, std: float = 0.1, seed: int = 0):
        self.humans, self.budget, self.std = humans, budget, std
        self.rng = np.random.default_rng(seed)

    def allocate(self, s: FleetSignals) -> list[int]:
        order = [int(i) for i in self.rng.permutation(len(s))]
        helped = [i for i in order if s.helped[i]]
        order = helped + [i for i in order if not s.helped[i]]
        busy = round(self.rng.normal(self.budget * self.humans, self.std * self.humans))
        return order[: min(max(0, busy), self.humans)]


class FifoAllocator:
    """Robots that asked for help, longest waiting first."""

    def __init__(self, humans: int, seed: int = 0):
        self.humans = humans

    def allocate(self, s: FleetSignals) -> list[int]:
        waiting = np.flatnonzero(s.waiting_s > 0)
        return [int(i) for i in waiting[np.argsort(-s.waiting_s[waiting], kind="stable")]]
