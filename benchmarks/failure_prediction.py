"""Calibrated failure prediction per task, policy family and score: does `gate.calibrate=conformal` keep its stated
false-alarm rate on held-out rollouts, and what does it catch?

Each family is cloned from the same scripted demonstrations (seed 0) for `--updates` learner updates (as
benchmarks/uncertainty_quality.py), then acts alone on `--calibrate` + `--held-out` evaluation episodes (disjoint
seeds, none a training seed). Every step is scored with each score (dagger.gates.scores); the threshold for α is the
split-conformal one over the steps of the successful calibration episodes (dagger.gates.conformal), measured on the
held-out episodes only: the achieved false-alarm rate (share of successful episodes' steps above it, and its ratio
to α: the goal is 0.75–1.25), the share of failing episodes with an alarm, and how long before a failure's end
(where it is declared) the first alarm came.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="reacher,reach")
    parser.add_argument("--families", default=",".join(POLICIES))
    parser.add_argument("--scores", default=",".join(SCORES))
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--calibrate", type=int, default=60, help="calibration episodes (their successes count)")
    parser.add_argument("--held-out", type=int, default=60, help="episodes the threshold is measured on")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began, root = time.time(), Path(tempfile.mkdtemp(prefix="failure-prediction-"))
    seeds = eval_seeds(args.calibrate + args.held_out)
    print(f"α = {args.alpha}: {args.updates} updates from scripted demonstrations; {args.calibrate} calibration and "
          f"{args.held_out} held-out episodes per family and task", file=sys.stderr)
    print("| task | family | success (cal / held-out) | score | calibration steps | false alarm | × α | "
          "failures detected | lead before failure (s) |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
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
            cut = args.calibrate
            wins = (np.mean([o.success for o in outcomes[:cut]]), np.mean([o.success for o in outcomes[cut:]]))
            for score in args.scores.split(","):
                runs = scored(outputs, outcomes, score)
                fit = calibrate(runs[:cut], args.alpha)
                got = measure(runs[cut:], fit["threshold"], task.dt)
                if math.isinf(fit["threshold"]):  # too few successful steps for α: no threshold, nothing measured
                    got = {**got, "false_alarm": math.nan, "detected": math.nan}
                print(f"| {name} | {family} | {wins[0]:.2f} / {wins[1]:.2f} | {score} | {fit['calibration_steps']} | "
                      f"{shown(got['false_alarm'], 3)} | {shown(got['false_alarm'] / args.alpha)} | "
                      f"{shown(got['detected'])} of {got['failures']} | {shown(got['lead_s'])} |", flush=True)
    print(f"({time.time() - began:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
