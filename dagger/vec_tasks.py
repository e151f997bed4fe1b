"""Batched tasks for fleet-scale runs: one numpy array step moves every robot.

    task = VecPointObstacle(n=100, seed=0)
    obs = task.obs(); res = task.step(actions)     # actions [n, 2]; res fields are [n] arrays
    task.reset(res.done & ~res.constraint)          # a soft reset; a violation needs task.reset(i, hard)

A point mass is pushed from a start to a goal on the far side of a round obstacle. Touching the
obstacle is a constraint violation: the robot is stuck until an operator spends `hard_reset_steps`
on it (Fleet-DAgger's hard reset). The expert steers around the obstacle through waypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VecStep:
    reward: np.ndarray
    success: np.ndarray
    constraint: np.ndarray  # in a violating state (stuck) after this step
    done: np.ndarray  # success or time limit (not a violation: that waits for a hard reset)


class VecPointObstacle:
    obs_dim, act_dim = 8, 2
    dt, horizon = 0.05, 80  # dt: seconds of task time per step (one fleet step of `dagger bench`)
    obstacle_radius, success_radius = 0.35, 0.1

    def __init__(self, n: int, seed: int = 0):
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.pos, self.vel, self.goal = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2))
        self.t = np.zeros(n, int)
        self.stuck = np.zeros(n, bool)
        self.reset(np.ones(n, bool))

    def reset(self, which: np.ndarray) -> None:
        """New episodes for the robots in `which` (a bool mask)."""
        k = int(which.sum())
        angle = self.rng.uniform(0, 2 * np.pi, k)
        side = np.stack([np.cos(angle), np.sin(angle)], 1)
        self.pos[which] = side * self.rng.uniform(0.8, 1.0, (k, 1))
        self.goal[which] = -side * self.rng.uniform(0.8, 1.0, (k, 1)) + self.rng.normal(0, 0.25, (k, 2))
        self.vel[which] = 0.0
        self.t[which] = 0
        self.stuck[which] = False

    def obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.vel, self.goal - self.pos, self.pos / np.maximum(
            np.linalg.norm(self.pos, axis=1, keepdims=True), 1e-6) * self.obstacle_radius - self.pos], 1).astype(
            np.float32)

    def expert_actions(self) -> np.ndarray:
        """PD to the goal, or to a waypoint around the obstacle while it blocks the straight line."""
        to_goal = self.goal - self.pos
        # distance from the obstacle's centre (the origin) to the segment pos -> goal
        along = np.clip(-(self.pos * to_goal).sum(1) / np.maximum((to_goal**2).sum(1), 1e-9), 0.0, 1.0)
        closest = np.linalg.norm(self.pos + along[:, None] * to_goal, axis=1)
        blocked = closest < self.obstacle_radius + 0.15
        theta = np.arctan2(self.pos[:, 1], self.pos[:, 0])
        turn = np.sign(np.cross(np.c_[self.pos, np.zeros(self.n)], np.c_[to_goal, np.zeros(self.n)])[:, 2] + 1e-9)
        waypoint = 0.65 * np.stack([np.cos(theta + 0.8 * turn), np.sin(theta + 0.8 * turn)], 1)
        target = np.where(blocked[:, None], waypoint, self.goal)
        return np.clip(4.0 * (target - self.pos) - 1.5 * self.vel, -1.0, 1.0)

    def step(self, actions: np.ndarray) -> VecStep:
        moving = ~self.stuck
        a = np.clip(actions, -1.0, 1.0)
        self.vel[moving] = 0.9 * self.vel[moving] + a[moving] * self.dt * 4.0
        self.pos[moving] += self.vel[moving] * self.dt
        self.t += 1
        hit = moving & (np.linalg.norm(self.pos, axis=1) < self.obstacle_radius)
        self.stuck |= hit
        self.vel[self.stuck] = 0.0
        dist = np.linalg.norm(self.goal - self.pos, axis=1)
        success = (dist < self.success_radius) & ~self.stuck
        done = success | ((self.t >= self.horizon) & ~self.stuck)
        return VecStep(-dist, success, self.stuck.copy(), done)
