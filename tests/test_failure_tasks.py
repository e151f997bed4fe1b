"""The failure tasks: their experts solve them, and behaviour cloning fails them the way each is built to."""

from __future__ import annotations

import numpy as np
import pytest

from dagger.core import FRAME_SHAPE, Task
from dagger.evaluation import EVAL_SEED_BASE, demo_seed, eval_seeds
from dagger.point_tasks import PointDistractorTask, PointObstacleTask
from dagger.policies import EnsemblePolicy

SEEDS = list(range(20)) + eval_seeds(20)  # training-side and evaluation seeds


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def expert_episode(task: Task, seed: int) -> tuple[bool, bool, list[np.ndarray]]:
    """(success on the last step, any violation, the positions visited)."""
    task.reset(seed)
    done, violated, path = False, False, []
    while not done:
        res = task.step(task.expert_action())
        done, violated = res.done, violated or res.constraint
        path.append(task.pos.copy())  # type: ignore[attr-defined]
    return res.success, violated, path


def demonstrations(task: Task, episodes: int) -> tuple[np.ndarray, np.ndarray]:
    obs, act = [], []
    for i in range(episodes):
        o, done = task.reset(demo_seed(0, i)), False
        while not done:
            a = task.expert_action()
            obs.append(o)
            act.append(a)
            res = task.step(a)
            o, done = res.obs, res.done
    return np.asarray(obs, np.float32), np.asarray(act, np.float32)


def clone(obs: np.ndarray, act: np.ndarray, updates: int = 1000, batch: int = 128) -> EnsemblePolicy:
    """Behaviour cloning as the learner does it: the data's normaliser, then a step on each member's own batch."""
    policy = EnsemblePolicy(obs.shape[1], act.shape[1], seed=0)
    policy.set_normalizer(obs.mean(0), obs.std(0), act.mean(0), act.std(0))
    rng = np.random.default_rng(0)
    for _ in range(updates):
        idx = rng.integers(0, len(obs), (policy.members, batch))
        policy.update({"obs": obs[idx], "action": act[idx]})
    return policy


def rollout(policy: EnsemblePolicy, task: Task, seed: int) -> tuple[bool, bool]:
    """(success on the last step, any violation) with the ensemble's mean action."""
    obs, done, violated = task.reset(seed), False, False
    while not done:
        res = task.step(policy.act(obs).action)
        obs, done, violated = res.obs, res.done, violated or res.constraint
    return res.success, violated


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("distractor", [None, "train", "aligned", "random"])
def test_the_expert_succeeds_without_violations(distractor):
    task = PointObstacleTask() if distractor is None else PointDistractorTask(distractor)
    outcomes = [expert_episode(task, seed)[:2] for seed in SEEDS]
    assert np.mean([s for s, _ in outcomes]) >= 0.95
    assert not any(v for _, v in outcomes)


def test_the_obstacle_expert_goes_round_on_both_sides():
    task = PointObstacleTask()
    sides = []
    for seed in SEEDS:
        success, _, path = expert_episode(task, seed)
        passing = min(path, key=lambda p: abs(p[0]))  # where it passes the obstacle's centre
        assert abs(passing[1]) > task.obstacle_radius
        sides.append(np.sign(passing[1]))
    left = np.mean(np.array(sides) > 0)
    print(f"\nexpert goes round on the left in {left:.0%} of {len(SEEDS)} episodes")
    assert 0.25 <= left <= 0.75


@pytest.mark.parametrize("make", [PointObstacleTask, PointDistractorTask])
def test_reset_is_deterministic(make):
    a, b = make(), make()
    for seed in (3, EVAL_SEED_BASE + 3):
        assert np.array_equal(a.reset(seed), b.reset(seed))
        for _ in range(10):
            assert np.array_equal(a.step(a.expert_action()).obs, b.step(b.expert_action()).obs)
    assert not np.array_equal(a.reset(1), a.reset(2))


def test_driving_straight_at_the_obstacle_sticks_the_point():
    task = PointObstacleTask()
    task.reset(0)
    task.pos = np.array([-1.0, 0.0])
    # x after k steps of full thrust from rest: -1 + 0.05 * sum_{i<=k} 2 (1 - 0.9^i); it first passes -0.45 at k = 12
    results = [task.step(np.array([1.0, 0.0])) for _ in range(task.horizon)]
    assert [r.constraint for r in results] == [False] * 11 + [True] * (task.horizon - 11)
    assert np.array_equal(results[11].obs, results[-1].obs)  # stuck where it touched
    assert -0.45 < task.pos[0] < -0.44 and task.pos[1] == 0.0  # x = -0.446, just inside radius 0.45
    assert [r.done for r in results].index(True) == task.horizon - 1
    assert not any(r.success for r in results)


def test_the_marker_sits_on_the_goal_only_in_training_episodes():
    task = PointDistractorTask("train")
    train_obs = task.reset(7)
    assert np.allclose(train_obs[6:8], task.goal - task.pos, atol=1e-6)  # the marker: exactly the goal
    assert 0 < np.linalg.norm(train_obs[4:6] - (task.goal - task.pos)) <= task.goal_noise + 1e-6  # the goal: noisy
    eval_obs = task.reset(EVAL_SEED_BASE + 7)
    assert np.linalg.norm(eval_obs[6:8] - (task.goal - task.pos)) > 0.05
    assert np.allclose(PointDistractorTask("aligned").reset(EVAL_SEED_BASE + 7)[6:8], task.goal - task.pos, atol=1e-6)
    random_task = PointDistractorTask("random")
    assert np.array_equal(random_task.reset(EVAL_SEED_BASE + 7), eval_obs)  # the same episode in every mode
    with pytest.raises(ValueError, match="distractor"):
        PointDistractorTask("sometimes")


@pytest.mark.parametrize("make", [PointObstacleTask, PointDistractorTask])
def test_render_draws_a_frame(make):
    task = make()
    task.reset(0)
    frame = task.render()
    assert frame.shape == FRAME_SHAPE and frame.dtype == np.uint8 and len(np.unique(frame.reshape(-1, 3), axis=0)) >= 4


def test_cloning_averages_the_two_ways_round_into_the_obstacle():
    task = PointObstacleTask()
    policy = clone(*demonstrations(task, 40))
    seeds = eval_seeds(20)
    collisions = np.mean([rollout(policy, task, seed)[1] for seed in seeds])
    expert_collisions = np.mean([expert_episode(task, seed)[1] for seed in seeds])
    # the mechanism: at the start, the clone heads for the obstacle; either way round the expert does not
    policy_cos, expert_cos = [], []
    for seed in seeds:
        obs = task.reset(seed)
        to_obstacle = obs[6:8]
        policy_cos.append(cosine(policy.act(obs).action, to_obstacle))
        for side in (-1.0, 1.0):
            task.side = side
            expert_cos.append(cosine(task.expert_action(), to_obstacle))
    print(f"\nBC on 40 demos: collision rate {collisions:.0%} (expert {expert_collisions:.0%}); cosine with the way "
          f"to the obstacle at the start: clone mean {np.mean(policy_cos):.3f} min {np.min(policy_cos):.3f}, "
          f"expert modes max {np.max(expert_cos):.3f}")
    assert expert_collisions == 0.0
    assert collisions >= 0.5  # measured 85-100 % over 16 training seeds
    assert np.mean(policy_cos) > 0.85  # measured >= 0.92
    assert np.max(expert_cos) < 0.8  # about 0.71: full thrust forward and sideways


def test_cloning_takes_the_distractor_shortcut():
    seeds = eval_seeds(20)
    rates = {}
    for demos in ("train", "random"):  # marker on the goal in the demonstrations, or uninformative
        policy = clone(*demonstrations(PointDistractorTask(demos), 40))
        for test in ("aligned", "random"):
            rates[demos, test] = np.mean([rollout(policy, PointDistractorTask(test), seed)[0] for seed in seeds])
    print(f"\nBC success, (demos, test): {', '.join(f'{k}: {v:.0%}' for k, v in rates.items())}")
    assert rates["train", "aligned"] - rates["train", "random"] >= 0.5  # measured 100 % vs 0 %
    assert rates["random", "random"] >= rates["train", "random"] + 0.4  # solvable without the marker: 75-95 %
