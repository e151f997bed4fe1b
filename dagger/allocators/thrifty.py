"""Fleet-ThriftyDAgger: 0.25·z(risk) + 0.75·z(novelty), z-scored with running statistics.

A robot whose combined score is at or below `thresh` (or below the running mean, by default) and
that is not violating a constraint is left alone.
"""

from __future__ import annotations

import numpy as np

from dagger.allocators.base import FleetSignals, ranked


class Running:
    """Mean and standard deviation of every value seen (Welford)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        for v in np.asarray(values, float).ravel():
            self.n += 1
            delta = v - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (v - self.mean)

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.n)) if self.n else 0.0


class FleetThriftyAllocator:
    def __init__(self, humans: int, risk_weight: float = 0.25, thresh: float = 0.0, eps: float = 1e-6,
                 seed: int = 0):
        self.humans, self.risk_weight, self.thresh, self.eps = humans, risk_weight, thresh, eps
        self.risk, self.novelty = Running(), Running()
        self.rng = np.random.default_rng(seed)

    def allocate(self, s: FleetSignals) -> list[int]:
        self.risk.add(s.risk)
        self.novelty.add(s.uncertainty)
        z_risk = (s.risk - self.risk.mean) / (self.risk.std + self.eps)
        z_novelty = (s.uncertainty - self.novelty.mean) / (self.novelty.std + self.eps)
        combined = self.risk_weight * z_risk + (1 - self.risk_weight) * z_novelty
        combined = np.where(combined <= self.thresh, 0.0, combined)
        keys = [(float(combined[i]), float(s.constraint[i])) for i in range(len(s))]
        return [i for i in ranked(keys, self.rng) if combined[i] > 0 or s.constraint[i]]
