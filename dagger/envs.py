"""Every dagger task as a gymnasium environment, registered as dagger/<CamelCaseName>-v0 by `import dagger`
(dagger/gym_registration.py).

    env = gymnasium.make("dagger/PickPlace-v0", render_mode="rgb_array")
    obs, info = env.reset(seed=0); obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from dagger.gym_registration import env_id, register_envs

__all__ = ["TaskEnv", "env_id", "register_envs"]


class TaskEnv(gymnasium.Env):
    """A dagger Task behind gymnasium's API.

    Observations are the task's state (float32), or {"state", "image"} for a task with a policy camera;
    info says "success" and "constraint" each step. terminated: the episode ended at a success, on a task whose
    episodes end there (`ends_on_success`); truncated: it ended otherwise (the time limit).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}

    def __init__(self, task: str, render_mode: str | None = None) -> None:
        from dagger.tasks import make_task

        self.task = make_task(task)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.task.dt)}
        state = spaces.Box(-np.inf, np.inf, (self.task.obs_dim,), np.float32)
        self.image_shape = self.task.image_shape
        if self.image_shape is None:
            self.observation_space: spaces.Space = state
        else:
            self.observation_space = spaces.Dict({"state": state,
                                                  "image": spaces.Box(0, 255, self.image_shape, np.uint8)})
        self.action_space = spaces.Box(-1.0, 1.0, (self.task.act_dim,), np.float32)

    def _obs(self, state: np.ndarray) -> Any:
        state = np.array(state, dtype=np.float32)  # a copy: gymnasium's users may keep it
        if self.image_shape is None:
            return state
        return {"state": state, "image": np.array(self.task.image(), dtype=np.uint8)}  # type: ignore[attr-defined]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self._obs(self.task.reset(seed=seed)), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        res = self.task.step(np.asarray(action))
        terminated = bool(res.done and res.success and self.task.ends_on_success)
        info = {"success": bool(res.success), "constraint": bool(res.constraint)}
        return self._obs(res.obs), float(res.reward), terminated, bool(res.done and not terminated), info

    def render(self) -> np.ndarray | None:
        return self.task.render() if self.render_mode == "rgb_array" else None
