"""Shared autonomy: the operator's input as a bounded residual on the policy's action while the policy keeps acting
(Compliant Residual DAgger's delta corrections), instead of a takeover that stops it.

The operator link's command (teleop_devices.remote under every safety rule, or the scripted operator) is read as a
push: a device's reading (gamepad stick, SpaceMouse, keys, a browser page's devices) is the residual itself, in the
task's action units; a scripted operator's action is where it wants the robot, so its residual is that minus the
policy's action. The residual is clipped to `bound` per action dim and ramped in over `ramp_s`; a push held beyond the
bound (on any dim) for `to_takeover_s` becomes a takeover, ramped from the last executed action to the operator's.
A leader arm gives poses, not pushes: it always takes over.

    nudge = Nudge(bound=0.3 * half_range(task.clip, task.act_dim), ramp_s=0.2, to_takeover_s=0.5, relative=False)
    action = nudge.action(command, policy_action, last_action, now)   # policy + residual, or the takeover's action
    if nudge.escalated: ...                                             # the push became a takeover this period
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from teleop_devices.reading import Command

FAR = 1e9  # an action beyond any task's range: its clip is the range's end


def half_range(clip: Callable[[np.ndarray], np.ndarray], act_dim: int) -> np.ndarray:
    """Per action dim, (high - low) / 2, as the task's clip of a very large and a very small action says."""
    return (np.asarray(clip(np.full(act_dim, FAR)), float) - np.asarray(clip(np.full(act_dim, -FAR)), float)) / 2


class Nudge:
    def __init__(self, bound: np.ndarray, ramp_s: float, to_takeover_s: float, relative: bool):
        """bound: the residual's largest magnitude per action dim; relative: the operator's action is a target (a
        scripted expert's), its residual the gap to the policy's action."""
        self.bound, self.ramp_s, self.to_takeover_s = np.asarray(bound, float), ramp_s, to_takeover_s
        self.relative = relative
        self.started: float | None = None  # when the first residual applied (its ramp starts)
        self.pinned_since: float | None = None  # since when the push is beyond the bound
        self.taken_over: float | None = None  # when the push became a takeover
        self.ramp_from = np.zeros_like(self.bound)
        self.escalated = False  # the push became a takeover in the latest period
        self.residual = np.zeros_like(self.bound)  # the latest applied residual

    def ramp(self, since: float, now: float) -> float:
        return 1.0 if self.ramp_s <= 0 else min(1.0, (now - since) / self.ramp_s)

    def action(self, command: Command, policy_action: np.ndarray, last_action: np.ndarray, now: float) -> np.ndarray:
        """This period's action: the policy's plus the clipped, ramped residual; once the push has been beyond the
        bound for to_takeover_s, the operator's own action, ramped from the last executed one."""
        assert command.label is not None and command.action is not None
        self.escalated = False
        policy_action = np.asarray(policy_action, float)
        if self.taken_over is None:
            push = command.label - policy_action if self.relative else np.asarray(command.label, float)
            pinned = bool((np.abs(push) > self.bound).any())
            self.pinned_since = (self.pinned_since if self.pinned_since is not None else now) if pinned else None
            if self.pinned_since is None or now - self.pinned_since < self.to_takeover_s:
                self.started = now if self.started is None else self.started
                self.residual = self.ramp(self.started, now) * np.clip(push, -self.bound, self.bound)
                return policy_action + self.residual
            self.taken_over, self.escalated = now, True
            self.ramp_from, self.residual = np.asarray(last_action, float), np.zeros_like(self.bound)
        alpha = self.ramp(self.taken_over, now)
        return self.ramp_from + alpha * (np.asarray(command.label, float) - self.ramp_from)
