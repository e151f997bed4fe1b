"""The vocabulary of the loop: the few protocols every component implements.

A robot steps a Task with a Policy; a Gate decides when it asks for help; an allocator
(dagger.allocators) orders the robots waiting for help; an operator's TeleopDevice
(teleop_devices.reading) supplies actions while it is in control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

FRAME_SHAPE = (120, 160, 3)  # height, width, RGB of the frame a task renders for people (Task.render)


@dataclass
class PolicyOutput:
    """What the policy says in one state: the action, the family's uncertainty and the samples behind it."""

    action: np.ndarray
    spread: float  # the family's uncertainty, e.g. the members' variance over action dims (ThriftyDAgger's novelty)
    version: int
    safety: float = 1.0  # goal critic's min(q1, q2) at the mean action: higher is safer (ThriftyDAgger)
    p_safe: float = 1.0  # discrepancy classifier: P(the action is within tau_sup of a human's) (SafeDAgger)
    train_gap: float = 0.0  # mean ‖π(o) − a‖² over the training labels (ThriftyDAgger's hand-back bar)
    risk: float = 0.0  # hazard critic's max(q1, q2): the chance of a constraint violation soon (Fleet-DAgger's C.U.R.)
    samples: np.ndarray | None = None  # [S, act_dim]: member predictions / sampled actions in this state (task units)


class PolicyTimeout(TimeoutError):
    """A served policy's answer did not come within the control deadline: the robot holds this step."""


class Stream(Protocol):
    """One robot's episode with a policy (its history, queued actions, random draws): what acting carries on."""

    robot: int

    def reset(self) -> None: ...  # the robot starts a new episode


class Policy(Protocol):
    """An action source with versioned weights, for one robot or a group in one batched call.

        out = policy.act(obs)          # out.action, out.spread
        outs = policy.act_batch(obs_k, None, [policy.stream(r) for r in robots])
        policy.load(weights)           # weights["version"] > policy.version
    """

    version: int

    def act(self, obs: np.ndarray, image: np.ndarray | None = None) -> PolicyOutput: ...  # image: image tasks

    def stream(self, robot: int) -> Any: ...  # a Stream: robot `robot`'s episode, drawing as its own policy would

    def act_batch(self, obs: np.ndarray, images: np.ndarray | None,
                  streams: Sequence[Any]) -> list[PolicyOutput]: ...  # obs [K, obs_dim]; streams[i]: robot i's

    def reset(self) -> None: ...  # a new episode: forget queued actions and past observations

    def load(self, weights: dict) -> None: ...


@dataclass
class StepResult:
    obs: np.ndarray
    reward: float
    success: bool  # the task's goal is met in this state
    constraint: bool  # the state violates a task constraint
    done: bool  # the episode is over (time limit or termination)


class TaskSpec(Protocol):
    """What a task is, as policies see it (a Task, and a robot running one, have these)."""

    name: str
    instruction: str  # what to do, in words (a language-conditioned policy reads it)
    obs_dim: int
    act_dim: int
    dt: float  # seconds of task time per step: the robot's natural control period
    image_shape: tuple[int, int, int] | None  # the policy's camera image (H, W, 3) uint8; None: state only
    ends_on_success: bool  # an episode ends at its first success (else it runs to its time limit)


class Task(TaskSpec, Protocol):
    """A gymnasium-style task with a success signal and a scripted expert.

        obs = task.reset(seed=0)
        res = task.step(task.expert_action())
    """

    horizon: int  # steps after which an episode ends (its time limit)

    def reset(self, seed: int | None = None) -> np.ndarray: ...

    def step(self, action: np.ndarray) -> StepResult: ...

    def expert_action(self) -> np.ndarray: ...

    def clip(self, action: np.ndarray) -> np.ndarray: ...

    def render(self) -> np.ndarray: ...  # an RGB frame for people (the console, videos), uint8 [H, W, 3]

    def render_width(self, width: int) -> None: ...  # render() at least this wide from the first frame, where the
    # renderer can (a MuJoCo camera); a task drawn at a fixed size leaves it to the caller to enlarge


def camera_image(task: Task) -> np.ndarray | None:
    """The policy's camera image [H, W, 3] uint8 in the task's current state; None for a state-only task."""
    return None if task.image_shape is None else task.image()  # type: ignore[attr-defined]


class Gate(Protocol):
    """Decides when a robot asks for help and when control returns to the policy.

        if gate.should_request_help(out): robot.wait_for_operator()
        if gate.should_hand_back(human_action, out): robot.resume_policy()
    """

    name: str
    threshold: float

    needs_expert: bool  # the gate compares the policy with an expert's action (scripted experts only)
    tuned: tuple[str, ...]  # thresholds the supervisor sets fleet-wide from every robot's states (else none)
    human_gated: bool  # an operator watches the robot and decides when to step in (HG-DAgger)

    def should_request_help(self, out: PolicyOutput, expert: np.ndarray | None = None) -> bool: ...

    def overtime(self, step: int, horizon: int) -> bool: ...  # ask because the episode's time runs out

    def new_episode(self) -> None: ...  # the robot starts an episode

    def should_hand_back(self, human_action: np.ndarray, out: PolicyOutput) -> bool: ...


@dataclass(order=True)
class HelpRequest:
    """A robot waiting for an operator, as the supervisor keeps it (allocators see FleetSignals)."""

    robot: int
    t_requested: float
    score: float = 0.0  # the gate's score over its threshold when asking: the urgency (higher = more urgent)
    reason: str = "novelty"  # novelty | human | random
    meta: dict = field(default_factory=dict, compare=False)
