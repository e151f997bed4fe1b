"""How well a policy's uncertainty predicts its mistakes, which is what decides whether a gate can use it: the area
under the ROC curve of its spread for "this action is far from the expert's" over the states it visits alone, and of
an episode's mean spread for "this episode fails".

    quality = uncertainty_quality(policy, task, eval_seeds(50), tau=0.008)
    quality["step_auroc"], quality["episode_auroc"]        # 0.5: no better than chance; 1: a perfect ranking
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dagger.core import Policy, PolicyOutput, Task
from dagger.evaluation import run_episode
from dagger.gates.safe import discrepancy


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counted half (the Mann–Whitney U statistic over
    positives × negatives); NaN unless both classes occur."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    _, where, counts = np.unique(scores, return_inverse=True, return_counts=True)
    rank = (np.cumsum(counts) - counts + (counts + 1) / 2)[where]  # 1-based, tied scores share their mean rank
    return float((rank[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def uncertainty_quality(policy: Policy, task: Task, seeds: Sequence[int], tau: float) -> dict[str, float]:
    """The policy alone for one episode per seed; at every step its spread and whether its action is far from the
    expert's (SafeDAgger's discrepancy over tau). Returns both AUROCs with the shares of positives they rest on."""
    spreads: list[float] = []
    far: list[bool] = []
    episode_spread: list[float] = []
    failed: list[bool] = []

    def look(out: PolicyOutput) -> None:  # before the step: the expert's action in the same state
        spreads.append(out.spread)
        far.append(bool(discrepancy(out.action, task.expert_action()) > tau))

    for seed in seeds:
        start = len(spreads)
        outcome = run_episode(policy, task, seed, on_act=look)
        episode_spread.append(float(np.mean(spreads[start:])))
        failed.append(not outcome.success)
    return {"steps": len(spreads), "far_share": float(np.mean(far)), "step_auroc": auroc(spreads, far),
            "episodes": len(seeds), "failure_share": float(np.mean(failed)),
            "episode_auroc": auroc(episode_spread, failed)}
