"""ThriftyDAgger's novelty rule with a threshold tuned to a target intervention rate.

The threshold is the (1 - level) quantile of the ensemble spread over recent robot-controlled
states (the prior `threshold` until `min_states` exist). In a fleet the supervisor feeds every
robot's states to one gate and sends its tuned thresholds to all robots.

While the policy learns its spread falls, and a quantile over past states lags above the present ones: the rate
achieved fell to 0.7 α. So the level starts at alpha and is corrected by the rate achieved, adaptive conformal
inference's update (Gibbs & Candès 2021): level += gate.adapt · (alpha − asked) for every state, where asked says
the state's spread was above the threshold then in force (gate.adapt = 0: the plain quantile). A batch of n states
moves it by min(GAIN_MAX, n · adapt) times its mean gap: with the level near the rate it achieves, a gain above 1
would overshoot.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from dagger.gates.ensemble import EnsembleGate

if TYPE_CHECKING:
    from dagger.gates import GateConfig

GAIN_MAX = 0.5


class AutoGate(EnsembleGate):
    name = "auto"
    tuned: tuple[str, ...] = ("threshold",)

    def __init__(self, config: GateConfig, seed: int = 0):
        super().__init__(config, seed)
        self.states: deque[tuple[float, float]] = deque(maxlen=config.window)
        self.level = config.alpha  # the novelty quantile's level, corrected by the rate achieved

    def observe(self, states: np.ndarray | list) -> dict[str, float]:
        """Adds robot-controlled states' (spread, safety) rows; returns the tuned thresholds."""
        rows = np.asarray(states, float).reshape(-1, 2)
        if len(self.states) >= self.config.min_states:  # the threshold in force is a tuned one
            gain = min(GAIN_MAX, self.config.adapt * len(rows))  # a big batch moves it no further than is stable
            asked = float(np.mean(rows[:, 0] > self.threshold)) if len(rows) else self.config.alpha
            self.level = min(1.0, max(0.0, self.level + gain * (self.config.alpha - asked)))
        self.states.extend((float(s), float(q)) for s, q in rows)
        if len(self.states) >= self.config.min_states:
            self.retune(np.array(self.states))
        return {name: getattr(self, name) for name in self.tuned}

    def retune(self, states: np.ndarray) -> None:
        self.threshold = float(np.quantile(states[:, 0], 1.0 - self.level))
