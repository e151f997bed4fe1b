"""A control: ask for help at random with a fixed probability per step."""

import numpy as np

from dagger.core import PolicyOutput
from dagger.gates.base import BaseGate


class RandomGate(BaseGate):
    name = "random"

    def should_request_help(self, out: PolicyOutput, expert: np.ndarray | None = None) -> bool:
        return bool(self.rng.random() < self.config.rate)
