"""What every input device answers with, and what a simulated operator needs of a task.

    reading = device.read()
    if reading.deadman and reading.action is not None: apply(reading.action)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class DeviceReading:
    """One reading of an operator's input device."""

    action: np.ndarray | None  # in the task's action space; None while the operator has not acted
    takeover: bool = False
    hand_back: bool = False
    deadman: bool = True  # held = the operator is engaged
    e_stop: bool = False  # stop every robot this operator controls
    skip: bool = False  # decline the robot offered to this operator (it goes back to the queue)
    mark: str = ""  # "success" / "failure" when the operator labels the episode
    age_s: float = 0.0  # how old the underlying report is


class TeleopDevice(Protocol):
    """Human (or simulated-human) input.

        reading = device.read()
    """

    def read(self) -> DeviceReading: ...


class Expert(Protocol):
    """A scripted expert, as the simulated operator reads it (every dagger Task is one).

        action = expert.clip(expert.expert_action() + noise)
    """

    act_dim: int

    def expert_action(self) -> np.ndarray: ...

    def clip(self, action: np.ndarray) -> np.ndarray: ...
