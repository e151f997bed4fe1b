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
    t_read: float | None = None  # when a device that stamps its readings (a browser page, a leader arm's bus) read this
    # input, on the station's clock: the robot ages the reading from then; None: from the station's tick
    t_engaged: float | None = None  # when the current takeover input began (station clock), where the device knows it
    # better than its newest reading does (a browser's burst of messages); None: the reading's own time
    link_s: float = 0.0  # the network's one-way delay the device measured (a browser page): its readings are never
    # fresher than this, so the robot allows it on top of safety.max_age_s (at most max_age_s more)
    absolute: bool = False  # the action is a pose to go to (a leader arm's joints), not a motion: the robot aligns


@dataclass
class Command:
    """What the operator in control of a robot says in one control period (OperatorLink.drive)."""

    action: np.ndarray | None = None  # what the robot executes (ramped at a handover); None: it holds
    label: np.ndarray | None = None  # the operator's own action, which hand-back rules compare with the policy's
    stop: str = ""  # a safety stop (stale_input, device_lost, e_stop, ...): hold, free the operator, ask again
    hand_back: bool = False  # the operator gives control back to the policy
    mark: str = ""  # an episode label the operator has just given ("success" / "failure")
    t_input: float = 0.0  # when the operator's takeover input happened, on the robot's clock


class OperatorLink(Protocol):
    """An operator in control of one robot, as its controller sees it: a simulated person running beside the robot
    (teleop_devices.scripted) or a person's device streamed in (teleop_devices.remote), behind one interface.

        link.push(reading)                        # a streamed reading arrived (a simulated operator needs none)
        command = link.drive(last_action, now)    # this period: act, hold, stop or hand back
    """

    operator_id: int
    align_gap: np.ndarray | None  # a leader arm's pose minus the follower's command while not aligned; else None

    def push(self, reading: dict) -> None: ...

    def device_lost(self) -> None: ...

    def drive(self, last_action: np.ndarray, now: float) -> Command: ...


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
