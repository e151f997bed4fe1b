"""The robot bridge's messages: what a RobotWorker (the controller) and a robot agent say to each other over a
dagger.wire Session, and the checks each side runs on what it reads. A message that fails a check is a BadFrame
naming the field; the reader counts it, hangs up and the robot holds.

controller -> agent: hello {nonce, client_nonce} | ping {t0} | offset {offset} | reset {seed, episode}
                     | act {action} | hold | bye
agent -> controller: challenge {nonce} | welcome {client_nonce, spec, episode, obs} | pong {t0, health} | obs {...}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dagger.robots.base import Observation
from dagger.wire import BadFrame

TO_AGENT = ("hello", "ping", "offset", "reset", "act", "hold", "bye")
TO_CONTROLLER = ("challenge", "welcome", "pong", "obs")
SPEC_KEYS = ("name", "instruction", "obs_dim", "act_dim", "dt", "period", "image_shape", "ends_on_success",
             "expert")


def kind(message: dict, kinds: tuple[str, ...]) -> str:
    """The message's kind, if this side takes it."""
    value = message.get("kind")
    if not isinstance(value, str) or value not in kinds:  # `in` on an array compares elementwise, then raises
        raise BadFrame(f"field 'kind': {str(value)[:40]!r} is not one of {', '.join(kinds)}")
    return str(value)


def number(message: dict, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value)
                                                                             and low <= value <= high):
        raise BadFrame(f"field {key!r}: expected a finite number in [{low}, {high}], got {str(value)[:40]!r}")
    return float(value)


def integer(message: dict, key: str, low: int = 0) -> int:
    value = message.get(key)
    if type(value) is not int or value < low:
        raise BadFrame(f"field {key!r}: expected an integer >= {low}, got {str(value)[:40]!r}")
    return value


def flag(message: dict, key: str) -> bool:
    value = message.get(key)
    if type(value) is not bool:
        raise BadFrame(f"field {key!r}: expected true or false, got {str(value)[:40]!r}")
    return value


def blob(message: dict, key: str, size: int = 16) -> bytes:
    value = message.get(key)
    if type(value) is not bytes or len(value) != size:
        raise BadFrame(f"field {key!r}: expected {size} bytes, got {str(value)[:40]!r}")
    return value


def vector(message: dict, key: str, size: int) -> np.ndarray:
    """A finite numeric vector of `size` entries (an array, or a list of numbers); float64."""
    value = message.get(key)
    if isinstance(value, list) and all(type(v) in (int, float) for v in value):
        value = np.asarray(value, dtype=np.float64)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf" or value.shape != (size,):
        shape = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        raise BadFrame(f"field {key!r}: expected {size} numbers, got {shape}")
    if not np.all(np.isfinite(value)):
        raise BadFrame(f"field {key!r}: not finite ({value.tolist()})")
    return value.astype(np.float64, copy=False)


def array(message: dict, key: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """An array of exactly this shape and dtype (the state as the robot measured it, a camera image)."""
    value = message.get(key)
    if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != np.dtype(dtype):
        got = f"{value.dtype}{list(value.shape)}" if isinstance(value, np.ndarray) else type(value).__name__
        raise BadFrame(f"field {key!r}: expected a {dtype} array of shape {list(shape)}, got {got}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise BadFrame(f"field {key!r}: not finite")
    return value


def spec_of(robot: Any, period: float) -> dict:
    """A robot's description as the agent sends it (the controller makes its policy from it)."""
    return {"name": robot.name, "instruction": robot.instruction, "obs_dim": robot.obs_dim, "act_dim": robot.act_dim,
            "dt": robot.dt, "period": period, "ends_on_success": robot.ends_on_success,
            "image_shape": None if robot.image_shape is None else list(robot.image_shape),
            "expert": hasattr(robot, "expert_action")}


def read_spec(message: dict) -> dict:
    spec = message.get("spec")
    if not isinstance(spec, dict) or set(spec) != set(SPEC_KEYS):
        raise BadFrame(f"field 'spec': expected a map of {', '.join(SPEC_KEYS)}")
    image = spec["image_shape"]
    if image is not None and not (isinstance(image, list) and len(image) == 3
                                  and all(type(v) is int and 0 < v <= 4096 for v in image)):
        raise BadFrame(f"field 'spec.image_shape': expected [H, W, 3] or nothing, got {str(image)[:40]!r}")
    if not isinstance(spec["name"], str) or not isinstance(spec["instruction"], str):
        raise BadFrame("field 'spec.name' / 'spec.instruction': expected text")
    return {"name": spec["name"], "instruction": spec["instruction"],
            "obs_dim": integer(spec, "obs_dim", 1), "act_dim": integer(spec, "act_dim", 1),
            "dt": number(spec, "dt", 1e-4, 10.0), "period": number(spec, "period", 1e-4, 10.0),
            "image_shape": None if image is None else tuple(image),
            "ends_on_success": flag(spec, "ends_on_success"), "expert": flag(spec, "expert")}


def obs_message(obs: Observation, expert: np.ndarray | None, **meta: Any) -> dict:
    """meta: episode, tick (this period), cmd (the command executed last), held, state_tick (the period whose motion
    gave this state), origin (the state_tick command `cmd` was first executed from)."""
    return {"kind": "obs", **meta,
            "state": np.asarray(obs.obs, np.float32), "reward": float(obs.reward), "success": bool(obs.success),
            "constraint": bool(obs.constraint), "done": bool(obs.done),
            "action": None if obs.action is None else np.asarray(obs.action, np.float64),
            "image": obs.image, "expert": None if expert is None else np.asarray(expert, np.float64)}


def read_obs(message: dict, spec: dict) -> tuple[Observation, dict]:
    """An observation message as an Observation, and its bookkeeping (episode, tick, cmd, held)."""
    meta = {"episode": integer(message, "episode", -1), "tick": integer(message, "tick"),
            "cmd": integer(message, "cmd"), "held": flag(message, "held"),
            "state_tick": integer(message, "state_tick", -1), "origin": integer(message, "origin", -1)}
    state = array(message, "state", (spec["obs_dim"],), "float32")
    action = None if message.get("action") is None else vector(message, "action", spec["act_dim"])
    image = None
    if spec["image_shape"] is not None and message.get("image") is not None:
        image = array(message, "image", spec["image_shape"], "uint8")
    expert = None
    if spec["expert"] and message.get("expert") is not None:
        expert = vector(message, "expert", spec["act_dim"])
    obs = Observation(state, number(message, "reward"), flag(message, "success"), flag(message, "constraint"),
                      flag(message, "done"), action, image, expert)
    return obs, meta
