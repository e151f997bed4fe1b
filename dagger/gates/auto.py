"""ThriftyDAgger's novelty rule with a threshold tuned to a target intervention rate.

The threshold is the (1 - alpha) quantile of the ensemble spread over recent robot-controlled
states (the prior `threshold` until `min_states` exist). In a fleet the supervisor feeds every
robot's states to one AutoGate and sends its threshold to all robots.
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

    def __init__(self, config: GateConfig, seed: int = 0):
        super().__init__(config, seed)
        self.spreads: deque[float] = deque(maxlen=config.window)

    def observe(self, spreads: np.ndarray | list[float]) -> float:
        """Adds robot-controlled states' spreads; returns the updated threshold."""
        self.spreads.extend(float(s) for s in spreads)
        if len(self.spreads) >= self.config.min_states:
            self.threshold = float(np.quantile(np.fromiter(self.spreads, float), 1.0 - self.config.alpha))
        return self.threshold
