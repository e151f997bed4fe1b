"""Meta-World tasks: a Sawyer arm on a table, Meta-World's scripted policies as the expert.

    task = MetaWorldTask("pick-place-v3")   # or any name in METAWORLD_TASKS.values()
    obs = task.reset(seed=0); res = task.step(task.expert_action())
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Literal

import numpy as np

from dagger.core import FRAME_SHAPE, StepResult
from dagger.gl import close_at_exit, offscreen_frame, widen_renderer

METAWORLD_TASKS = {"reach": "reach-v3", "push": "push-v3", "pick-place": "pick-place-v3",
                   "drawer-open": "drawer-open-v3"}
"""dagger task name -> Meta-World environment name"""

HORIZONS = {"reach-v3": 80, "push-v3": 90, "pick-place-v3": 80, "drawer-open-v3": 110}
"""Steps per episode: the expert's slowest of 100 seeds took 89 / 210 / 63 / 93 (99th percentile 73 / 76 / 62 / 93)"""

INSTRUCTIONS = {"reach-v3": "reach the goal with the gripper", "push-v3": "push the puck to the goal",
                "pick-place-v3": "pick up the puck and place it at the goal", "drawer-open-v3": "open the drawer"}
"""what each task asks, in words (for language-conditioned policies)"""

CAMERA = "corner"  # the whole table, the arm and the goal marker; Meta-World's other corners crop or shrink it
CARRIED = ("pick-place-v3",)  # tasks whose object is carried through the air: dropping it violates a constraint
LIFTED, LANDED = 0.03, 0.01  # metres above the object's start height: carried above LIFTED, back down below LANDED


class MetaWorldTask:
    """One Meta-World v3 environment, its goal visible and its goal and object positions drawn per seed.

    Observations are Meta-World's 39 numbers: hand xyz, gripper opening, object poses, the same one
    step earlier, and the goal xyz (obs[36:39]; Meta-World zeroes it unless made observable, as here).
    Success is Meta-World's `info["success"]`; the episode ends on success or after `horizon` steps.
    Constraint (pick-place only): the object was dropped. Once it has been carried more than 3 cm
    above its start height, every step on which it is back within 1 cm of its start height (or lower:
    off the table) without success violates the constraint, until it is picked up again.
    """

    obs_dim = 39
    act_dim = 4  # hand velocity xyz and gripper effort, each in [-1, 1]
    image_shape: tuple[int, int, int] | None = None  # state observations only
    ends_on_success = True

    def __init__(self, env_name: str) -> None:
        from dagger.gl import configure_gl

        self.gl_backend = configure_gl()  # before mujoco is imported: it reads MUJOCO_GL once, at import

        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.policies import ENV_POLICY_MAP

        if env_name not in ALL_V3_ENVIRONMENTS:
            raise ValueError(f"unknown Meta-World environment {env_name!r}; one of {sorted(ALL_V3_ENVIRONMENTS)}")
        render_mode: Literal["rgb_array"] | None = "rgb_array" if self.gl_backend else None  # no GL: no renderer
        env: Any = ALL_V3_ENVIRONMENTS[env_name](render_mode=render_mode, camera_name=CAMERA,
                                                 width=FRAME_SHAPE[1], height=FRAME_SHAPE[0])
        # What Meta-World's goal-observable variants switch, except that every reset draws a new goal
        # and object position from the env's seeded generator (theirs freeze one per instance).
        env._partially_observable = False
        del env.sawyer_observation_space  # a cached property that depends on _partially_observable
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        # On a CPU renderer (Mesa) Meta-World's shadows make a frame ~4x dearer (~90 ms instead of ~22)
        # and draw little more than artefacts at 160x120; its 4096² shadow map costs 60 MB per renderer.
        env.model.light_castshadow[:] = 0
        env.model.mat_reflectance[:] = 0
        env.model.vis.quality.shadowsize = 1024
        self.env = env
        policy_cls: Any = ENV_POLICY_MAP[env_name]  # typed as the abstract base class
        self.policy = policy_cls()
        self.name = re.sub(r"-v\d+$", "", env_name)
        self.env_name = env_name
        self.instruction = INSTRUCTIONS.get(env_name, self.name.replace("-", " "))
        self.dt = float(env.dt)
        self.horizon = HORIZONS.get(env_name, env.max_path_length)
        self.checks_drop = env_name in CARRIED
        self.closes_at_exit = False
        self.last_obs = np.zeros(self.obs_dim)
        self.start_height = 0.0
        self.lifted = False
        self.t = 0

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.env.seed(seed)  # Meta-World's reset ignores its seed argument
        obs, _ = self.env.reset()
        self.last_obs = obs
        self.start_height = float(obs[6])
        self.lifted = False
        self.t = 0
        return obs.astype(np.float32)

    def dropped(self) -> bool:
        """Updates whether the object has been carried; True when it is back down."""
        height = float(self.last_obs[6]) - self.start_height
        self.lifted = self.lifted or height > LIFTED
        return self.lifted and height < LANDED

    def step(self, action: np.ndarray) -> StepResult:
        obs, reward, _, _, info = self.env.step(self.clip(action).astype(np.float32))
        self.last_obs = obs
        self.t += 1
        success = bool(info["success"])
        constraint = self.checks_drop and self.dropped() and not success
        return StepResult(obs.astype(np.float32), float(reward), success, constraint,
                          success or self.t >= self.horizon)

    def expert_action(self) -> np.ndarray:
        with warnings.catch_warnings():  # the policies warn whenever their gain saturates the action
            warnings.simplefilter("ignore", UserWarning)
            return self.clip(self.policy.get_action(self.last_obs))

    def clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)

    def render_width(self, width: int) -> None:
        widen_renderer(self.env, width)

    def render(self) -> np.ndarray:
        """The corner camera, offscreen, turned upright (Meta-World's cameras are mounted upside down)."""
        if self.gl_backend is None:  # the robot worker turns this into a render_failed event
            raise RuntimeError("no OpenGL backend for MuJoCo (tried egl, osmesa; or MUJOCO_GL disables it)")
        frame = np.ascontiguousarray(offscreen_frame(self.env)[::-1, ::-1])
        if not self.closes_at_exit:
            close_at_exit(self.env)
            self.closes_at_exit = True
        return frame
