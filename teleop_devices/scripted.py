"""A simulated operator: the task's expert with a reaction delay and Gaussian action noise.

It runs beside the robot it controls (it reads the simulator's true state, as a person reads the
scene), and answers `read()` like any TeleopDevice:

    op = ScriptedOperator(OperatorConfig(), task, operator_id=0, seed=1)
    reading = op.read()      # action is None until the reaction time has passed
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dagger.core import DeviceReading, Task

OPERATOR_KINDS = ("scripted", "gamepad", "spacemouse", "keyboard")


@dataclass
class OperatorConfig:
    kinds: list[str] = field(default_factory=lambda: ["scripted"])
    """input of each operator, in order and repeated to cover all: scripted | gamepad | spacemouse | keyboard"""
    reaction_s: float = 0.25
    """delay (in task time) from being assigned a robot to the first action. Simple visual reaction time is
    about 200-250 ms (Woods et al., Front. Hum. Neurosci. 2015, "Factors influencing the latency
    of simple reaction time"); choice and re-orienting take longer"""
    noise: float = 0.1
    """std of Gaussian noise added to each expert action (task action units)"""
    attention: int = 1
    """how many robots one operator controls at the same time"""
    correction_steps: int = 10
    """the operator hands back after this many steps of control (or at the episode's end)"""
    intervene_tol: float = 0.1
    """human gate: the operator takes over when the policy's mean squared action error is above this"""


class ScriptedOperator:
    """The expert in the loop, as a TeleopDevice."""

    def __init__(self, config: OperatorConfig, task: Task, operator_id: int, seed: int, dt: float):
        self.config = config
        self.task = task
        self.operator_id = operator_id
        self.rng = np.random.default_rng(seed)
        self.reaction_ticks = math.ceil(config.reaction_s / dt - 1e-9)
        self.ticks = 0
        self.actions = 0

    def read(self) -> DeviceReading:
        self.ticks += 1
        if self.ticks <= self.reaction_ticks:
            return DeviceReading(action=None)
        noise = self.rng.normal(0.0, self.config.noise, self.task.act_dim)
        self.actions += 1
        action = self.task.clip(self.task.expert_action() + noise)
        return DeviceReading(action=action, hand_back=self.actions >= self.config.correction_steps)

    def wants_takeover(self, policy_action: np.ndarray) -> bool:
        """HG-DAgger: a watching operator steps in when the robot's action is clearly wrong."""
        gap = float(np.mean((policy_action - self.task.expert_action()) ** 2))
        return gap > self.config.intervene_tol
