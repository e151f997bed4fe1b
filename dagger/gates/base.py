"""The hand-back rule shared by every gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dagger.core import PolicyOutput

if TYPE_CHECKING:
    from dagger.gates import GateConfig


class BaseGate:
    """Hands back once the policy has agreed with the operator for `agree_steps` steps in a row."""

    name = "base"
    needs_expert = False
    robot_gated = True  # the robot asks for help (never, human: it does not)
    needs: tuple[str, ...] = ()  # what the learner must train besides the ensemble: "critic", "classifier"
    tuned: tuple[str, ...] = ()  # thresholds the supervisor tunes fleet-wide from robots' states (AutoGate.observe)
    human_gated = False  # an operator watches the robot and decides when to step in (HG-DAgger)

    def __init__(self, config: GateConfig, seed: int = 0):
        self.config = config
        self.threshold = config.threshold
        self.rng = np.random.default_rng(seed)
        self.agreed = 0

    def should_request_help(self, out: PolicyOutput, expert: np.ndarray | None = None) -> bool:
        return False

    def new_episode(self) -> None:
        """The robot starts an episode (a gate that remembers earlier steps forgets them)."""

    def overtime(self, step: int, horizon: int) -> bool:
        """Time is running out: `step` of an episode has passed gate.overtime of its `horizon` (0: unknown)."""
        return self.robot_gated and self.config.overtime > 0 and horizon > 0 and step >= self.config.overtime * horizon

    def should_hand_back(self, human_action: np.ndarray, out: PolicyOutput) -> bool:
        if self.config.agree_steps <= 0:
            return False
        gap = float(np.mean((np.asarray(human_action) - out.action) ** 2))
        self.agreed = self.agreed + 1 if gap < self.config.agree_tol else 0
        if self.agreed >= self.config.agree_steps:
            self.agreed = 0
            return True
        return False
