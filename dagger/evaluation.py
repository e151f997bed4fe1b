"""The policy alone (no gate, no human) on episodes whose seeds no training episode uses.

Training episodes take their seeds from `episode_seed` and `demo_seed`, all below EVAL_SEED_BASE;
evaluation seeds start there, so a policy is never scored on an episode it trained on.

    result = evaluate_policy(policy, make_task("reacher"), eval_seeds(100))
    result["success_rate"], result["ci95"]          # with a 95 % Wilson interval
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from dagger.core import Policy, PolicyOutput, Task, camera_image

EVAL_SEED_BASE = 2**40
MAX_RUN_SEED = 100_000
"""run seeds below this keep every training seed below EVAL_SEED_BASE"""


def episode_seed(run_seed: int, robot: int, episode: int) -> int:
    """The seed of a robot's training episode (episode counts restarts: incarnation * 10**6 + n)."""
    return run_seed * 1_000_003 + robot * 10_007 + episode


def demo_seed(run_seed: int, episode: int) -> int:
    """The seed of a scripted demonstration episode."""
    return 10**9 + run_seed * 1000 + episode


def eval_seeds(episodes: int, base: int = EVAL_SEED_BASE) -> list[int]:
    if base < EVAL_SEED_BASE:
        raise ValueError(f"evaluation seeds must start at {EVAL_SEED_BASE} or above (below, training uses them); "
                         f"got {base}")
    return [base + i for i in range(episodes)]


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (n = 0: the whole range)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = centre - half, centre + half
    return (0.0 if successes == 0 else lo), (1.0 if successes == n else hi)  # exact at the ends, no rounding


class Outcome(NamedTuple):
    """One episode of the policy alone."""

    success: bool  # on the last step
    total: float  # return
    length: int
    violated: bool  # some step violated the task's constraint


def run_episode(policy: Policy, task: Task, seed: int, on_frame: Callable[[np.ndarray], None] | None = None,
                on_act: Callable[[PolicyOutput], None] | None = None) -> Outcome:
    """One episode with the policy's action every step (and its camera image, on an image task); `on_act` sees each
    answer before the task steps."""
    obs, done, total, length, success, violated = task.reset(seed=seed), False, 0.0, 0, False, False
    policy.reset()
    while not done:
        if on_frame is not None:
            on_frame(task.render())
        out = policy.act(obs, camera_image(task))
        if on_act is not None:
            on_act(out)
        res = task.step(out.action)
        obs, done, success = res.obs, res.done, res.success
        violated |= res.constraint
        total += res.reward
        length += 1
    return Outcome(bool(success), total, length, bool(violated))


def summarize_episodes(outcomes: Sequence[Outcome]) -> dict:
    """Success rate with its 95 % Wilson interval, the share of episodes with a constraint violation, mean return
    and length."""
    n = len(outcomes)
    wins = sum(o.success for o in outcomes)
    lo, hi = wilson_interval(wins, n)
    return {"episodes": n, "successes": wins, "success_rate": wins / n if n else 0.0, "ci95": [lo, hi],
            "violation_rate": sum(o.violated for o in outcomes) / n if n else 0.0,
            "mean_return": float(np.mean([o.total for o in outcomes])) if n else 0.0,
            "mean_length": float(np.mean([o.length for o in outcomes])) if n else 0.0}


def evaluate_policy(policy: Policy, task: Task, seeds: Sequence[int]) -> dict:
    """Success rate with its 95 % interval, mean return and length over one episode per seed."""
    return summarize_episodes([run_episode(policy, task, seed) for seed in seeds])
