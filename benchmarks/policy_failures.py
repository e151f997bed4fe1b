"""Where a checkpoint's policy alone fails (issue 25's failure analysis): on held-out episodes of a Meta-World task,
the medians over successful and failed episodes of the episode's length, the hand's distance to the goal at the end,
the policy's uncertainty (the ensemble gate's score) at its highest and over the last 10 steps against the run's
threshold, and the squared gap between the policy's and the scripted expert's actions (noiseless) over the episode
and its last 10 steps. A Markdown table on stdout.

    python benchmarks/policy_failures.py runs/demo/checkpoints/latest --task reach [--episodes 100] [--threshold 0.0075]
"""

from __future__ import annotations

import argparse

import numpy as np

from dagger.checkpoint import policy_from, read_checkpoint
from dagger.core import Policy, Task
from dagger.evaluation import eval_seeds
from dagger.tasks import make_task

HAND, GOAL = slice(0, 3), slice(36, 39)  # Meta-World's observation: the hand's xyz first, the goal's last
COLUMNS = ("length", "hand to goal at the end (m)", "score: highest", "score: last 10 steps",
           "steps above threshold", "gap to expert", "gap to expert: last 10 steps")


def episode(policy: Policy, task: Task, seed: int, threshold: float) -> tuple[bool, list[float]]:
    obs, done, success = task.reset(seed=seed), False, False
    policy.reset()
    scores, gaps = [], []
    while not done:
        out = policy.act(obs)
        scores.append(out.spread)
        gaps.append(float(np.mean((out.action - task.expert_action()) ** 2)))
        res = task.step(out.action)
        obs, done, success = res.obs, res.done, res.success
    s = np.array(scores)
    return success, [len(s), float(np.linalg.norm(obs[HAND] - obs[GOAL])), s.max(), s[-10:].mean(),
                     float((s > threshold).mean()), float(np.mean(gaps)), float(np.mean(gaps[-10:]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--task", default="reach", help="a Meta-World task")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--threshold", type=float, default=None, help="the gate's (default: the checkpoint run's)")
    args = parser.parse_args()
    ckpt = read_checkpoint(args.checkpoint)
    threshold = args.threshold if args.threshold is not None else ckpt["config"]["gate"]["threshold"]
    task = make_task(args.task)
    policy = policy_from(ckpt, task)
    rows = [episode(policy, task, seed, threshold) for seed in eval_seeds(args.episodes)]
    print(f"| {args.task}, v{policy.version}, threshold {threshold:g} | episodes | " + " | ".join(COLUMNS) + " |")
    print("| --- | ---: |" + " ---: |" * len(COLUMNS))
    for name, wanted in (("succeeded", True), ("failed", False)):
        values = np.array([v for ok, v in rows if ok == wanted]).reshape(-1, len(COLUMNS))
        medians = np.median(values, axis=0) if len(values) else [np.nan] * len(COLUMNS)
        cells = [f"{medians[0]:.0f}", f"{medians[1]:.3f}", *(f"{m:.4f}" for m in medians[2:4]), f"{medians[4]:.2f}",
                 *(f"{m:.4f}" for m in medians[5:])]
        print(f"| {name} | {len(values)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
