"""The Fleet-DAgger allocator interface: per-robot signals in, robots by priority out. The fleet benchmark
and the live loop's help queue (workers/supervisor.py) both use it.

    order = allocator.allocate(signals)     # robot indices, most urgent first; may be shorter than N,
                                            # so operators can stay idle when no robot needs help
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class FleetSignals:
    """What an allocator may look at, one entry per robot."""

    uncertainty: np.ndarray  # ensemble variance normalised by the action box's maximum variance, in [0, 1]
    risk: np.ndarray  # probability of a future constraint violation (the safety critic's estimate)
    td_risk: np.ndarray  # 1 − the goal critic's value: the chance of not reaching the goal (ThriftyDAgger's risk)
    constraint: np.ndarray  # bool: in a constraint-violating state now
    waiting_s: np.ndarray  # how long the robot has waited for help (0 if it has not asked)
    helped: np.ndarray  # bool: an operator is assigned now
    step: int  # fleet step, for warm-up rules
    urgency: np.ndarray  # the gate's score over its threshold when the robot asked (0 if it has not)

    def __len__(self) -> int:
        return len(self.uncertainty)


class FleetAllocator(Protocol):
    def allocate(self, signals: FleetSignals) -> list[int]: ...


def ranked(keys: Sequence[tuple[float, ...]], rng: np.random.Generator) -> list[int]:
    """Indices by descending key, random tie-break (as the IFL benchmark breaks ties)."""
    noise = rng.random(len(keys))
    return sorted(range(len(keys)), key=lambda i: (*keys[i], noise[i]), reverse=True)
