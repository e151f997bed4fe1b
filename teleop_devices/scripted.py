"""A simulated operator: the task's expert with human traits — a reaction-time distribution, an
extra cost to re-orient to a different robot, action noise, fatigue, a limited span of attention and
a takeover style.

It runs beside the robot it controls (it reads the simulator's true state, as a person reads the
scene), and answers `read()` like any TeleopDevice:

    op = ScriptedOperator(OperatorConfig(), task, operator_id=0, seed=1)
    reading = op.read()      # action is None until the reaction time has passed

The trait math (`HumanTraits`, `Fatigue`) works on one operator or on arrays of them: the live loop's
supervisor and operators and the fleet benchmark (dagger/app/bench.py) share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from teleop_devices.reading import Command, DeviceReading, Expert

OPERATOR_KINDS = ("scripted", "gamepad", "spacemouse", "keyboard", "leader", "browser")
OPERATOR_STYLES = ("brief", "until_done")
OPERATOR_MODES = ("takeover", "nudge")


@dataclass
class HumanTraits:
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

    def __post_init__(self) -> None:
        for f in fields(HumanTraits):
            if not getattr(self, f.name) >= 0:
                raise ValueError(f"{f.name} must not be negative, got {getattr(self, f.name)!r}")

    def strain(self, worked_s: float | np.ndarray) -> np.ndarray:
        """Fatigue factor (1 = rested) on reaction time and noise after `worked_s` of continuous work."""
        return 1.0 + self.fatigue_per_min * np.asarray(worked_s, float) / 60.0

    def noise_at(self, strain: float | np.ndarray) -> np.ndarray:
        return self.noise * np.asarray(strain, float)

    def sample_reaction(self, rng: np.random.Generator, strain: float | np.ndarray,
                        switching: bool | np.ndarray) -> np.ndarray:
        """Seconds from assignment to the first action, one per operator: log-normal with the configured mean
        and spread, scaled by strain, plus the switch cost for a robot other than the operator's last one."""
        strain, switching = np.broadcast_arrays(np.asarray(strain, float), np.asarray(switching, bool))
        mean, sd = self.reaction_s * strain, self.reaction_sd_s * strain
        reaction = np.zeros(mean.shape)
        drawn = mean > 0
        sigma2 = np.log(1.0 + (sd[drawn] / mean[drawn]) ** 2)
        reaction[drawn] = rng.lognormal(np.log(mean[drawn]) - sigma2 / 2, np.sqrt(sigma2))
        return reaction + np.where(switching, self.switch_s, 0.0)


def reaction_steps(reaction_s: float | np.ndarray, dt: float) -> np.ndarray:
    """Whole steps of `dt` an operator spends reacting: it acts on the first step after that time."""
    return np.ceil(np.asarray(reaction_s, float) / dt - 1e-9).astype(int)


class Fatigue:
    """Continuous work of M operators on one clock (seconds): strain grows while an operator works and resets
    once it has been idle `rest_s`. A break shorter than that counts as work.

        fatigue = Fatigue(traits, operators=10, now=0.0)
        strain = fatigue.assign(ops, now)      # operators (re)assigned: their strain now
        fatigue.free(ops, now)                 # operators gone idle
    """

    def __init__(self, traits: HumanTraits, operators: int, now: float):
        self.traits = traits
        self.work_started = np.full(operators, float(now))  # start of continuous work
        self.free_since = np.full(operators, float(now))  # when the operator last became idle; NaN while working

    def assign(self, ops: int | np.ndarray, now: float) -> np.ndarray:
        rested = now - self.free_since[ops] >= self.traits.rest_s  # NaN (working) compares False
        self.work_started[ops] = np.where(rested, now, self.work_started[ops])
        self.free_since[ops] = np.nan
        return self.traits.strain(now - self.work_started[ops])

    def free(self, ops: int | np.ndarray, now: float) -> None:
        self.free_since[ops] = now


@dataclass
class OperatorConfig(HumanTraits):
    kinds: list[str] = field(default_factory=lambda: ["scripted"])
    """input of each operator, in order and repeated to cover all: scripted | gamepad | spacemouse | keyboard |
    leader (a leader arm: leader.*)"""
    attention: int = 1
    """how many robots one operator controls at the same time"""
    style: str = "brief"
    """brief: hand back after correction_steps; until_done: keep control to the episode's end"""
    correction_steps: int = 10
    """brief style: the operator hands back after this many steps of control (or at the episode's end)"""
    intervene_tol: float = 0.1
    """human gate: the operator takes over when the policy's mean squared action error is above this"""
    mode: str = "takeover"
    """takeover: the operator's action replaces the policy's; nudge: it is added to the policy's as a bounded residual
    while the policy keeps acting (teleop_devices.nudge; a leader arm always takes over)"""
    nudge_bound: float = 0.3
    """nudge mode: the residual's largest magnitude per action dim, as a fraction of that dim's half range"""
    nudge_to_takeover_s: float = 0.5
    """nudge mode: a push beyond the bound (any dim) this long becomes a takeover (a simulated operator: task time)"""


class ScriptedOperator:
    """The expert in the loop, as a TeleopDevice."""

    align_gap: np.ndarray | None = None  # it acts where the robot is: nothing to align

    def __init__(self, config: OperatorConfig, task: Expert, operator_id: int, seed: int, dt: float,
                 strain: float = 1.0, switching: bool = False):
        """strain: fatigue factor (1 = rested) on reaction time and noise; switching: a robot other than
        the operator's last one."""
        self.config = config
        self.task = task
        self.operator_id = operator_id
        self.rng = np.random.default_rng(seed)
        self.reaction_s = float(config.sample_reaction(self.rng, strain, switching))
        self.reaction_ticks = int(reaction_steps(self.reaction_s, dt))
        self.noise = float(config.noise_at(strain))
        self.ticks = 0
        self.actions = 0

    def read(self) -> DeviceReading:
        self.ticks += 1
        if self.ticks <= self.reaction_ticks:
            return DeviceReading(action=None)
        noise = self.rng.normal(0.0, self.noise, self.task.act_dim)
        self.actions += 1
        action = self.task.clip(self.task.expert_action() + noise)
        brief = self.config.style == "brief"
        return DeviceReading(action=action, hand_back=brief and self.actions >= self.config.correction_steps)

    def push(self, reading: dict) -> None:
        """A simulated operator reads the task itself: streamed readings are not its (OperatorLink)."""

    def device_lost(self) -> None:
        """A simulated operator has no device to lose (OperatorLink)."""

    def drive(self, last_action: np.ndarray, now: float) -> Command:
        """This period's command (OperatorLink): the noisy expert once the reaction time has passed, else hold."""
        reading = self.read()
        if reading.action is None:
            return Command()
        return Command(reading.action, reading.action, hand_back=reading.hand_back, t_input=now)

    def wants_takeover(self, policy_action: np.ndarray) -> bool:
        """HG-DAgger: a watching operator steps in when the robot's action is clearly wrong."""
        gap = float(np.mean((policy_action - self.task.expert_action()) ** 2))
        return gap > self.config.intervene_tol
