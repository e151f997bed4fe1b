"""A step's wall-clock time in an exported dataset: int64 nanoseconds since the Unix epoch, the column `t_wall_ns`.

dagger keeps the time as float64 seconds (the step field `t_wall`). LeRobotDataset reads every float feature as a
float32 tensor (`datasets` hands hf_transform_to_torch Python floats, and torch.tensor makes them float32), and
float32 holds today's Unix seconds only to 128 s, so frames up to two minutes apart would read one time. Integers
come back as int64 tensors, exactly. The robomimic file keeps the same column, so both formats name and count time
alike.

    ns = to_ns(ep.steps["t_wall"])       # ValueError for NaN, inf, or a time beyond int64 nanoseconds
    per_episode = episodes_ns(episodes)  # the same, the ValueError naming the episode
    seconds = from_ns(ns)                # the float64 seconds written, bit for bit, for any time from 1971 to 2262
"""

from __future__ import annotations

import numpy as np

from dagger.episodes import Episode

COLUMN = "t_wall_ns"
OLD_COLUMN = "t_wall"  # float64 seconds, as exports wrote time before t_wall_ns; still read
NS = 10**9
LIMIT_S = 2**63 // NS  # 9_223_372_036 s: int64 nanoseconds end in April 2262


def to_ns(seconds: np.ndarray) -> np.ndarray:
    """float64 seconds as int64 nanoseconds, rounded to the nearest; ValueError naming the first time that int64
    nanoseconds cannot hold (NaN, inf, or beyond 2262 either side of 1970)."""
    seconds = np.asarray(seconds, np.float64)
    bad = ~(np.abs(seconds) < LIMIT_S)
    if bad.any():
        raise ValueError(f"field 't_wall': {seconds[bad][0]} s at step {int(np.argmax(bad))}: not a time int64 "
                         f"nanoseconds since 1970 hold")
    # whole seconds and the fraction apart: float64 nanoseconds (1.7e18) are coarser than a nanosecond
    whole = np.floor(seconds)
    return whole.astype(np.int64) * NS + np.round((seconds - whole) * NS).astype(np.int64)


def episodes_ns(episodes: list[Episode]) -> list[np.ndarray]:
    """Each episode's times as to_ns gives them; ValueError naming the first episode (its place, robot and number)
    and step it cannot."""
    out = []
    for i, ep in enumerate(episodes):
        try:
            out.append(to_ns(ep.steps["t_wall"]))
        except ValueError as err:
            raise ValueError(f"episode {i} (robot {ep.robot}'s episode {ep.episode}): {err}") from err
    return out


def from_ns(ns: np.ndarray) -> np.ndarray:
    """int64 nanoseconds as float64 seconds; from 2**23 s (1970-04-08) on, where float64 seconds step by 1.86 ns or
    more, exactly the seconds to_ns was given. ValueError naming the column for nanoseconds that are not integers."""
    ns = np.asarray(ns)
    if ns.dtype.kind not in "iu":
        raise ValueError(f"field {COLUMN!r}: dtype {ns.dtype}, expected integer nanoseconds")
    ns = ns.astype(np.int64)
    return (ns // NS).astype(np.float64) + (ns % NS) / NS
