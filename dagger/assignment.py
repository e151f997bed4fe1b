"""Interactive Fleet Learning's assignment rules: operators to robots, given a priority order.

    fleet = FleetAssigner(humans=10, robots=100, min_steps=5, hard_reset_steps=5)
    fleet.assign(order)                  # order from an allocator
    resets = fleet.step(constraint)      # advance one fleet step; robots whose hard reset finished

At most one operator per robot; an operator stays at least `min_steps` (t_T) once assigned, and
while its robot is in a hard reset; a robot in a constraint violation needs `hard_reset_steps`
(t_R) of operator time; operators already on a robot that is still a priority stay there; those
not needed go idle.
"""

from __future__ import annotations

import numpy as np


class FleetAssigner:
    def __init__(self, humans: int, robots: int, min_steps: int = 5, hard_reset_steps: int = 5):
        self.humans, self.robots, self.min_steps, self.hard_reset_steps = humans, robots, min_steps, hard_reset_steps
        self.robot_of = np.full(humans, -1)  # operator -> robot (-1: idle)
        self.timer = np.zeros(humans, int)  # steps on the current robot
        self.reset_left = np.zeros(robots, int)  # >0: in a hard reset, steps of operator time still needed

    def human_of(self) -> np.ndarray:
        """robot -> operator (-1: none)."""
        out = np.full(self.robots, -1)
        busy = self.robot_of >= 0
        out[self.robot_of[busy]] = np.flatnonzero(busy)
        return out

    def assign(self, order: list[int]) -> int:
        """Applies the rules to a priority order; returns the number of context switches (robots whose
        operator changed)."""
        before = self.human_of()
        locked = {h for h in range(self.humans) if self.robot_of[h] >= 0
                  and (self.timer[h] < self.min_steps or self.reset_left[self.robot_of[h]] > 0)}
        served = [int(self.robot_of[h]) for h in sorted(locked)]
        for robot in order:
            if len(served) >= self.humans:
                break
            if robot not in served:
                served.append(int(robot))
        staying = {h for h in range(self.humans) if self.robot_of[h] in served}
        free = [h for h in range(self.humans) if h not in staying]
        covered = {int(self.robot_of[h]) for h in staying}
        for h in free:
            self.robot_of[h], self.timer[h] = -1, 0
        for robot in served:
            if robot not in covered and free:
                h = free.pop(0)
                self.robot_of[h], self.timer[h] = robot, 0
        return int((before != self.human_of()).sum())

    def step(self, constraint: np.ndarray) -> list[int]:
        """One fleet step of operator time; returns robots whose hard reset is done (reset them)."""
        done = []
        for h in np.flatnonzero(self.robot_of >= 0):
            robot = self.robot_of[h]
            self.timer[h] += 1
            if constraint[robot] and self.reset_left[robot] == 0:
                self.reset_left[robot] = self.hard_reset_steps
            if self.reset_left[robot] > 0:
                self.reset_left[robot] -= 1
                if self.reset_left[robot] == 0:
                    done.append(int(robot))
        return done
