"""Numpy point-mass tasks: the plain reach (fast tests) and two failures of behaviour cloning made visible, mode
averaging and a shortcut.

    task = PointTask()                            # a point mass to a goal, ~1 µs a step
    task = PointObstacleTask()                    # the expert passes a round obstacle on a hidden, random side
    task = PointDistractorTask(distractor="train")  # a marker on the goal in training episodes only
"""

from __future__ import annotations

import numpy as np

from dagger.core import FRAME_SHAPE, StepResult
from dagger.evaluation import EVAL_SEED_BASE

DISTRACTOR_MODES = ("train", "aligned", "random")


def _square(frame: np.ndarray, xy: np.ndarray, color: tuple[int, int, int], r: int) -> None:
    """Paints a square around a point of the [-1.2, 1.2]² arena."""
    h, w = FRAME_SHAPE[:2]
    cx, cy = int((xy[0] + 1.2) / 2.4 * w), int((1.2 - xy[1]) / 2.4 * h)
    frame[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = color


class PointTask:
    """A 2-D point mass pushed towards a goal; pure numpy, ~1 µs a step."""

    name = "point"
    instruction = "move the point to the goal"
    image_shape: tuple[int, int, int] | None = None  # state observations only
    ends_on_success = False
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

    def render_width(self, width: int) -> None:
        pass  # drawn at FRAME_SHAPE: a video enlarges it

    def render(self) -> np.ndarray:
        """A top view: goal in green, point in white."""
        frame = np.full(FRAME_SHAPE, 30, np.uint8)
        _square(frame, self.goal, (60, 200, 90), 5)
        _square(frame, self.pos, (240, 240, 240), 3)
        return frame

    def clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)


class PointObstacleTask(PointTask):
    """Pass a round obstacle at the origin to reach a goal on its far side; touching it is a violation.

    The start is near (-1, 0) and the goal near (1, 0). The expert goes around on the left (+y) or the
    right (-y), drawn 50/50 per episode and hidden from the observation; the average of the two is straight
    into the obstacle. A violation sticks the point where it touched until the time limit.
    """

    name = "point-obstacle"
    instruction = "move the point to the goal around the obstacle"
    obs_dim = 8  # position, velocity, goal - position, obstacle centre - position
    horizon = 80
    ends_on_success = True
    success_radius = 0.1
    obstacle_radius = 0.45
    clearance = 0.2  # the expert's waypoints lie this far outside the obstacle

    def __init__(self) -> None:
        super().__init__()
        self.side = 1.0  # +1: around on the left (+y), -1: on the right
        self.stuck = False

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.vel, self.goal - self.pos, -self.pos]).astype(np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos = np.array([-1.0, 0.0]) + self.rng.uniform(-0.05, 0.05, 2)
        self.goal = np.array([1.0, 0.0]) + self.rng.uniform(-0.05, 0.05, 2)
        self.side = float(self.rng.choice([-1.0, 1.0]))
        self.vel = np.zeros(2)
        self.stuck = False
        self.t = 0
        return self._obs()

    def step(self, action: np.ndarray) -> StepResult:
        if not self.stuck:
            self.vel = 0.9 * self.vel + self.clip(action) * self.dt * 4.0
            self.pos = self.pos + self.vel * self.dt
            self.stuck = bool(np.linalg.norm(self.pos) < self.obstacle_radius)
            if self.stuck:
                self.vel = np.zeros(2)
        self.t += 1
        dist = float(np.linalg.norm(self.goal - self.pos))
        success = dist < self.success_radius and not self.stuck
        return StepResult(self._obs(), -dist, success, self.stuck, success or self.t >= self.horizon)

    def expert_action(self) -> np.ndarray:
        """PD to the goal, or, while the obstacle blocks the way, to a waypoint 0.9 rad further round it.

        The side is the episode's, unless the point is already clearly on the other one (a policy took it there).
        """
        to_goal = self.goal - self.pos
        along = -float(self.pos @ to_goal) / max(float(to_goal @ to_goal), 1e-9)  # nearest the centre
        blocked = 0 < along < 1 and np.linalg.norm(self.pos + along * to_goal) < self.obstacle_radius + 0.15
        target = self.goal
        if blocked:
            side = np.sign(self.pos[1]) if abs(self.pos[1]) > 0.15 else self.side
            angle = np.arctan2(self.pos[1], self.pos[0]) - 0.9 * side
            target = (self.obstacle_radius + self.clearance) * np.array([np.cos(angle), np.sin(angle)])
        return self.clip(4.0 * (target - self.pos) - 1.5 * self.vel)

    def render(self) -> np.ndarray:
        """A top view: obstacle in red, goal in green, point in white."""
        frame = np.full(FRAME_SHAPE, 30, np.uint8)
        h, w = FRAME_SHAPE[:2]
        rows, cols = np.mgrid[0:h, 0:w]
        x, y = (cols + 0.5) / w * 2.4 - 1.2, 1.2 - (rows + 0.5) / h * 2.4
        frame[x * x + y * y < self.obstacle_radius**2] = (200, 60, 60)
        _square(frame, self.goal, (60, 200, 90), 5)
        _square(frame, self.pos, (240, 240, 240), 3)
        return frame


class PointDistractorTask(PointTask):
    """PointTask with a marker that sits on the goal in the demonstrations: a shortcut that breaks at test time.

    The observed goal is off by a fixed offset per episode (up to 0.06, within the success radius) while the
    marker, when on the goal, is exact, so a cloned policy does better on the training data by following the
    marker. `distractor`: "train" puts the marker on the goal for seeds below EVAL_SEED_BASE and at random on
    evaluation seeds; "aligned" always on the goal; "random" always at random.
    """

    name = "point-distractor"
    instruction = "move the point to the goal, not to the marker"
    obs_dim = 8  # position, velocity, observed goal - position, marker - position
    success_radius = 0.1
    goal_noise = 0.06

    def __init__(self, distractor: str = "train") -> None:
        if distractor not in DISTRACTOR_MODES:
            raise ValueError(f"unknown distractor mode {distractor!r}; choose one of {DISTRACTOR_MODES}")
        super().__init__()
        self.distractor = distractor
        self.seed = 0
        self.goal_offset = np.zeros(2)
        self.marker = np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.vel, self.goal + self.goal_offset - self.pos,
                               self.marker - self.pos]).astype(np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.seed = self.seed if seed is None else seed  # reset(None): the marker goes where the last seed put it
        super().reset(seed)
        angle, radius = self.rng.uniform(0, 2 * np.pi), self.goal_noise * np.sqrt(self.rng.uniform())
        self.goal_offset = radius * np.array([np.cos(angle), np.sin(angle)])
        elsewhere = self.rng.uniform(-1, 1, 2)  # drawn in every mode: a seed gives the same episode in each
        aligned = self.distractor == "aligned" or (self.distractor == "train" and self.seed < EVAL_SEED_BASE)
        self.marker = self.goal.copy() if aligned else elsewhere
        return self._obs()

    def render(self) -> np.ndarray:
        """PointTask's view with the marker in yellow."""
        frame = super().render()
        _square(frame, self.marker, (230, 200, 40), 2)
        _square(frame, self.pos, (240, 240, 240), 3)
        return frame
