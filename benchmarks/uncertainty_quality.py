"""Uncertainty quality per policy family and task: how well each family's own uncertainty predicts the policy being
wrong, as ROC AUC (0.5: chance, 1: a perfect ranking) — per visited state for "the action is far from the expert's"
(SafeDAgger's discrepancy over gate.tau_sup) and per episode (mean uncertainty) for "the episode fails".

Each family is cloned from the same scripted demonstrations (seed 0) for `--updates` learner updates, then acts alone
on held-out evaluation seeds (dagger.uncertainty). On point-obstacle the expert detours left or right at random, so
"far from the expert's" there also counts the other detour.

    python benchmarks/uncertainty_quality.py [--episodes 50] [--updates 1500] [--tasks point-obstacle,reacher,reach]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from dagger.config import load_config
from dagger.evaluation import eval_seeds
from dagger.policies import POLICIES
from dagger.tasks import make_task
from dagger.uncertainty import uncertainty_quality
from workers.launch import clone_from_demos

DEMOS = {"point-obstacle": 20, "reacher": 20, "reach": 10}
"""demonstrations per task (point-obstacle's 20 hold both detours)"""


def shown(auroc: float) -> str:
    """Two decimals; "—" where one class never occurred (every episode ended the same way)."""
    return "—" if math.isnan(auroc) else f"{auroc:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--tasks", default=",".join(DEMOS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    began, root = time.time(), Path(tempfile.mkdtemp(prefix="uncertainty-"))
    print(f"{args.updates} updates from scripted demonstrations, {args.episodes} held-out episodes per family and task",
          file=sys.stderr)
    print("| task | family | success | far from expert | AUROC (step) | AUROC (episode) |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.tasks.split(","):
        task = make_task(name)
        for family in POLICIES:
            cfg = load_config(None, [f"task={name}", f"policy.type={family}", f"demos={DEMOS.get(name, 10)}"])
            learner = clone_from_demos(cfg, task, root / f"{name}-{family}", args.updates)
            q = uncertainty_quality(learner.policy, task, eval_seeds(args.episodes), cfg.gate.tau_sup)
            print(f"| {name} | {family} | {1 - q['failure_share']:.2f} | {q['far_share']:.2f} of {q['steps']} steps "
                  f"| {shown(q['step_auroc'])} | {shown(q['episode_auroc'])} |", flush=True)
    print(f"({time.time() - began:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
