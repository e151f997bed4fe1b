"""LazyDAgger (Hoque et al., CASE 2021): SafeDAgger's classifier to ask, with hysteresis to hand back —
control returns only once the policy's action is within tau_auto · tau_sup of the operator's, so
interventions are fewer and longer."""

import numpy as np

from dagger.core import PolicyOutput
from dagger.gates.safe import SafeDAggerGate, discrepancy


class LazyDAggerGate(SafeDAggerGate):
    name = "lazy"

    def should_hand_back(self, human_action: np.ndarray, out: PolicyOutput) -> bool:
        return float(discrepancy(out.action, np.asarray(human_action))) < self.config.tau_auto * self.config.tau_sup
