"""Fleet-ThriftyDAgger: 0.25·z(td_risk) + 0.75·z(novelty), z-scored with running statistics; td_risk is
1 − the goal critic's value, ThriftyDAgger's risk.

A robot whose combined score is at or below `thresh` (or below the running mean, by default) and
that is not violating a constraint is left alone.
"""

from __future__ import annotations

import numpy as np

from buffers.storage import Moments
from dagger.allocators.base import FleetSignals, ranked


class FleetThriftyAllocator:
    def __init__(self, humans: int, risk_weight: float = 0.25, thresh: float = 0.0, eps: float = 1e-6,
                 seed: int = 0):
        self.humans, self.risk_weight, self.thresh, self.eps = humans, risk_weight, thresh, eps
        self.risk, self.novelty = Moments(1), Moments(1)  # every value seen
        self.rng = np.random.default_rng(seed)

    def allocate(self, s: FleetSignals) -> list[int]:
        z_risk, z_novelty = self.z(self.risk, s.td_risk), self.z(self.novelty, s.uncertainty)
        combined = self.risk_weight * z_risk + (1 - self.risk_weight) * z_novelty
        combined = np.where(combined <= self.thresh, 0.0, combined)
        keys = [(float(combined[i]), float(s.constraint[i])) for i in range(len(s))]
        return [i for i in ranked(keys, self.rng) if combined[i] > 0 or s.constraint[i]]

    def z(self, moments: Moments, values: np.ndarray) -> np.ndarray:
        moments.update(np.asarray(values, float)[:, None])
        mean, std = moments.mean_std(0.0)
        return (values - mean[0]) / (std[0] + self.eps)
