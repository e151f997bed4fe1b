"""A human operator's device as the robot sees it: readings streamed from the operator station.

The station reads the device on its own (main) thread and sends each reading to the robot's
mailbox; the robot uses the newest one. The safety rules live here, so every robot applies them
the same way: a reading that is too old, a lost device, a released deadman or an e-stop stops the
robot (it holds) instead of handing control back to the policy. A device that gives a pose (a leader arm's
`absolute` reading) takes over only once that pose is within safety.align_tolerance of the follower's command.

    link = RemoteOperator(operator_id=0, safety=SafetyConfig(), act_dim=2)
    link.push({"action": [0.1, 0.0], "deadman": True, "t_report": time.time()})
    reason = link.stop_reason(reading, now)  # None or why to stop: stale_input, device_lost, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from teleop_devices.reading import Command, DeviceReading

SAFETY_STOPS = ("stale_input", "device_lost", "deadman_released", "e_stop")
"""the safety rules' stops: the robot holds, its operator is freed and it asks again"""


def too_old(age_s: float, link_s: float, max_age_s: float) -> bool:
    """A reading that stops the robot (stale_input): older than max_age_s, on top of the link's own one-way delay (a
    remote page's), which is allowed up to max_age_s."""
    return age_s > max_age_s + min(link_s, max_age_s)


@dataclass
class SafetyConfig:
    max_age_s: float = 0.1
    """a human's reading older than this stops the robot (stale_input); a remote page's measured one-way network
    delay is allowed on top, up to as much again"""
    ramp_s: float = 0.2
    """bumpless handover: the command ramps from the policy's last action to the operator's over this time"""
    claim_timeout_s: float = 10.0
    """an offered robot the operator has not taken over by then goes back to the queue (not_claimed)"""
    align_tolerance: float = 0.1
    """a pose-giving device (a leader arm) takes over only once every action dim is within this of the follower's
    command (rad for joints); until then the robot holds"""


class RemoteOperator:
    def __init__(self, operator_id: int, safety: SafetyConfig, act_dim: int, offered_at: float = 0.0):
        self.operator_id, self.safety, self.act_dim, self.offered_at = operator_id, safety, act_dim, offered_at
        self.latest: dict[str, Any] | None = None
        self.lost = False
        self.engaged_at: float | None = None  # robot time of the first applied human action
        self.ramp_from = np.zeros(act_dim)  # the command when the human took over
        self.last_mark = ""
        self.t_input: float | None = None  # station time of the operator's takeover input
        self.align_gap: np.ndarray | None = None  # a pose-giving device's pose minus the follower's command, per
        # action dim, while it is not aligned (move the leader by minus this); None otherwise

    def push(self, reading: dict[str, Any]) -> None:
        """A reading from the station: action (list or None), buttons, t_report (when the device reported)."""
        self.latest = reading
        if self.engaged_at is None:  # until the operator engages: the station's time of the press now held (or none)
            self.t_input = float(reading.get("t_input", reading["t_report"])) if reading.get("takeover") else None

    def device_lost(self) -> None:
        self.lost = True

    def read(self, now: float) -> DeviceReading:
        r = self.latest
        if r is None:
            return DeviceReading(action=None, deadman=False, age_s=0.0)
        action = None if r.get("action") is None else np.asarray(r["action"], float)[: self.act_dim]
        return DeviceReading(action=action, takeover=bool(r.get("takeover")), hand_back=bool(r.get("hand_back")),
                             deadman=bool(r.get("deadman")), e_stop=bool(r.get("e_stop")), skip=bool(r.get("skip")),
                             mark=str(r.get("mark", "")), absolute=bool(r.get("absolute")),
                             age_s=now - float(r["t_report"]), link_s=float(r.get("link_s", 0.0)))

    def stop_reason(self, reading: DeviceReading, now: float) -> str | None:
        """Why the robot must stop now, or None. Before the operator engages, nothing is stale."""
        if self.lost:
            return "device_lost"
        if reading.e_stop:
            return "e_stop"
        if self.engaged_at is None and not reading.deadman:
            if reading.skip:
                return "skipped"
            if now - self.offered_at > self.safety.claim_timeout_s:
                return "not_claimed"
            return None
        if self.latest is None:
            return None
        if too_old(reading.age_s, reading.link_s, self.safety.max_age_s):
            return "stale_input"
        if not reading.deadman and not reading.hand_back:
            return "deadman_released"
        return None

    def drive(self, last_action: np.ndarray, now: float) -> Command:
        """This period's command (OperatorLink) under the safety rules: a stop, a hold until the operator engages
        (deadman held and an action), else the ramped action."""
        reading = self.read(now)
        reason = self.stop_reason(reading, now)
        if reason is not None:
            return Command(stop=reason)
        if self.engaged_at is None and reading.absolute and not self.aligned(reading, last_action):
            return Command(stop="not_claimed") if now - self.offered_at > self.safety.claim_timeout_s else Command()
        if reading.action is None or not reading.deadman:
            return Command()
        mark = reading.mark if self.new_mark(reading) else ""
        return Command(self.command(reading.action, last_action, now), reading.action, hand_back=reading.hand_back,
                       mark=mark, t_input=self.t_input if self.t_input is not None else now)

    def aligned(self, reading: DeviceReading, follower: np.ndarray) -> bool:
        """A pose (a leader arm's) takes over only where the follower is: never a jump to the leader's pose (GELLO's
        start-pose check). Until then `align_gap` says how far off it is."""
        if reading.action is None:
            return False
        gap = reading.action - np.asarray(follower, float)
        self.align_gap = None if np.abs(gap).max() <= self.safety.align_tolerance else gap
        return self.align_gap is None

    def new_mark(self, reading: DeviceReading) -> bool:
        """True when the operator has just pressed a mark button (a held button marks once)."""
        fresh = bool(reading.mark) and reading.mark != self.last_mark
        self.last_mark = reading.mark
        return fresh

    def command(self, human: np.ndarray, policy_last: np.ndarray, now: float) -> np.ndarray:
        """The ramped command: no jump from what the robot was doing (policy_last) when the human took over."""
        if self.engaged_at is None:
            self.engaged_at, self.ramp_from = now, np.array(policy_last, float)
        if self.safety.ramp_s <= 0:
            return human
        alpha = min(1.0, (now - self.engaged_at) / self.safety.ramp_s)
        return self.ramp_from + alpha * (human - self.ramp_from)
