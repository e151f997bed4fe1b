"""C.U.R. (Fleet-DAgger): constraint violation, then uncertainty, then risk.

Uncertainty below `uncertainty_thresh` and risk below `risk_thresh` count as 0; during the first
`warmup_steps` a violation counts as -1 (the policy is expected to violate early: do not chase it);
violators beyond `cv_thresh × humans` count 0. A robot whose factors are all 0 is left alone, so
operators may idle. `order` picks and orders the factors ("CUR", or "UC" for Fleet-EnsembleDAgger).
"""

from __future__ import annotations

import numpy as np

from dagger.allocators.base import FleetSignals, ranked


class CURAllocator:
    def __init__(self, humans: int, order: str = "CUR", uncertainty_thresh: float = 0.05, risk_thresh: float = 0.5,
                 cv_thresh: float = 1.0, warmup_steps: int = 0, seed: int = 0):
        if not order or set(order) - set("CUR"):
            raise ValueError(f"cur: order must be letters from 'CUR', got {order!r}")
        self.humans, self.order = humans, order
        self.uncertainty_thresh, self.risk_thresh = uncertainty_thresh, risk_thresh
        self.cv_thresh, self.warmup_steps = cv_thresh, warmup_steps
        self.rng = np.random.default_rng(seed)

    def factors(self, s: FleetSignals) -> dict[str, np.ndarray]:
        cv = np.zeros(len(s))
        violators = np.flatnonzero(s.constraint)
        if s.step < self.warmup_steps:
            cv[violators] = -1.0
        else:
            cv[violators[: int(self.cv_thresh * self.humans)]] = 1.0
        u = np.where(s.uncertainty < self.uncertainty_thresh, 0.0, s.uncertainty)
        r = np.where(s.risk < self.risk_thresh, 0.0, s.risk)
        return {"C": cv, "U": u, "R": r}

    def allocate(self, s: FleetSignals) -> list[int]:
        f = self.factors(s)
        keys = [tuple(float(f[letter][i]) for letter in self.order) for i in range(len(s))]
        needs = {i for i in range(len(s)) if any(f[letter][i] > 0 for letter in self.order)}
        return [i for i in ranked(keys, self.rng) if i in needs]


class FleetEnsembleAllocator(CURAllocator):
    """Fleet-EnsembleDAgger: uncertainty first, then constraint violation."""

    def __init__(self, humans: int, seed: int = 0, **kwargs: float):
        super().__init__(humans, order="UC", seed=seed, **kwargs)  # type: ignore[arg-type]
