"""ThriftyDAgger's novelty rule with a threshold tuned to a target intervention rate.

The threshold is the (1 - alpha) quantile of the ensemble spread over recent robot-controlled
states (the prior `threshold` until `min_states` exist). In a fleet the supervisor feeds every
robot's states to one gate and sends its tuned thresholds to all robots.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from dagger.gates.ensemble import EnsembleGate

if TYPE_CHECKING:
    from dagger.gates import GateConfig


class AutoGate(EnsembleGate):
    name = "auto"
    tuned: tuple[str, ...] = ("threshold",)

    def __init__(self, config: GateConfig, seed: int = 0):
        super().__init__(config, seed)
        self.states: deque[tuple[float, float]] = deque(maxlen=config.window)

    def observe(self, states: np.ndarray | list) -> dict[str, float]:
        """Adds robot-controlled states' (spread, safety) rows; returns the tuned thresholds."""
        self.states.extend((float(s), float(q)) for s, q in np.asarray(states, float).reshape(-1, 2))
        if len(self.states) >= self.config.min_states:
            self.retune(np.array(self.states))
        return {name: getattr(self, name) for name in self.tuned}

    def retune(self, states: np.ndarray) -> None:
        self.threshold = float(np.quantile(states[:, 0], 1.0 - self.config.alpha))
