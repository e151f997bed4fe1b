"""The label-efficiency benchmark: labels needed, classic DAgger's rollouts and beta schedule, the dagger curve's labels
from events, and one tiny cell of each method on the point task through the script."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dagger.app.label_bench import beta_rollout, dagger_points, labels_needed, linear_beta, needed_per_seed, spread_over
from dagger.policies import PolicyConfig, make_policy
from dagger.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]


def curve(*pairs: tuple[int, float]) -> list[dict]:
    return [{"labels": labels, "success": success} for labels, success in pairs]


def test_labels_needed_is_the_first_point_in_label_order_at_or_above_the_level() -> None:
    points = curve((800, 0.96), (100, 0.5), (400, 0.7), (200, 0.85))  # unordered, and not monotone
    assert labels_needed(points, 0.8) == 200
    assert labels_needed(points, 0.85) == 200  # at counts
    assert labels_needed(points, 0.95) == 800
    assert labels_needed(points, 0.99) is None
    assert labels_needed([], 0.5) is None


def test_needed_per_seed_counts_a_seed_that_never_reached_as_infinitely_many() -> None:
    seeds = [curve((100, 0.9)), curve((100, 0.5), (300, 0.81)), curve((500, 0.6))]
    needed = needed_per_seed(seeds, 0.8)
    assert needed == [100.0, 300.0, math.inf]
    assert float(np.median(needed)) == 300.0


def test_linear_beta_schedule_is_imitations() -> None:
    assert linear_beta(0) == 1.0
    assert linear_beta(3) == pytest.approx(0.8)
    assert linear_beta(15) == 0.0
    assert linear_beta(40) == 0.0
    assert linear_beta(1, rampdown=4) == 0.75


@pytest.fixture
def point_rollout(one_torch_thread):
    """beta_rollout on the point task with an untrained policy (it acts nothing like the expert)."""
    task = make_task("point")
    policy = make_policy(PolicyConfig(), task.obs_dim, task.act_dim)
    return lambda beta, seed, rng_seed=0: beta_rollout(task, policy, beta, seed, np.random.default_rng(rng_seed))


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_classic_dagger_labels_every_visited_state_with_the_experts_noiseless_action(point_rollout, beta) -> None:
    rollout = point_rollout(beta, seed=11)
    seg = rollout.segment
    replay = make_task("point")  # the same episode again, stepping what was executed
    obs = replay.reset(seed=11)
    for i, action in enumerate(rollout.executed):
        assert np.allclose(seg.obs[i], obs)  # the state visited at step i
        assert np.allclose(seg.action[i], replay.clip(replay.expert_action()))  # labelled by the expert there
        res = replay.step(action)
        obs = res.obs
    assert res.done and len(seg) == len(rollout.executed) == len(rollout.by_expert)
    assert seg.human  # stored as labels by the replay buffer


def test_classic_dagger_with_a_persons_noise_labels_the_expert_plus_that_noise(one_torch_thread) -> None:
    task = make_task("point")
    policy = make_policy(PolicyConfig(), task.obs_dim, task.act_dim)
    rollout = beta_rollout(task, policy, 1.0, 11, np.random.default_rng(0), noise=0.1)
    replay = make_task("point")
    replay.reset(seed=11)
    gaps = []
    for action in rollout.executed:  # beta 1: the noisy label is what was executed
        gaps.append(action - replay.clip(replay.expert_action()))
        replay.step(action)
    gaps = np.concatenate(gaps)
    inside = np.abs(np.concatenate(rollout.executed)) < 0.999  # clipping at the action bounds shrinks the noise
    assert abs(gaps[inside].mean()) < 0.03 and 0.07 < gaps[inside].std() < 0.13


def test_classic_dagger_executes_the_experts_action_with_probability_beta(point_rollout) -> None:
    always = point_rollout(1.0, seed=3)
    assert always.by_expert.all() and np.array_equal(always.executed, always.segment.action)
    never = point_rollout(0.0, seed=3)
    assert not never.by_expert.any() and np.array_equal(never.executed, never.segment.policy_action)
    assert not np.allclose(never.executed, never.segment.action)  # the untrained policy is not the expert
    half = np.concatenate([point_rollout(0.5, seed=s, rng_seed=s).by_expert for s in range(10)])
    assert len(half) > 200 and 0.4 < half.mean() < 0.6


def test_a_dagger_point_counts_demonstrations_and_operator_segments_closed_by_its_checkpoint() -> None:
    def segment(controller: str, steps: int, t_end: float) -> dict:
        return {"ev": "segment", "controller": controller, "steps": steps, "t_end": t_end}

    def checkpoint(version: int, t: float) -> dict:
        return {"ev": "checkpoint", "t": t, "version": version, "updates": 100 * version,
                "trained_on_steps": 10 * version, "path": f"v{version}.pt"}

    events = [{"ev": "policy_start", "t": 0.0, "demo_steps": 100}, checkpoint(1, 0.5),
              segment("operator:0", 10, 1.0), segment("policy", 50, 1.5), segment("operator:1", 5, 2.0),
              checkpoint(2, 2.0), checkpoint(3, 2.5), segment("operator:0", 7, 3.0), checkpoint(4, 3.5),
              checkpoint(4, 9.0)]  # the end of the run checkpoints the last version again: its first one counts
    points = dagger_points(events)
    assert [(p["version"], p["labels"]) for p in points] == [(1, 100), (2, 115), (3, 115), (4, 122)]
    assert points[-1] == {"version": 4, "path": "v4.pt", "updates": 400, "trained_on_steps": 40, "labels": 122}


def test_spread_over_keeps_the_first_and_last_and_about_k() -> None:
    labels = list(range(100, 2100, 100))
    chosen = spread_over(labels, 5)
    assert chosen[0] == 0 and chosen[-1] == len(labels) - 1 and 3 <= len(chosen) <= 5
    assert chosen == sorted(set(chosen))
    assert spread_over([5, 6], 8) == [0, 1]


def test_one_cell_of_each_method_on_the_point_task(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "label_efficiency.py"), "--out", str(tmp_path),
               "--tasks", "point", "--seeds", "0", "--episodes", "10", "--steps", "point=1200", "--points", "3",
               "--ladder", "1,2", "--updates", "200", "--round-episodes", "2", "--max-labels", "150",
               "--variants", "fewer:demos=1"]
    first = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    cells = {c["method"]: c for c in map(json.loads, map(Path.read_text, (tmp_path / "cells").glob("*.json")))}
    assert set(cells) == {"dagger:default", "dagger:fewer", "bc", "classic", "classic-exact"}
    assert cells["classic"]["label_noise"] == 0.1 and cells["classic-exact"]["label_noise"] == 0.0
    for method, cell in cells.items():
        labels = [p["labels"] for p in cell["points"]]
        assert labels == sorted(labels) and labels[0] > 0, method
        assert all(0 <= p["success"] <= 1 and p["ci95"][0] <= p["success"] <= p["ci95"][1] for p in cell["points"])
        assert cell["wall_s"] >= 0
    dagger = cells["dagger:default"]["points"]
    assert len(dagger) == 3 and dagger[0]["version"] == 1 and dagger[0]["labels"] == 3 * 40  # 3 demos of 40 steps
    assert cells["dagger:fewer"]["points"][0]["labels"] == 40 and cells["dagger:fewer"]["overrides"] == ["demos=1"]
    assert [(p["demos"], p["labels"], p["updates"]) for p in cells["bc"]["points"]] == [(1, 40, 200), (2, 80, 200)]
    classic = cells["classic"]["points"]
    assert [p["beta"] for p in classic] == [linear_beta(i) for i in range(len(classic))]
    assert classic[-1]["labels"] >= 150 or min(p["success"] for p in classic[-2:]) >= 0.98  # its two stops
    assert all(p["updates"] >= 500 * (i + 1) for i, p in enumerate(classic))
    with (tmp_path / "points.csv").open() as f:
        assert len(list(csv.DictReader(f))) == sum(len(c["points"]) for c in cells.values())
    assert (tmp_path / "label_efficiency.png").stat().st_size > 0
    rows = [line for line in first.stdout.splitlines() if line.startswith("| point |")]
    assert [row.split(" | ")[1] for row in rows][:1] == ["dagger:default"] and len(rows) == 5
    again = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)  # finished cells skipped
    assert "5 done already" in again.stderr and again.stdout == first.stdout
    report = subprocess.run([*command[:4], "--report-only"], capture_output=True, text=True, check=True, timeout=300)
    assert report.stdout == first.stdout
