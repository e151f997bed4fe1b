"""What the console and the dashboard tell a person, in words: why a robot is in the queue, and whether an
operator is only offered a robot or already in control of it.

    reason_text("not_claimed")                       # 'offer timed out'
    with_operator({"controller": "policy"}, 2)       # 'offered to operator 2'
    storage_text(status["storage"])                 # '' while corrections are kept, else what follows and why
"""

from __future__ import annotations

from typing import Any

from buffers.schema import POLICY, is_nudge
from dagger.gates import GATES

REASONS = {"human": "operator stepped in", "random": "random spot check", "safe": "action likely wrong",
           "lazy": "action likely wrong", "ensembledagger": "strays from the expert", "device_lost": "device lost",
           "e_stop": "emergency stop", "skipped": "operator skipped it", "not_claimed": "offer timed out",
           "stale_input": "input went stale", "deadman_released": "deadman released", "overtime": "running out of time"}
"""why a robot is in the queue: the gate that asked, or the safety stop that queued it again"""


def reason_text(reason: str) -> str:
    if reason in REASONS:
        return REASONS[reason]
    return "policy unsure" if reason in GATES else reason.replace("_", " ")  # the uncertainty gates


def in_control(robot: dict[str, Any]) -> bool:
    """An operator controls a robot only once they took over; until then the robot is offered to them."""
    return robot.get("controller", POLICY) != POLICY


def with_operator(robot: dict[str, Any], op: int) -> str:
    if robot.get("align_gap") is not None:  # a leader arm not yet where the robot is: the robot holds for it
        return f"operator {op}: move the leader to the robot's pose ({robot['align_gap']:.2f} off)"
    if not in_control(robot):
        return f"offered to operator {op}"
    return f"operator {op} nudging" if nudging(robot) else f"operator {op} in control"


def nudging(robot: dict[str, Any]) -> bool:
    """The operator in control nudges: the policy acts on, the operator's push added (operator.mode=nudge)."""
    return is_nudge(str(robot.get("controller", POLICY)))


def robot_state(robot: dict[str, Any]) -> str:
    state = str(robot.get("state", "?"))
    return with_operator(robot, robot.get("operator", -1)) if state == "operator" else state


def storage_lines(storage: dict[str, Any]) -> tuple[str, str]:
    """("", "") while an operator's corrections are stored; else what follows (robots hold, when the run stops) and
    why (the buffer's own error)."""
    if storage.get("ok", True):
        return "", ""
    return (f"storage failed {storage['for_s']:.0f} s ago: robots hold and nobody is asked for help; the run stops "
            f"in {storage['stops_in_s']:.0f} s unless storage comes back", storage["error"])


def storage_text(storage: dict[str, Any]) -> str:
    """storage_lines in one line ("" while corrections are stored)."""
    what, why = storage_lines(storage)
    return f"{what} ({why})" if what else ""
