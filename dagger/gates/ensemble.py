"""EnsembleDAgger-like: ask when the ensemble's spread is over a fixed threshold."""

import numpy as np

from dagger.core import PolicyOutput
from dagger.gates.base import BaseGate


class EnsembleGate(BaseGate):
    name = "ensemble"

    def should_request_help(self, out: PolicyOutput, expert: np.ndarray | None = None) -> bool:
        return out.spread > self.threshold
