"""Mapping raw device axes to a task action: signed axis names, dead-zone, scale, clipping.

    action = map_axes({"leftx": 0.5, "lefty": -0.2}, ["leftx", "-lefty"], deadzone=0.1, scale=1.0)
"""

from __future__ import annotations

import numpy as np


def apply_deadzone(value: float, deadzone: float) -> float:
    """0 inside the dead-zone, then rescaled so the output still reaches ±1 at full deflection."""
    magnitude = abs(value)
    if magnitude <= deadzone:
        return 0.0
    return float(np.sign(value) * min(1.0, (magnitude - deadzone) / (1.0 - deadzone)))


def map_axes(axes: dict[str, float], axis_map: list[str], deadzone: float, scale: float) -> np.ndarray:
    """One action dim per entry of axis_map ("name" or "-name"); axes are normalised to [-1, 1]."""
    out = np.zeros(len(axis_map))
    for i, entry in enumerate(axis_map):
        sign, name = (-1.0, entry[1:]) if entry.startswith("-") else (1.0, entry)
        if name not in axes:
            raise KeyError(f"axis {name!r} (action dim {i}) is not one of the device's axes {sorted(axes)}")
        out[i] = sign * apply_deadzone(axes[name], deadzone)
    return np.clip(out * scale, -1.0, 1.0)
