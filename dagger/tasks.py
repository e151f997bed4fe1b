"""Tasks: gymnasium-API environments with a success signal and a scripted expert.

    task = make_task("reach")        # Meta-World reach-v3: a Sawyer arm to a goal (the demo)
    task = make_task(TaskConfig("point"))        # tiny numpy point mass, for fast tests
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dagger.core import StepResult, Task
from dagger.gl import close_at_exit, offscreen_frame
from dagger.metaworld_tasks import METAWORLD_TASKS, MetaWorldTask  # imports no physics until a task is made

DISTRACTOR_MODES = ("train", "aligned", "random")
FRAME_SHAPE = (120, 160, 3)  # height, width, RGB of a robot's camera frame
TOP_VIEW = {"distance": 0.55, "elevation": -90.0, "azimuth": 90.0, "lookat": np.zeros(3)}
"""Reacher's camera: straight down on the arm and target (gymnasium's default shows the arena small, from afar)"""


@dataclass
class TaskConfig:
    name: str = "reach"
    """the task the robots run: reach | push | pick-place | drawer-open (Meta-World; reach is the demo) | reacher |
    reacher-image (its target seen by a camera only) | point | point-obstacle | point-distractor (numpy);
    `task=point` is short for `task.name=point`"""
    camera_jitter: float = 0.0
    """image tasks: each episode the policy's camera moves from its pose by up to this many cm and turns by up to
    this many degrees (0: a fixed camera)"""
    distractor: str = "train"
    """point-distractor: where its marker sits: train (on the goal in training episodes, at random on evaluation
    seeds) | aligned (always on the goal) | random"""


class PointTask:
    """A 2-D point mass pushed towards a goal; pure numpy, ~1 µs a step."""

    name = "point"
    image_shape: tuple[int, int, int] | None = None  # state observations only
    obs_dim = 6  # position, velocity, goal - position
    act_dim = 2
    dt = 0.05
    horizon = 40
    success_radius = 0.05

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.pos = np.zeros(2)
        self.vel = np.zeros(2)
        self.goal = np.zeros(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.vel, self.goal - self.pos]).astype(np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos = self.rng.uniform(-1, 1, 2)
        self.vel = np.zeros(2)
        self.goal = self.rng.uniform(-1, 1, 2)
        self.t = 0
        return self._obs()

    def step(self, action: np.ndarray) -> StepResult:
        a = self.clip(action)
        self.vel = 0.9 * self.vel + a * self.dt * 4.0
        self.pos = self.pos + self.vel * self.dt
        self.t += 1
        dist = float(np.linalg.norm(self.goal - self.pos))
        return StepResult(self._obs(), -dist, dist < self.success_radius, False, self.t >= self.horizon)

    def expert_action(self) -> np.ndarray:
        return self.clip(4.0 * (self.goal - self.pos) - 1.5 * self.vel)

    def render(self) -> np.ndarray:
        """A top view: goal in green, point in white."""
        frame = np.full(FRAME_SHAPE, 30, np.uint8)
        h, w = FRAME_SHAPE[:2]
        for (x, y), color, r in ((self.goal, (60, 200, 90), 5), (self.pos, (240, 240, 240), 3)):
            cx, cy = int((x + 1.2) / 2.4 * w), int((1.2 - y) / 2.4 * h)
            frame[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = color
        return frame

    def clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)


class ReacherTask:
    """gymnasium's MuJoCo Reacher-v5: bring the fingertip within 2 cm of a random target.

    The expert solves the two-link inverse kinematics for the target and drives the joints there
    with a PD law; it succeeds on every seed. Success is judged on the episode's last step.
    """

    name = "reacher"
    image_shape: tuple[int, int, int] | None = None
    obs_dim = 10
    act_dim = 2
    success_radius = 0.02
    links = (0.1, 0.11)  # upper arm and forearm (body pos of body1 and fingertip in reacher.xml)

    def __init__(self) -> None:
        from dagger.gl import configure_gl

        self.gl_backend = configure_gl()  # before mujoco is imported: it reads MUJOCO_GL once, at import

        import gymnasium as gym

        render_mode = "rgb_array" if self.gl_backend else None  # no GL: never build a renderer
        self.env = gym.make("Reacher-v5", render_mode=render_mode, width=FRAME_SHAPE[1], height=FRAME_SHAPE[0],
                            default_camera_config=TOP_VIEW)
        self.closes_at_exit = False
        sim: Any = self.env.unwrapped
        self.sim = sim
        self.dt = float(sim.dt)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        return obs.astype(np.float32)

    def distance(self) -> float:
        return float(np.linalg.norm(self.sim.get_body_com("fingertip") - self.sim.get_body_com("target")))

    def step(self, action: np.ndarray) -> StepResult:
        obs, reward, terminated, truncated, _ = self.env.step(self.clip(action).astype(np.float32))
        return StepResult(obs.astype(np.float32), float(reward), self.distance() < self.success_radius,
                          False, bool(terminated or truncated))

    def expert_action(self) -> np.ndarray:
        q, dq = self.sim.data.qpos[:2], self.sim.data.qvel[:2]
        x, y = self.sim.data.qpos[2:4]
        l1, l2 = self.links
        cos_elbow = np.clip((x * x + y * y - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
        best = None
        for elbow in (np.arccos(cos_elbow), -np.arccos(cos_elbow)):
            shoulder = np.arctan2(y, x) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow))
            err = (np.array([shoulder, elbow]) - q + np.pi) % (2 * np.pi) - np.pi
            if best is None or np.abs(err).sum() < np.abs(best).sum():
                best = err
        assert best is not None
        return self.clip(3.0 * best - 0.3 * dq)

    def clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)

    def render(self) -> np.ndarray:
        """The default camera, offscreen (a few ms a frame with Mesa on the CPU)."""
        if self.gl_backend is None:  # the robot worker turns this into a render_failed event
            raise RuntimeError("no OpenGL backend for MuJoCo (tried egl, osmesa; or MUJOCO_GL disables it)")
        frame = offscreen_frame(self.env)
        if not self.closes_at_exit:
            close_at_exit(self.env)
            self.closes_at_exit = True
        return frame


class ReacherImageTask(ReacherTask):
    """Reacher through a camera: the target's position is only in the policy's 64×64 top-view image; the
    observation keeps the arm's own state (cos, sin and velocity of both joints). The target sphere is drawn at
    2 cm radius (from 0.9 cm; it has no contacts, so physics is unchanged) to span a few pixels.

    With `camera_jitter` j, every episode moves the camera by up to j cm (its look-at point, in the table's plane),
    turns it by up to j degrees about the vertical and tilts it by up to j degrees: a camera shift.
    """

    name = "reacher-image"
    obs_dim = 6
    image_shape: tuple[int, int, int] | None = (64, 64, 3)
    state = [0, 1, 2, 3, 6, 7]  # of Reacher-v5's observation: cos q, sin q, dq (not the target)

    def __init__(self, camera_jitter: float = 0.0) -> None:
        super().__init__()
        import mujoco

        self.jitter = camera_jitter
        model = self.sim.model
        model.geom_size[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "target"), 0] = 0.02
        self.camera = mujoco.MjvCamera()
        self.renderer: Any = None  # made in the thread that renders first (a GL context belongs to its thread)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs = super().reset(seed)
        rng = np.random.default_rng(None if seed is None else [seed, 1])
        j = self.jitter
        shift = rng.uniform(-1, 1, 2) * j / 100 / np.sqrt(2)  # up to j cm
        self.camera.lookat[:] = [shift[0], shift[1], 0.0]  # the arm's base, moved
        self.camera.distance = 0.7  # the whole reach (0.21 m) in view, with a margin for a moved camera
        self.camera.azimuth = 90.0 + rng.uniform(-j, j)  # TOP_VIEW's, turned
        self.camera.elevation = -90.0 + rng.uniform(0, j)  # straight down, tilted
        return obs[self.state]

    def step(self, action: np.ndarray) -> StepResult:
        res = super().step(action)
        res.obs = res.obs[self.state]
        return res

    def image(self) -> np.ndarray:
        """The policy's camera, offscreen (uint8 [64, 64, 3])."""
        if self.gl_backend is None:
            raise RuntimeError("reacher-image needs OpenGL for its camera (tried egl, osmesa; or MUJOCO_GL=disable)")
        if self.renderer is None:
            import mujoco

            self.renderer = mujoco.Renderer(self.sim.model, *self.image_shape[:2])  # type: ignore[index]
            close_at_exit(self.renderer)
        self.renderer.update_scene(self.sim.data, camera=self.camera)
        return np.asarray(self.renderer.render(), np.uint8).copy()


def _point_obstacle(_: TaskConfig) -> Task:
    from dagger.failure_tasks import PointObstacleTask  # a subclass of PointTask: imported once this module is

    return PointObstacleTask()


def _point_distractor(cfg: TaskConfig) -> Task:
    from dagger.failure_tasks import PointDistractorTask

    return PointDistractorTask(cfg.distractor)


def _metaworld(env_name: str) -> Callable[[TaskConfig], Task]:
    def make(_: TaskConfig) -> Task:
        return MetaWorldTask(env_name)
    return make


TASKS: dict[str, Callable[[TaskConfig], Task]] = {
    "point": lambda _: PointTask(),
    "point-obstacle": _point_obstacle,
    "point-distractor": _point_distractor,
    "reacher": lambda _: ReacherTask(),
    "reacher-image": lambda cfg: ReacherImageTask(cfg.camera_jitter),
    **{name: _metaworld(env) for name, env in METAWORLD_TASKS.items()},
}
MUJOCO_TASKS = {"reacher", "reacher-image", *METAWORLD_TASKS}
TASK_IMAGES: dict[str, tuple[int, int, int]] = {"reacher-image": (64, 64, 3)}
TASK_DEFAULTS: dict[str, list[str]] = {"reacher-image": ["robot.speed=1", "learner.batch_size=16"]}
"""settings a task starts from (a config file and overrides still win): image robots render every step, so they run
in real time, and a CNN update on 16 images per member stays near 40 ms on one core"""
"""image tasks and their camera images' shape (what a learner needs to know without making the task)"""
"""tasks that step MuJoCo (and render through OpenGL)"""


def make_task(cfg: TaskConfig | str) -> Task:
    """A task from its settings, or from its name with default settings."""
    cfg = TaskConfig(cfg) if isinstance(cfg, str) else cfg
    if cfg.name not in TASKS:
        raise ValueError(f"unknown task {cfg.name!r}; choose one of {sorted(TASKS)}")
    return TASKS[cfg.name](cfg)


def camera_image(task: Task) -> np.ndarray | None:
    """The policy's camera image [H, W, 3] uint8 in the task's current state; None for a state-only task."""
    return None if task.image_shape is None else task.image()  # type: ignore[attr-defined]


def with_name(cfg: TaskConfig, name: str | None) -> TaskConfig:
    """cfg for another task (the same settings), or cfg itself when name is None."""
    return cfg if name is None else replace(cfg, name=name)
