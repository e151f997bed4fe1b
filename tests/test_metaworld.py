"""Meta-World tasks: the scripted expert succeeds, seeds draw visible goals, frames render, drops are caught."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from dagger.metaworld_tasks import METAWORLD_TASKS, MetaWorldTask

ROOT = Path(__file__).resolve().parents[1]
GOAL = slice(36, 39)


@cache
def task(env_name: str) -> MetaWorldTask:
    return MetaWorldTask(env_name)


def expert_episode(t: MetaWorldTask, seed: int) -> tuple[bool, int, bool]:
    """Success, episode length, and whether any step violated the constraint."""
    t.reset(seed=seed)
    steps, violated = 0, False
    while True:
        res = t.step(t.expert_action())
        steps += 1
        violated = violated or res.constraint
        if res.done:
            return res.success, steps, violated


def test_expert_solves_reach_on_nine_of_ten_seeds() -> None:
    t = task("reach-v3")
    episodes = [expert_episode(t, seed) for seed in range(10)]
    assert sum(success for success, _, _ in episodes) >= 9
    assert all(steps <= t.horizon for _, steps, _ in episodes)


@pytest.mark.parametrize("env_name", ["push-v3", "pick-place-v3", "drawer-open-v3"])
def test_expert_solves_the_other_tasks(env_name: str) -> None:
    t = task(env_name)
    for seed in range(3):
        success, steps, violated = expert_episode(t, seed)
        assert success, f"{env_name} seed {seed}: no success in {steps} steps"
        assert not violated


def test_expert_never_drops_the_object() -> None:
    t = task("pick-place-v3")
    assert not any(expert_episode(t, seed)[2] for seed in range(3, 10))


@pytest.mark.parametrize("env_name", sorted(METAWORLD_TASKS.values()))
def test_seeds_draw_different_goals_and_the_goal_is_observed(env_name: str) -> None:
    t = task(env_name)
    goals = {tuple(t.reset(seed=seed)[GOAL]) for seed in range(5)}
    assert len(goals) == 5
    assert all(np.any(np.asarray(g) != 0) for g in goals)  # Meta-World zeroes a hidden goal


@pytest.mark.parametrize("env_name", ["reach-v3", "pick-place-v3"])
def test_a_seeded_reset_is_deterministic(env_name: str) -> None:
    t = task(env_name)
    first = t.reset(seed=7)
    for _ in range(20):
        t.step(t.expert_action())
    np.testing.assert_array_equal(t.reset(seed=7), first)
    np.testing.assert_array_equal(MetaWorldTask(env_name).reset(seed=7), first)
    assert t.reset(seed=8)[GOAL].tolist() != first[GOAL].tolist()


def test_dimensions_and_clip() -> None:
    t = task("push-v3")
    obs = t.reset(seed=0)
    assert obs.shape == (t.obs_dim,) and obs.dtype == np.float32
    assert t.act_dim == 4 and t.image_shape is None and t.name == "push"
    assert t.dt == pytest.approx(0.0125)
    np.testing.assert_array_equal(t.clip(np.array([2.0, -3.0, 0.5, 1.0])), [1.0, -1.0, 0.5, 1.0])


def test_render_is_an_upright_camera_frame() -> None:
    t = task("pick-place-v3")
    t.reset(seed=0)
    frame = t.render()
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 10  # a scene, not a blank
    # Upright: the grey backdrop is at the top, the table and the floor below it.
    assert frame[:10].std() < frame[-30:].std()


def test_a_task_still_renders_after_another_one_is_freed() -> None:
    first, second = MetaWorldTask("reach-v3"), task("reach-v3")
    for t in (first, second):
        t.reset(seed=0)
        t.render()
    first.env.close()  # releases its GL context: gymnasium leaves none current
    frame = second.render()
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 10  # not black


def test_opening_the_gripper_high_up_drops_the_object() -> None:
    t = task("pick-place-v3")
    seed = next(s for s in range(20) if t.reset(seed=s)[38] > 0.2)  # a goal high above the table
    t.reset(seed=seed)
    while t.last_obs[6] < t.start_height + 0.08:  # carried 8 cm up by the expert
        res = t.step(t.expert_action())
        assert not res.constraint and not res.done
    opened = [t.step(np.array([0.0, 0.0, 0.0, -1.0])) for _ in range(25)]
    fired = [res.constraint for res in opened]
    assert any(fired) and not fired[0]  # on landing, not on letting go
    assert fired[-1] and not opened[-1].success  # it stays violated while the object lies there
    assert t.last_obs[6] < t.start_height + 0.01


NO_GL_SCRIPT = """
from dagger.metaworld_tasks import MetaWorldTask
t = MetaWorldTask("reach-v3")
t.reset(seed=0)
assert t.step(t.expert_action()).obs.shape == (39,)
try:
    t.render()
except RuntimeError as err:
    print("render:", err)
"""


def test_without_gl_the_task_runs_and_render_raises() -> None:
    env = {**os.environ, "MUJOCO_GL": "disable", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", NO_GL_SCRIPT], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("render: no OpenGL backend"), done.stdout
