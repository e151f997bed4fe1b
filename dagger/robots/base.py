"""The robot a RobotWorker drives, in LeRobot's shape (connect, get_observation, send_action, disconnect) plus what a
learning loop needs: a new episode (reset), holding still (hold) and a health report.

    robot = SimRobot(make_task("reach")); robot.connect()
    obs = robot.reset(seed=0)
    robot.send_action(action); obs = robot.get_observation()      # obs.state, obs.reward, obs.done, ...
    robot.hold()                                                  # a control period without a command

A robot also carries its task's description (obs_dim, act_dim, dt, image_shape, instruction) and its scripted expert
where one exists (a simulator's; a real robot has none), so policies, gates and scripted operators take it where they
took a task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dagger.core import StepResult, Task, TaskSpec, camera_image


class RobotLate(TimeoutError):
    """No observation came within the control deadline (a remote robot): the worker holds this period."""


@dataclass
class Observation(StepResult):
    """What a robot reports after a control period: the state (StepResult.obs) and its signals, the action it
    executed, the camera image on an image task, and the scripted expert's action where the robot has an expert.
    A step that is not `fresh` happened, but from a state the worker did not see: it is not a sample to learn from."""

    action: np.ndarray | None = None  # the command as executed (clipped), None after a reset
    image: np.ndarray | None = None
    expert: np.ndarray | None = None
    fresh: bool = True  # the command was executed from the state its sender saw (not after a repeat of another)


class Robot(TaskSpec, Protocol):
    paced: bool  # get_observation waits for the robot's own clock (a real robot); else the worker keeps time
    horizon: int  # the episode's time limit in steps; 0: not known (a robot agent's welcome does not say)

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def reset(self, seed: int) -> Observation: ...

    def send_action(self, action: np.ndarray) -> np.ndarray: ...  # the action as the robot will execute it

    def get_observation(self) -> Observation: ...

    def hold(self) -> None: ...

    def health(self) -> dict[str, Any]: ...

    def expert_action(self) -> np.ndarray: ...

    def clip(self, action: np.ndarray) -> np.ndarray: ...

    def render(self) -> np.ndarray: ...


class SimRobot:
    """A simulated task as a robot in this process: a command moves it one control period at once, and between
    commands it stands still (the simulation does not advance)."""

    paced = False

    def __init__(self, task: Task):
        self.task = task
        self.name, self.instruction = task.name, task.instruction
        self.obs_dim, self.act_dim, self.image_shape = task.obs_dim, task.act_dim, task.image_shape
        self.dt, self.ends_on_success, self.horizon = task.dt, task.ends_on_success, task.horizon
        self.last: Observation | None = None
        self.connected = False
        self.camera_ms = 0.0  # the camera's cost per observation (moving average), on an image task
        self.steps = self.holds = 0

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    def reset(self, seed: int) -> Observation:
        self.last = self._observe(StepResult(self.task.reset(seed=seed), 0.0, False, False, False), None)
        return self.last

    def send_action(self, action: np.ndarray) -> np.ndarray:
        executed = self.task.clip(action)
        self.last = self._observe(self.task.step(executed), executed)
        self.steps += 1
        return executed

    def get_observation(self) -> Observation:
        if self.last is None:
            raise RuntimeError(f"robot {self.name}: reset() starts an episode before the first observation")
        return self.last

    def hold(self) -> None:
        self.holds += 1

    def health(self) -> dict[str, Any]:
        return {"connected": self.connected, "steps": self.steps, "holds": self.holds,
                "camera_ms": round(self.camera_ms, 3)}

    def expert_action(self) -> np.ndarray:
        return self.task.expert_action()

    def clip(self, action: np.ndarray) -> np.ndarray:
        return self.task.clip(action)

    def render(self) -> np.ndarray:
        return self.task.render()

    def _observe(self, res: StepResult, action: np.ndarray | None) -> Observation:
        """The observation after a step; the camera is read (and timed) unless the episode is over."""
        image = None
        if not res.done and self.image_shape is not None:
            began = time.perf_counter()
            image = camera_image(self.task)
            self.camera_ms += 0.05 * (1000 * (time.perf_counter() - began) - self.camera_ms)
        return Observation(res.obs, res.reward, res.success, res.constraint, res.done, action, image)
