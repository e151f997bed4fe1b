"""Label efficiency: policy-alone success against labels (operator plus demonstration steps) for the dagger loop and
two baselines trained by the same learner: behaviour cloning on scripted demonstrations, and classic DAgger (Ross et
al. 2011, as the `imitation` library runs it: beta-mixture rollouts, every visited state labelled by the expert, with
the loop's operator's noise or none).

    points = run_dagger(cfg, run_dir, episodes=100)                # the loop in-process, scored at its checkpoints
    points = run_bc(cfg, task, directory, [3, 6, 12], episodes=100)
    points = run_classic(cfg, task, directory, ClassicConfig(), episodes=100)
    labels_needed(points, 0.95)                                      # labels at the first point at or above, or None
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from buffers.schema import DEMO, Segment, is_intervention
from dagger.checkpoint import policy_from, read_checkpoint
from dagger.config import RunConfig
from dagger.core import Policy, Task, camera_image
from dagger.evaluation import episode_seed, eval_seeds, evaluate_policy
from dagger.events import read_events
from dagger.metrics import of_kind
from dagger.policies import BasePolicy, make_policy
from dagger.tasks import make_task
from workers.buffer import BufferWorker
from workers.launch import collect_demos, run_loop
from workers.learner import Learner
from workers.transport import LocalEndpoint

Progress = Callable[[str], None]


def _quiet(line: str) -> None:
    pass


def score(policy: Policy, task: Task, episodes: int) -> dict[str, Any]:
    """The policy alone on the held-out evaluation episodes: success rate and its 95 % interval."""
    result = evaluate_policy(policy, task, eval_seeds(episodes))
    return {"success": result["success_rate"], "ci95": result["ci95"]}


def published_policy(learner: Learner, task: Task) -> BasePolicy:
    """The learner's published weights in a policy of their own (acting never touches the trainer's state)."""
    policy = make_policy(learner.cfg.policy, task.obs_dim, task.act_dim, image_shape=task.image_shape)
    policy.load(learner.published)
    return policy


def new_learner(cfg: RunConfig, task: Task, directory: Path) -> tuple[Learner, BufferWorker]:
    """A learner from scratch on an empty replay buffer in `directory` (what `dagger start` trains with)."""
    buffer = BufferWorker.for_run(directory, cfg)
    return Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer)), buffer


# --- the dagger loop -------------------------------------------------------------------------------------------------

def dagger_points(events: list[dict]) -> list[dict[str, Any]]:
    """One point per checkpointed version (its first checkpoint): labels = demonstration steps + operator steps in
    segments closed at or before the checkpoint's time (spent, trained on or not), and what the learner had done."""
    demo_steps = sum(e.get("demo_steps", 0) for e in of_kind(events, "policy_start"))
    human = sorted((s["t_end"], s["steps"]) for s in of_kind(events, "segment") if is_intervention(s["controller"]))
    ends, cumulative = [t for t, _ in human], np.cumsum([0] + [n for _, n in human])
    points: dict[int, dict[str, Any]] = {}
    for e in of_kind(events, "checkpoint"):
        if e["version"] not in points:
            points[e["version"]] = {"version": e["version"], "path": e["path"], "updates": e["updates"],
                                    "trained_on_steps": e["trained_on_steps"],
                                    "labels": demo_steps + int(cumulative[bisect.bisect_right(ends, e["t"])])}
    return [points[v] for v in sorted(points)]


def spread_over(labels: Sequence[int], k: int) -> list[int]:
    """Indices of about k points spread evenly over log(labels), always the first and the last."""
    if len(labels) <= k:
        return list(range(len(labels)))
    logs = np.log(np.maximum(np.asarray(labels, float), 1.0))
    targets = np.linspace(logs[0], logs[-1], k)
    return sorted({int(np.argmin(np.abs(logs - t))) for t in targets} | {0, len(labels) - 1})


def run_dagger(cfg: RunConfig, run_dir: Path, episodes: int, evaluated: int = 8,
               progress: Progress = _quiet) -> list[dict[str, Any]]:
    """The loop in this process (run_loop, repeatable per seed) with a checkpoint per version; about `evaluated` of
    them scored alone on `episodes` held-out episodes. cfg needs learner.checkpoint_every=1."""
    run_loop(cfg, run_dir)
    points = dagger_points(read_events(run_dir / "events.jsonl"))
    task = make_task(cfg.task)
    chosen = [points[i] for i in spread_over([p["labels"] for p in points], evaluated)]
    for p in chosen:
        p.update(score(policy_from(read_checkpoint(p["path"]), task), task, episodes))
        progress(f"v{p['version']}: {p['labels']} labels -> {p['success']:.2f}")
    return chosen


# --- behaviour cloning -----------------------------------------------------------------------------------------------

def bc_updates(cfg: RunConfig, labels: int, updates: int | None = None) -> int:
    """Updates a policy trained from scratch on `labels` gets: `updates`, else pretraining's plus 4 a label, >= 2000."""
    return updates if updates else max(2000, cfg.learner.pretrain_updates + 4 * labels)


def run_bc(cfg: RunConfig, task: Task, directory: Path, ladder: Sequence[int], episodes: int,
           updates: int | None = None, progress: Progress = _quiet) -> list[dict[str, Any]]:
    """For each n of the ladder: n scripted demonstrations (collect_demos: the operator's noise), a learner from
    scratch on them alone, scored; stops once success >= 0.98."""
    points = []
    for n in ladder:
        demos = collect_demos(dataclasses.replace(cfg, demos=n), task)
        learner, buffer = new_learner(cfg, task, directory / f"demos-{n}")
        buffer.add(demos)
        labels = sum(map(len, demos))
        learner.train(bc_updates(cfg, labels, updates))
        learner.publish()
        buffer.close()
        points.append({"demos": n, "labels": labels, "trained_on_steps": labels, "updates": learner.updates,
                       **score(published_policy(learner, task), task, episodes)})
        progress(f"{n} demos: {labels} labels -> {points[-1]['success']:.2f}")
        if points[-1]["success"] >= 0.98:
            break
    return points


# --- classic DAgger --------------------------------------------------------------------------------------------------

def linear_beta(round_: int, rampdown: int = 15) -> float:
    """imitation's LinearBetaSchedule: the chance the expert's action is executed in round `round_` (1 in round 0)."""
    return max(0.0, 1.0 - round_ / rampdown)


@dataclass
class Rollout:
    segment: Segment
    """every visited state; `action`: the expert's action there (the label), `policy_action`: the policy's"""
    by_expert: np.ndarray
    """per step: the expert's action was executed (else the policy's)"""

    @property
    def executed(self) -> np.ndarray:
        return np.where(self.by_expert[:, None], self.segment.action, self.segment.policy_action)


def beta_rollout(task: Task, policy: Policy, beta: float, seed: int, rng: np.random.Generator,
                 seq: int = 0, noise: float = 0.0) -> Rollout:
    """One episode executing, each step, the expert's action with probability beta and else the policy's; every
    visited state is labelled with the expert's action, plus Gaussian noise of std `noise` (a person's hand: the
    loop's simulated operator adds the same; 0: the noiseless expert `imitation` uses)."""
    obs, done = task.reset(seed=seed), False
    steps: list[dict[str, Any]] = []
    by_expert: list[bool] = []
    policy.reset()
    while not done:
        expert = task.expert_action()
        label = task.clip(expert + rng.normal(0.0, noise, expert.shape) if noise > 0 else expert)
        image = camera_image(task)
        acted = policy.act(obs, image).action  # every step, as `imitation` does: a stateful policy sees them all
        by_expert.append(bool(rng.random() < beta))
        res = task.step(label if by_expert[-1] else acted)
        steps.append({"obs": obs, "action": label, "policy_action": acted, "version": 0, "spread": 0.0,
                      "threshold": 0.0, "reward": res.reward, "success": res.success, "constraint": res.constraint,
                      "done": res.done, "step": len(steps), "t_wall": 0.0,
                      **({} if image is None else {"image": image})})
        obs, done = res.obs, res.done
    return Rollout(Segment.from_steps(0, seq, seq, DEMO, "episode_end", 0.0, steps), np.array(by_expert))


@dataclass
class ClassicConfig:
    round_episodes: int = 4
    """episodes rolled out per round"""
    rampdown: int = 15
    """rounds until beta reaches 0"""
    max_labels: int = 20000
    """stop once the aggregate holds this many labels"""
    min_updates: int = 500
    """updates per round: 4 per new label, at least this many"""
    noise: float = 0.0
    """std of the labeller's noise on each expert action (task units; 0: the noiseless scripted expert)"""


def run_classic(cfg: RunConfig, task: Task, directory: Path, classic: ClassicConfig, episodes: int,
                progress: Progress = _quiet) -> list[dict[str, Any]]:
    """Rounds of beta-mixture rollouts, aggregated and trained on by one learner (warm start), scored after each;
    stops at success >= 0.98 twice in a row or at the label cap."""
    learner, buffer = new_learner(cfg, task, directory)
    rng, labels, round_ = np.random.default_rng(cfg.seed), 0, 0
    points: list[dict[str, Any]] = []
    while labels < classic.max_labels and not (len(points) >= 2 and all(p["success"] >= 0.98 for p in points[-2:])):
        beta, policy = linear_beta(round_, classic.rampdown), published_policy(learner, task)
        first = round_ * classic.round_episodes
        rollouts = [beta_rollout(task, policy, beta, episode_seed(cfg.seed, 0, n), rng, seq=n, noise=classic.noise)
                    for n in range(first, first + classic.round_episodes)]
        buffer.add([r.segment for r in rollouts])
        new = sum(len(r.segment) for r in rollouts)
        labels += new
        learner.train(max(classic.min_updates, 4 * new))
        learner.publish()
        points.append({"round": round_, "beta": beta, "labels": labels, "trained_on_steps": labels,
                       "updates": learner.updates, **score(published_policy(learner, task), task, episodes)})
        progress(f"round {round_} (beta {beta:.2f}): {labels} labels -> {points[-1]['success']:.2f}")
        round_ += 1
    buffer.close()
    return points


# --- reading the curves ----------------------------------------------------------------------------------------------

def labels_needed(points: Sequence[dict[str, Any]], level: float) -> int | None:
    """Labels at the first evaluated point (in label order) whose success is at or above `level`; None if none is."""
    return next((p["labels"] for p in sorted(points, key=lambda p: p["labels"]) if p["success"] >= level), None)


def needed_per_seed(curves: Sequence[Sequence[dict[str, Any]]], level: float) -> list[float]:
    """labels_needed for each seed's curve, infinity where it never reached `level` (so a median counts it)."""
    return [math.inf if n is None else float(n) for n in (labels_needed(c, level) for c in curves)]


def best_point(curves: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """The highest success over every seed's points (the fewest labels among ties)."""
    return max((p for c in curves for p in c), key=lambda p: (p["success"], -p["labels"]))
