"""EnsembleDAgger (Menda et al., IROS 2019): the novice acts only while the ensemble's spread is below
χ (`threshold`) AND its action is within τ (`tau`, mean squared gap) of the expert's. It needs an
expert action every step, so it suits scripted experts."""

from __future__ import annotations

import numpy as np

from dagger.core import PolicyOutput
from dagger.gates.base import BaseGate


class EnsembleDAggerGate(BaseGate):
    name = "ensembledagger"
    needs_expert = True

    def should_request_help(self, out: PolicyOutput, expert: np.ndarray | None = None) -> bool:
        if expert is None:
            raise ValueError("ensembledagger gate: needs the expert's action each step (a scripted expert)")
        return out.spread > self.threshold or float(np.mean((out.action - expert) ** 2)) > self.config.tau
