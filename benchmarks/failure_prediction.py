"""Calibrated failure prediction per task, policy family and score: does `gate.calibrate=conformal` keep its stated
false-alarm rate on held-out rollouts, and what does it catch?

Each family is cloned from the same scripted demonstrations (seed 0) for `--updates` learner updates (as
benchmarks/uncertainty_quality.py), then acts alone on `--calibrate` + `--held-out` evaluation episodes (none a
training seed). Every step is scored with each score (dagger.gates.scores). For each of `--splits` random splits of
those episodes into `--calibrate` calibration and `--held-out` held-out ones, the threshold for α is the
split-conformal one over the steps of the successful calibration episodes (dagger.gates.conformal), measured on the
held-out episodes only: the achieved false-alarm rate (share of successful episodes' steps above it; its ratio to α,
mean over splits and the 10th–90th percentile of one split's: the goal is 0.75–1.25), the share of failing episodes
with an alarm, and how long before a failure's end (where it is declared) the first alarm came. One split is one
version's calibration in a run; the mean over splits is what the procedure achieves.

    python benchmarks/failure_prediction.py [--tasks reacher,reach] [--updates 1500] [--calibrate 60] [--held-out 60]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dagger.config import load_config
from dagger.core import PolicyOutput
from dagger.evaluation import eval_seeds, run_episode
from dagger.gates.conformal import Rollout, calibrate, measure
from dagger.gates.scores import SCORES, Scorer
from dagger.policies import POLICIES
from dagger.tasks import make_task
from workers.launch import clone_from_demos

DEMOS = {"point-obstacle": 20, "reacher": 20, "reach": 10}
"""demonstrations per task, as benchmarks/uncertainty_quality.py"""


def shown(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def scored(outputs: list[list[PolicyOutput]], outcomes: list, score: str) -> list[Rollout]:
    """Each episode's answers scored with a fresh Scorer (as the gate does from an episode's start)."""
    runs = []
    for answers, outcome in zip(outputs, outcomes, strict=True):
        scorer = Scorer(score)
        runs.append(Rollout(outcome, np.array([scorer(out) for out in answers], float)))
    return runs


def held_out(runs: list[Rollout], fit: np.ndarray, test: np.ndarray, alpha: float, dt: float) -> dict:
    """Calibrated on the episodes `fit`, measured on the episodes `test` (NaN where no threshold exists)."""
    calibration = calibrate([runs[i] for i in fit], alpha)
    got = measure([runs[i] for i in test], calibration["threshold"], dt)
    if math.isinf(calibration["threshold"]):  # too few successful steps for α: nothing to measure
        got = {**got, "false_alarm": math.nan, "detected": math.nan, "lead_s": math.nan}
    return {"calibration_steps": calibration["calibration_steps"], "false_alarm": got["false_alarm"],
            "detected": got["detected"], "failures": got["failures"], "lead_s": got["lead_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="reacher,reach")
    parser.add_argument("--families", default=",".join(POLICIES))
    parser.add_argument("--scores", default=",".join(SCORES))
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--calibrate", type=int, default=60, help="calibration episodes (their successes count)")
    parser.add_argument("--held-out", type=int, default=60, help="episodes the threshold is measured on")
    parser.add_argument("--splits", type=int, default=50, help="random calibration / held-out splits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began, root = time.time(), Path(tempfile.mkdtemp(prefix="failure-prediction-"))
    seeds = eval_seeds(args.calibrate + args.held_out)
    print(f"α = {args.alpha}: {args.updates} updates from scripted demonstrations; {args.calibrate} calibration and "
          f"{args.held_out} held-out episodes per family and task", file=sys.stderr)
    print("| task | family | success | score | calibration steps | false alarm | × α | one split's × α (10–90 %) | "
          "failures detected | lead before failure (s) |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name in args.tasks.split(","):
        task = make_task(name)
        for family in args.families.split(","):
            cfg = load_config(None, [f"task={name}", f"policy.type={family}", f"demos={DEMOS.get(name, 10)}"])
            policy = clone_from_demos(cfg, task, root / f"{name}-{family}", args.updates).policy
            outputs: list[list[PolicyOutput]] = []
            outcomes = []
            for seed in seeds:
                answers: list[PolicyOutput] = []
                outcomes.append(run_episode(policy, task, seed, on_act=answers.append))
                outputs.append(answers)
            splits = [np.random.default_rng(k).permutation(len(seeds)) for k in range(args.splits)]
            for score in args.scores.split(","):
                runs = scored(outputs, outcomes, score)
                rows = [held_out(runs, order[:args.calibrate], order[args.calibrate:], args.alpha, task.dt)
                        for order in splits]
                mean = {key: float(np.nanmean([r[key] for r in rows])) for key in rows[0]}
                ratio = np.array([r["false_alarm"] for r in rows]) / args.alpha
                low, high = np.nanpercentile(ratio, [10, 90])
                print(f"| {name} | {family} | {np.mean([o.success for o in outcomes]):.2f} | {score} | "
                      f"{mean['calibration_steps']:.0f} | {shown(mean['false_alarm'], 3)} | "
                      f"{shown(mean['false_alarm'] / args.alpha)} | {low:.2f}–{high:.2f} | "
                      f"{shown(mean['detected'])} of {mean['failures']:.0f} | {shown(mean['lead_s'])} |", flush=True)
    print(f"({time.time() - began:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
