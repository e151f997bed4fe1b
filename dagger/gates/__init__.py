"""Gates: when a robot asks for help and when control returns to the policy.

    gate = make_gate(GateConfig(name="ensemble", threshold=0.01), seed=0)
    gate.should_request_help(policy_output)

A new gate is one file with one class registered in GATES.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagger.core import Gate
from dagger.gates.auto import AutoGate
from dagger.gates.base import BaseGate
from dagger.gates.conformal import ConformalGate
from dagger.gates.ensemble import EnsembleGate
from dagger.gates.ensembledagger import EnsembleDAggerGate
from dagger.gates.human import HumanGate
from dagger.gates.lazy import LazyDAggerGate
from dagger.gates.never import NeverGate
from dagger.gates.random_gate import RandomGate
from dagger.gates.safe import SafeDAggerGate
from dagger.gates.thrifty import ThriftyGate


@dataclass
class GateConfig:
    name: str = "ensemble"
    """never | random | human | ensemble | auto | ensembledagger | thrifty | safe | lazy"""
    threshold: float = 0.0075
    """ensemble spread above which the robot asks for help (auto: the prior until enough states); 0.0075 took the
    fewest labels to 0.95 on Meta-World reach of 0.005 / 0.0075 / 0.01 / 0.02 (README, Label efficiency)"""
    alpha: float = 0.1
    """auto, thrifty: target intervention rate; the threshold is the (1-alpha) quantile of robot-state spread, its
    level corrected by the rate achieved (gate.adapt)"""
    rate: float = 0.02
    """random: probability per step of asking for help"""
    adapt: float = 0.002
    """auto, thrifty: how fast the novelty quantile's level follows the rate achieved (adaptive conformal inference's
    step per state; 0: the plain (1-alpha) quantile, which lags a falling spread)"""
    window: int = 5000
    """auto: how many recent robot-controlled states set the quantile"""
    min_states: int = 25
    """auto: robot-controlled states needed before the quantile replaces the prior"""
    tau: float = 0.05
    """ensembledagger: largest mean squared gap to the expert's action the novice may act with"""
    risk_threshold: float = 0.48
    """thrifty: ask when the goal critic's safety is below this (then its alpha quantile over robot states)"""
    back_safety: float = 0.495
    """thrifty: hand back only when safety is above this (then its median over robot states)"""
    tau_sup: float = 0.008
    """safe, lazy: the policy is 'safe' in a state when its mean squared action gap to the operator's, over
    the action range squared, is below this (LazyDAgger's tau_sup)"""
    tau_auto: float = 0.25
    """lazy: hand back once the gap is below tau_auto * tau_sup (hysteresis)"""
    agree_steps: int = 0
    """hand back after the policy agreed with the operator this many steps in a row (0: off)"""
    agree_tol: float = 0.05
    """agreement: mean squared gap between policy and operator actions below this"""
    overtime: float = 0.75
    """the robot also asks, once an episode, when that many of its time limit's steps have passed without success
    (tasks that end at success and say their limit; 0: never). Where the policy alone fails on Meta-World it creeps
    toward the goal and runs out of time, and its ensemble agrees with itself there"""
    calibrate: str = ""
    """"": the gate's own threshold | conformal: ask when gate.score is above the threshold the evaluator calibrates
    on each scored version's successful rollouts for a false-alarm rate of gate.false_alarm (gate.name=ensemble)"""
    false_alarm: float = 0.05
    """conformal: the share of steps of successful episodes on which the robot may ask for help"""
    score: str = "spread"
    """conformal: what is thresholded: spread (the family's uncertainty) | entropy (of the samples, FIPER) |
    consistency (MMD² between successive steps' samples, Sentinel)"""


GATES: dict[str, type[BaseGate]] = {
    "never": NeverGate,
    "random": RandomGate,
    "human": HumanGate,
    "ensemble": EnsembleGate,
    "auto": AutoGate,
    "ensembledagger": EnsembleDAggerGate,
    "thrifty": ThriftyGate,
    "safe": SafeDAggerGate,
    "lazy": LazyDAggerGate,
}
CALIBRATIONS = ("", "conformal")
"""gate.calibrate: where the threshold comes from ("": the gate's own rule)"""


def make_gate(config: GateConfig, seed: int = 0) -> Gate:
    if config.name not in GATES:
        raise ValueError(f"unknown gate {config.name!r}; choose one of {sorted(GATES)}")
    if config.calibrate not in CALIBRATIONS:
        raise ValueError(f"unknown gate.calibrate {config.calibrate!r}; choose one of {list(CALIBRATIONS)}")
    if config.calibrate == "conformal":
        return ConformalGate(config, seed)
    return GATES[config.name](config, seed)


__all__ = ["CALIBRATIONS", "GATES", "GateConfig", "make_gate", "AutoGate", "BaseGate", "ConformalGate", "ThriftyGate"]
