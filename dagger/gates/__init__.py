"""Gates: when a robot asks for help and when control returns to the policy.

    gate = make_gate(GateConfig(name="ensemble", threshold=0.01), seed=0)
    gate.should_request_help(policy_output)

A new gate is one file with one class registered in GATES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagger.core import Gate
from dagger.gates.auto import AutoGate
from dagger.gates.base import BaseGate
from dagger.gates.ensemble import EnsembleGate
from dagger.gates.ensembledagger import EnsembleDAggerGate
from dagger.gates.human import HumanGate
from dagger.gates.never import NeverGate
from dagger.gates.random_gate import RandomGate


@dataclass
class GateConfig:
    name: str = "ensemble"
    """never | random | human | ensemble | auto | ensembledagger"""
    threshold: float = 0.02
    """ensemble spread above which the robot asks for help (auto: the prior until enough states)"""
    alpha: float = 0.1
    """auto: target intervention rate; the threshold is the (1-alpha) quantile of robot-state spread"""
    rate: float = 0.02
    """random: probability per step of asking for help"""
    window: int = 5000
    """auto: how many recent robot-controlled states set the quantile"""
    min_states: int = 25
    """auto: robot-controlled states needed before the quantile replaces the prior"""
    tau: float = 0.05
    """ensembledagger: largest mean squared gap to the expert's action the novice may act with"""
    agree_steps: int = 0
    """hand back after the policy agreed with the operator this many steps in a row (0: off)"""
    agree_tol: float = 0.05
    """agreement: mean squared gap between policy and operator actions below this"""


GATES: dict[str, Callable[[GateConfig, int], BaseGate]] = {
    "never": NeverGate,
    "random": RandomGate,
    "human": HumanGate,
    "ensemble": EnsembleGate,
    "auto": AutoGate,
    "ensembledagger": EnsembleDAggerGate,
}


def make_gate(config: GateConfig, seed: int = 0) -> Gate:
    if config.name not in GATES:
        raise ValueError(f"unknown gate {config.name!r}; choose one of {sorted(GATES)}")
    return GATES[config.name](config, seed)


__all__ = ["GATES", "GateConfig", "make_gate", "AutoGate", "BaseGate"]
