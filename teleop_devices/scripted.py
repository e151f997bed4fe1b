"""A simulated operator: the task's expert with human traits — a reaction-time distribution, an
extra cost to re-orient to a different robot, action noise, fatigue, a limited span of attention and
a takeover style.

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
OPERATOR_STYLES = ("brief", "until_done")


@dataclass
class OperatorConfig:
    kinds: list[str] = field(default_factory=lambda: ["scripted"])
    """input of each operator, in order and repeated to cover all: scripted | gamepad | spacemouse | keyboard"""
    reaction_s: float = 0.25
    """mean delay (task time) from being assigned a robot to the first action. Simple visual reaction time is
    about 200-250 ms (Woods et al., Front. Hum. Neurosci. 2015, "Factors influencing the latency
    of simple reaction time")"""
    reaction_sd_s: float = 0.05
    """spread of that delay (log-normal); about 40-60 ms within a person in the same study"""
    switch_s: float = 0.0
    """extra delay when the robot differs from the operator's previous one. Choice reaction and re-orienting
    to a new scene take 0.5-1 s more (Hick 1952; Monsell, Trends Cogn. Sci. 2003, "Task switching"):
    configs/human_factors.yaml sets 0.5. 0 by default so the demo's one operator keeps up with 4 robots"""
    noise: float = 0.1
    """std of Gaussian noise added to each expert action (task action units)"""
    fatigue_per_min: float = 0.01
    """reaction time and noise grow by this fraction per minute of continuous work: the vigilance decrement
    shows within 15-30 min (Warm, Parasuraman & Matthews, Hum. Factors 2008)"""
    rest_s: float = 60.0
    """idle time after which an operator counts as rested (fatigue resets)"""
    attention: int = 1
    """how many robots one operator controls at the same time"""
    style: str = "brief"
    """brief: hand back after correction_steps; until_done: keep control to the episode's end"""
    correction_steps: int = 10
    """brief style: the operator hands back after this many steps of control (or at the episode's end)"""
    intervene_tol: float = 0.1
    """human gate: the operator takes over when the policy's mean squared action error is above this"""


class ScriptedOperator:
    """The expert in the loop, as a TeleopDevice."""

    def __init__(self, config: OperatorConfig, task: Task, operator_id: int, seed: int, dt: float,
                 strain: float = 1.0, switching: bool = False):
        """strain: fatigue factor (1 = rested) on reaction time and noise; switching: a robot other than
        the operator's last one."""
        self.config = config
        self.task = task
        self.operator_id = operator_id
        self.rng = np.random.default_rng(seed)
        self.reaction_s = self.sample_reaction(strain, switching)
        self.reaction_ticks = math.ceil(self.reaction_s / dt - 1e-9)
        self.noise = config.noise * strain
        self.ticks = 0
        self.actions = 0

    def sample_reaction(self, strain: float, switching: bool) -> float:
        """Log-normal with the configured mean and spread, scaled by strain, plus the switch cost."""
        mean, sd = self.config.reaction_s * strain, self.config.reaction_sd_s * strain
        if mean <= 0:
            return self.config.switch_s if switching else 0.0
        sigma2 = math.log(1.0 + (sd / mean) ** 2)
        reaction = float(self.rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2)))
        return reaction + (self.config.switch_s if switching else 0.0)

    def read(self) -> DeviceReading:
        self.ticks += 1
        if self.ticks <= self.reaction_ticks:
            return DeviceReading(action=None)
        noise = self.rng.normal(0.0, self.noise, self.task.act_dim)
        self.actions += 1
        action = self.task.clip(self.task.expert_action() + noise)
        brief = self.config.style == "brief"
        return DeviceReading(action=action, hand_back=brief and self.actions >= self.config.correction_steps)

    def wants_takeover(self, policy_action: np.ndarray) -> bool:
        """HG-DAgger: a watching operator steps in when the robot's action is clearly wrong."""
        gap = float(np.mean((policy_action - self.task.expert_action()) ** 2))
        return gap > self.config.intervene_tol
