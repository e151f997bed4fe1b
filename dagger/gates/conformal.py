"""Conformal calibration of a gate's score: a threshold with a stated false-alarm rate on steps where the policy
succeeds (FIPER and FAIL-Detect calibrate on successful rollouts only).

From the scores of the n steps of successful rollouts of the current policy, the split-conformal threshold is the
⌈(n + 1)(1 − α)⌉-th smallest (infinite when that exceeds n): a step of a new successful rollout, exchangeable with
them, scores above it with probability at most α. The evaluator computes it for each version it scores
(`calibration` event) and the supervisor sends it to the robots; until the first one the gate asks on
`gate.threshold` (score "spread") or only at overtime (other scores, whose units have no prior).

    cfg.gate.calibrate, cfg.gate.false_alarm, cfg.gate.score = "conformal", 0.05, "entropy"
    gate = make_gate(cfg.gate)                           # a ConformalGate
    gate.threshold = conformal_threshold(success_step_scores, 0.05)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from dagger.core import Policy, PolicyOutput, Task
from dagger.evaluation import Outcome, run_episode
from dagger.gates.base import BaseGate
from dagger.gates.scores import Scorer

if TYPE_CHECKING:
    from dagger.gates import GateConfig


def conformal_threshold(scores: Sequence[float] | np.ndarray, alpha: float) -> float:
    """The ⌈(n + 1)(1 − alpha)⌉-th smallest of n calibration scores; inf when n is too small for alpha."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"false-alarm rate must be in (0, 1); got {alpha}")
    ordered = np.sort(np.asarray(scores, float))
    rank = math.ceil((len(ordered) + 1) * (1.0 - alpha))
    return float(ordered[rank - 1]) if rank <= len(ordered) else math.inf


class ConformalGate(BaseGate):
    """Asks when the chosen score is above the threshold the evaluator calibrated for the latest version."""

    name = "conformal"
    tuned: tuple[str, ...] = ("threshold",)

    def __init__(self, config: GateConfig, seed: int = 0):
        super().__init__(config, seed)
        self.scorer = Scorer(config.score)
        self.threshold = config.threshold if config.score == "spread" else math.inf
        self.score = 0.0  # the newest step's score

    def new_episode(self) -> None:
        self.scorer.reset()

    def should_request_help(self, out: PolicyOutput, expert: np.ndarray | None = None) -> bool:
        self.score = self.scorer(out)
        return self.score > self.threshold

    def should_hand_back(self, human_action: np.ndarray, out: PolicyOutput) -> bool:
        self.scorer.reset()  # an operator drives: the policy's last own step is no longer the previous one
        return super().should_hand_back(human_action, out)


class Rollout(NamedTuple):
    """One episode of the policy alone with its score at every step."""

    outcome: Outcome
    scores: np.ndarray


def rollouts(policy: Policy, task: Task, seeds: Sequence[int], score: str) -> list[Rollout]:
    """The policy alone for one episode per seed, scoring every step with a fresh Scorer per episode."""
    done: list[Rollout] = []
    for seed in seeds:
        scorer, steps = Scorer(score), []
        outcome = run_episode(policy, task, seed, on_act=lambda out: steps.append(scorer(out)))  # noqa: B023
        done.append(Rollout(outcome, np.asarray(steps, float)))
    return done


def calibrate(runs: Sequence[Rollout], alpha: float) -> dict:
    """The threshold from every step of the successful rollouts, with the counts it rests on."""
    wins = [r.scores for r in runs if r.outcome.success]
    steps = np.concatenate(wins) if wins else np.zeros(0)
    return {"threshold": conformal_threshold(steps, alpha), "calibration_episodes": len(wins),
            "calibration_steps": int(len(steps))}


def measure(runs: Sequence[Rollout], threshold: float, dt: float) -> dict:
    """How a threshold does on held-out rollouts: the share of successful episodes' steps above it (false alarms),
    the share of failing episodes with a step above it (detected), and how long before the episode's end (where a
    failure is declared) the first alarm came, mean over detected failures, in steps and task seconds. NaN where
    there is nothing to measure."""
    wins = [r.scores for r in runs if r.outcome.success]
    fails = [r.scores for r in runs if not r.outcome.success]
    steps = np.concatenate(wins) if wins else np.zeros(0)
    leads = [len(s) - int(np.argmax(s > threshold)) for s in fails if (s > threshold).any()]
    nan = float("nan")
    return {"false_alarm": float((steps > threshold).mean()) if len(steps) else nan, "success_steps": int(len(steps)),
            "failures": len(fails), "detected": len(leads) / len(fails) if fails else nan,
            "lead_steps": float(np.mean(leads)) if leads else nan,
            "lead_s": float(np.mean(leads)) * dt if leads else nan}


def calibration_event(runs: Sequence[Rollout], alpha: float, share: float, dt: float) -> dict:
    """The fields of a `calibration` event: the threshold from the successes of the first `share` of the rollouts
    (null when too few steps for alpha: the gate keeps its threshold), measured on the rest (null: nothing to
    measure)."""
    split = max(1, round(share * len(runs)))
    fit = calibrate(runs[:split], alpha)
    measured = measure(runs[split:], fit["threshold"], dt)
    shown = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in {**fit, **measured}.items()}
    return {**shown, "alpha": alpha, "held_out": len(runs) - split}
