"""SafeDAgger (Zhang & Cho, AAAI 2017): a classifier predicts from the state whether the policy's
action is within tau_sup of the human's; the robot asks when it says no, and gets control back when
it says yes.

The discrepancy is the mean squared action gap over the action range squared (the tasks' boxes are
[-1, 1]): `discrepancy(a, b) < tau_sup` is LazyDAgger's ‖a − b‖² < tau_sup · ‖action range‖².
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from dagger.core import PolicyOutput
from dagger.gates.base import BaseGate

ACTION_RANGE = 2.0
Array = TypeVar("Array")


def discrepancy(a: Array, b: Array) -> Array:
    """Mean over the last axis of (a − b)², over ACTION_RANGE²; numpy arrays or torch tensors."""
    return ((a - b) ** 2).mean(-1) / ACTION_RANGE**2  # type: ignore[operator]


class SafeDAggerGate(BaseGate):
    name = "safe"
    needs = ("classifier",)

    def should_request_help(self, out: PolicyOutput, expert: np.ndarray | None = None) -> bool:
        return out.p_safe < 0.5

    def should_hand_back(self, human_action: np.ndarray, out: PolicyOutput) -> bool:
        return out.p_safe >= 0.5
