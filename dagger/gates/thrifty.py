"""ThriftyDAgger (Hoque et al., CoRL 2021): ask on novelty OR risk; hand back when the human's action
is close to the policy's and the state is safe.

Novelty: ensemble spread above its (1 − α) quantile over robot-controlled states. Risk: the goal
critic's safety min(q1, q2)(s, π(s)) below its α quantile over those states (prior 0.48). Hand back
when ‖π(s) − a_human‖² is below the mean training discrepancy and safety is above its median
(prior 0.495). With both rules, the request rate is between α and 2α.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dagger.core import PolicyOutput
from dagger.gates.auto import AutoGate

if TYPE_CHECKING:
    from dagger.gates import GateConfig


class ThriftyGate(AutoGate):
    name = "thrifty"
    needs = ("critic",)
    tuned = ("threshold", "risk_threshold", "back_safety")

    def __init__(self, config: GateConfig, seed: int = 0):
        super().__init__(config, seed)
        self.risk_threshold, self.back_safety = config.risk_threshold, config.back_safety

    def retune(self, states: np.ndarray) -> None:
        super().retune(states)
        self.risk_threshold = float(np.quantile(states[:, 1], self.config.alpha))
        self.back_safety = float(np.median(states[:, 1]))

    def should_request_help(self, out: PolicyOutput, expert: np.ndarray | None = None) -> bool:
        return out.spread > self.threshold or out.safety < self.risk_threshold

    def should_hand_back(self, human_action: np.ndarray, out: PolicyOutput) -> bool:
        gap = float(np.sum((out.action - np.asarray(human_action)) ** 2))
        return gap < out.train_gap and out.safety > self.back_safety
