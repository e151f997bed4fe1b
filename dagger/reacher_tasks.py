"""gymnasium's MuJoCo Reacher-v5, and the same arm seen through a camera.

    task = ReacherTask()                          # fingertip within 2 cm of a random target, 50 steps
    task = ReacherImageTask(camera_jitter=4)      # the target only in a 64×64 image; the camera moved per episode
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dagger.core import FRAME_SHAPE, StepResult
from dagger.gl import close_at_exit, offscreen_frame, widen_renderer

TOP_VIEW = {"distance": 0.55, "elevation": -90.0, "azimuth": 90.0, "lookat": np.zeros(3)}
"""Reacher's camera: straight down on the arm and target (gymnasium's default shows the arena small, from afar)"""


class ReacherTask:
    """gymnasium's MuJoCo Reacher-v5: bring the fingertip within 2 cm of a random target.

    The expert solves the two-link inverse kinematics for the target and drives the joints there
    with a PD law; it succeeds on every seed. Success is judged on the episode's last step.
    """

    name = "reacher"
    instruction = "touch the target with the fingertip"
    image_shape: tuple[int, int, int] | None = None
    ends_on_success = False  # success is judged on the last step of 50
    horizon = 50
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

    def render_width(self, width: int) -> None:
        widen_renderer(self.env, width)

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


class ReacherJointTask(ReacherTask):
    """Reacher in joint space, for a leader arm: the action is the two joints' target angles (rad) and a press
    (> 0 presses). A position controller inside the task (PD at the simulator's 100 Hz on Reacher's motors, the
    target slewed at most `max_speed` rad/s, as a servo's profile velocity does) drives the arm. Success: pressing
    with the fingertip within 2 cm of the target, which ends the episode; pressing farther away is a constraint
    violation (a false press). The expert aims by inverse kinematics (one elbow branch) and presses once there.
    """

    name = "reacher-joint"
    instruction = "put the fingertip on the target and press"
    ends_on_success = True
    horizon = 150  # 3 s: a person on a leader arm aligns (not counted: the robot holds), reaches, then presses
    obs_dim = 12  # Reacher-v5's 10, then both joint angles
    act_dim = 3
    max_speed = 6.0
    gains = (2.0, 0.2)  # motor command per rad of error, per rad/s of speed (critically damped, settles in ~0.3 s)
    limits = np.array([np.pi, 3.0, 1.0])  # shoulder (a full turn), elbow (its joint range), press

    def __init__(self) -> None:
        super().__init__()
        self.target = np.zeros(2)  # the controller's slewed joint target
        self.steps = 0

    def observe(self) -> np.ndarray:
        return np.concatenate([self.sim._get_obs(), self.sim.data.qpos[:2]]).astype(np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        super().reset(seed)
        self.target, self.steps = self.sim.data.qpos[:2].copy(), 0
        return self.observe()

    def step(self, action: np.ndarray) -> StepResult:
        action = self.clip(action)
        data, h = self.sim.data, float(self.sim.model.opt.timestep)
        kp, kd = self.gains
        for _ in range(self.sim.frame_skip):
            self.target += np.clip(action[:2] - self.target, -self.max_speed * h, self.max_speed * h)
            self.sim.do_simulation(np.clip(kp * (self.target - data.qpos[:2]) - kd * data.qvel[:2], -1, 1), 1)
        self.steps += 1
        near, pressed = self.distance() < self.success_radius, bool(action[2] > 0)
        success = near and pressed
        return StepResult(self.observe(), -self.distance(), success, pressed and not near,
                          success or self.steps >= self.horizon)

    def goal_joints(self) -> np.ndarray:
        """The joint angles that put the fingertip on the target (the elbow-positive branch)."""
        x, y = self.sim.data.qpos[2:4]
        l1, l2 = self.links
        elbow = np.arccos(np.clip((x * x + y * y - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0))
        shoulder = np.arctan2(y, x) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow))
        return np.array([(shoulder + np.pi) % (2 * np.pi) - np.pi, elbow])

    def expert_action(self) -> np.ndarray:
        press = 1.0 if self.distance() < 0.75 * self.success_radius else -1.0
        return self.clip(np.append(self.goal_joints(), press))

    def clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float64), -self.limits, self.limits)
