"""The step/segment schema: what crosses the wire and what the log stores.

A segment is a run of consecutive steps of one robot with one controller, closed at a
takeover, a hand-back, an episode end or a size bound.

    seg = Segment.empty(robot=0, seq=0, episode=3, controller="policy", obs_dim=10, act_dim=2)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from numbers import Integral, Real

import numpy as np

POLICY = "policy"
DEMO = "demo"

#: per-step arrays and their dtypes; 2-D ones have a trailing feature axis.
STEP_FIELDS: dict[str, np.dtype] = {
    "obs": np.dtype(np.float32),  # observation the action was taken in, [T, obs_dim]
    "action": np.dtype(np.float32),  # executed action, [T, act_dim]
    "policy_action": np.dtype(np.float32),  # the policy's mean action in that state, [T, act_dim]
    "version": np.dtype(np.int64),  # weights version that produced policy_action
    "spread": np.dtype(np.float32),  # ensemble spread (gate score)
    "threshold": np.dtype(np.float32),  # gate threshold at that moment
    "reward": np.dtype(np.float32),
    "success": np.dtype(np.bool_),  # task reports success at this step
    "constraint": np.dtype(np.bool_),  # task reports a constraint violation at this step
    "done": np.dtype(np.bool_),  # the episode ended with this step
    "step": np.dtype(np.int64),  # step index within the episode
    "t_wall": np.dtype(np.float64),  # wall-clock time of the step (unix seconds)
    "image": np.dtype(np.uint8),  # the policy's camera image, [T, H, W, 3] ([T, 0, 0, 3] on a state-only task)
}


#: step fields with a trailing feature axis; the others are one value per step (but the image).
FEATURE_FIELDS = ("obs", "action", "policy_action")
NO_IMAGE = np.zeros((0, 0, 3), np.uint8)  # the image of a step of a state-only task

#: the scalar (per-segment) fields and the Python type each must have.
META_FIELDS: dict[str, type] = {
    "robot": int, "seq": int, "episode": int, "controller": str, "reason": str, "t_closed": float,
}


OPERATOR_PREFIX = "operator:"
NUDGE_PREFIX = "nudge:"
"""an operator's nudges (teleop_devices.nudge): the policy acted and the operator's residual was added; the step's
action is what executed (policy + residual), its policy_action the policy's own, so the residual is their difference"""


def is_intervention(controller: str) -> bool:
    """True for an operator's corrections, taken over or nudged (not for the starting demonstrations)."""
    return controller.startswith((OPERATOR_PREFIX, NUDGE_PREFIX))


def is_nudge(controller: str) -> bool:
    return controller.startswith(NUDGE_PREFIX)


def operator_of(controller: str) -> int:
    """The id of the operator who took over or nudged, -1 where none did."""
    for prefix in (OPERATOR_PREFIX, NUDGE_PREFIX):
        if controller.startswith(prefix):
            return int(controller[len(prefix):])
    return -1


def is_human(controller: str) -> bool:
    """True for an operator's (or a demonstrator's) actions."""
    return controller != POLICY


@dataclass
class Segment:
    """Consecutive steps of one robot under one controller."""

    robot: int
    seq: int  # per-robot sequence number, unique within a run
    episode: int
    controller: str  # "policy", "operator:<id>", "nudge:<id>" or "demo"
    reason: str = ""  # why it closed: takeover, handback, episode_end, size, stop
    t_closed: float = 0.0
    obs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    action: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    policy_action: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    version: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    spread: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    threshold: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    reward: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    success: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))
    constraint: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))
    step: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    t_wall: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    image: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))

    @property
    def key(self) -> str:
        return f"{self.robot}:{self.seq}"

    @property
    def human(self) -> bool:
        return is_human(self.controller)

    def __len__(self) -> int:
        return int(self.version.shape[0])

    @staticmethod
    def empty(robot: int, seq: int, episode: int, controller: str, obs_dim: int, act_dim: int) -> Segment:
        """A segment with no steps yet, its feature axes sized."""
        return Segment(robot, seq, episode, controller,
                       obs=np.zeros((0, obs_dim), np.float32),
                       action=np.zeros((0, act_dim), np.float32),
                       policy_action=np.zeros((0, act_dim), np.float32))

    @staticmethod
    def from_steps(robot: int, seq: int, episode: int, controller: str, reason: str,
                   t_closed: float, steps: list[dict[str, object]]) -> Segment:
        """Builds a segment from a list of per-step dicts keyed by STEP_FIELDS ("image" only on image tasks)."""
        arrays = {
            name: np.asarray([s.get(name, NO_IMAGE) if name == "image" else s[name] for s in steps], dtype=dtype)
            for name, dtype in STEP_FIELDS.items()
        }
        if not steps:  # no steps: no feature width to infer, keep the feature axis anyway
            for name in FEATURE_FIELDS:
                arrays[name] = arrays[name].reshape(0, 0)
            arrays["image"] = arrays["image"].reshape(0, *NO_IMAGE.shape)
        return Segment(robot, seq, episode, controller, reason, t_closed, **arrays)

    def meta(self) -> dict[str, object]:
        """The scalar fields, as plain Python values."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in STEP_FIELDS}

    def event(self) -> dict[str, object]:
        """The `segment` event that reports this segment in a run's events.jsonl (without "t")."""
        version, n = self.version, len(self)
        if n and version[0] == version[-1] and (version == version[0]).all():  # one weights version: no sort
            versions = [[int(version[0]), n]]
        else:
            versions = [[int(v), int(c)] for v, c in zip(*np.unique(version, return_counts=True), strict=True)]
        return {"ev": "segment", "robot": int(self.robot), "seq": int(self.seq), "episode": int(self.episode),
                "controller": self.controller, "reason": self.reason, "steps": len(self),
                "t_start": float(self.t_wall[0]) if len(self) else float(self.t_closed),
                "t_end": float(self.t_wall[-1]) if len(self) else float(self.t_closed), "versions": versions}

    def validate(self) -> None:
        """Raises ValueError naming the first field whose type, dtype, rank or length is wrong."""
        for name, kind in META_FIELDS.items():
            value = getattr(self, name)
            if type(value) is kind:  # the common case, decided without the numbers ABCs (bool is not int here)
                continue
            ok = (isinstance(value, Integral) if kind is int else
                  isinstance(value, Real) if kind is float else isinstance(value, kind))
            if not ok or isinstance(value, (bool, np.bool_)):
                raise ValueError(f"segment {self.key}: field {name!r} is {type(value).__name__}, "
                                 f"expected {kind.__name__}")
        if not self.controller:
            raise ValueError(f"segment {self.key}: field 'controller' is empty")
        for name, dtype, ndim in _STEP_CHECKS:
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
                got = getattr(arr, "dtype", type(arr).__name__)
                raise ValueError(f"segment {self.key}: field {name!r} has dtype {got}, expected {dtype}")
            if arr.ndim != ndim:
                raise ValueError(f"segment {self.key}: field {name!r} has shape {arr.shape}, "
                                 f"expected {ndim}-D")
        if self.image.shape[3] != 3:
            raise ValueError(f"segment {self.key}: field 'image' has shape {self.image.shape}, expected 3 channels")
        n = len(self)
        for name in STEP_FIELDS:
            arr = getattr(self, name)
            if arr.shape[0] != n:
                raise ValueError(f"segment {self.key}: field {name!r} has {arr.shape[0]} steps, expected {n}")


#: (name, dtype, rank) of each step field, as Segment.validate checks them
_STEP_CHECKS = tuple((name, dtype, 2 if name in FEATURE_FIELDS else 4 if name == "image" else 1)
                     for name, dtype in STEP_FIELDS.items())
