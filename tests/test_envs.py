"""Every dagger task as a registered gymnasium environment that passes gymnasium's own checker."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dagger.tasks
from dagger.core import FRAME_SHAPE
from dagger.envs import TaskEnv, env_id, register_envs
from dagger.point_tasks import PointTask
from dagger.tasks import TASKS

INFINITE_BOUNDS = ".*observation space m[a-z]+ value is -?infinity"  # the checker's opinion; state has no bounds


def test_ids_are_camel_case() -> None:
    assert env_id("reacher") == "dagger/Reacher-v0"
    assert env_id("pick-place") == "dagger/PickPlace-v0"
    assert env_id("point-obstacle") == "dagger/PointObstacle-v0"


def test_import_dagger_registered_every_task_and_again_is_harmless() -> None:
    before = dict(gymnasium.registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is registered over
        register_envs()
    assert dict(gymnasium.registry) == before
    assert all(env_id(name) in gymnasium.registry for name in TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_gymnasiums_checker_passes(name: str) -> None:
    env = gymnasium.make(env_id(name), render_mode="rgb_array").unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's complaints are warnings
        warnings.filterwarnings("ignore", INFINITE_BOUNDS)
        check_env(env)
    assert env.render().shape == FRAME_SHAPE


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_seeded_reset_is_deterministic(name: str) -> None:
    env = gymnasium.make(env_id(name))
    first, _ = env.reset(seed=3)
    env.step(env.action_space.sample())
    again, _ = env.reset(seed=3)
    for key in first if isinstance(first, dict) else [None]:
        np.testing.assert_array_equal(*(obs if key is None else obs[key] for obs in (first, again)))


class ImagePointTask(PointTask):
    """The point task with a policy camera: its top view, as an image."""

    name = "point-image"
    image_shape = FRAME_SHAPE

    def image(self) -> np.ndarray:
        return self.render()


def test_an_image_task_observes_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(dagger.tasks.TASKS, "point-image", lambda _: ImagePointTask())
    env = TaskEnv("point-image")
    obs, _ = env.reset(seed=0)
    assert isinstance(env.observation_space, gymnasium.spaces.Dict)
    assert obs["state"].shape == (6,) and obs["image"].shape == FRAME_SHAPE and obs in env.observation_space
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", INFINITE_BOUNDS)
        warnings.filterwarnings("ignore", ".*not having a spec")  # not registered: no render modes to make
        check_env(env)


def test_episodes_end_terminated_on_success_and_truncated_at_the_time_limit() -> None:
    ends = []
    for name, expert in (("point-obstacle", True), ("point-obstacle", False), ("point", True)):
        env = TaskEnv(name)
        env.reset(seed=0)
        terminated = truncated = False
        while not (terminated or truncated):
            action = env.task.expert_action() if expert else np.zeros(2)
            _, _, terminated, truncated, info = env.step(action.astype(np.float32))
        ends.append((terminated, truncated, info["success"]))
    # point runs to its time limit whatever happens: a success on its last step is still the limit
    assert ends == [(True, False, True), (False, True, False), (False, True, True)]
