"""A run's episodes, put back together from its segment log: every step in order, with who acted.

    episodes = read_episodes(Path(run_dir) / "segments")              # every robot's episodes, demos first
    episodes = read_episodes(segments, only="human", success_only=True)

Segments of one robot's episode are joined in sequence order (a key logged twice counts once). An episode's per-step
labels: the executed action, the policy's own action, the weights version, the gate's score and threshold, reward,
success, and who acted (`controller`: "policy", "operator:<id>" or "demo").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from buffers.codec import decode_segment
from buffers.schema import OPERATOR_PREFIX, STEP_FIELDS, Segment, is_human
from buffers.segment_log import SegmentLog

ONLY = ("all", "human")
"""all: every episode, each step labelled; human: only the steps an operator or demonstrator took, each run of them
an episode of its own"""


@dataclass
class Episode:
    robot: int
    episode: int
    steps: dict[str, np.ndarray]  # STEP_FIELDS, one row per step
    controller: list[str]  # who acted at each step

    def __len__(self) -> int:
        return len(self.controller)

    @property
    def intervention(self) -> np.ndarray:
        """Per step: an operator acted (not the policy, not a scripted demonstration)."""
        return np.array([c.startswith(OPERATOR_PREFIX) for c in self.controller], np.bool_)

    @property
    def operator(self) -> np.ndarray:
        """Per step: the operator's id, -1 where none acted."""
        return np.array([int(c[len(OPERATOR_PREFIX):]) if c.startswith(OPERATOR_PREFIX) else -1
                         for c in self.controller], np.int64)

    @property
    def success(self) -> bool:
        return bool(self.steps["success"].any())


def with_defaults(found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Step fields read from someone else's dataset (obs, action and image at least) in STEP_FIELDS' dtypes; for what
    it lacks: the policy's action = the action, version 0, no gate score or threshold, no reward, success or
    violation, done at the last step, steps numbered from 0, no time."""
    n = len(found["action"])
    zeros = np.zeros(n)
    defaults = {"policy_action": found["action"], "version": zeros, "spread": zeros, "threshold": zeros,
                "reward": zeros, "done": np.arange(n) == n - 1, "success": zeros, "constraint": zeros,
                "step": np.arange(n), "t_wall": zeros}
    return {name: np.asarray(found[name] if name in found else defaults[name], dtype)
            for name, dtype in STEP_FIELDS.items()}


def _join(segments: list[Segment]) -> Episode:
    first = segments[0]
    steps = {name: np.concatenate([getattr(s, name) for s in segments]) for name in STEP_FIELDS}
    return Episode(first.robot, first.episode, steps, [s.controller for s in segments for _ in range(len(s))])


def read_episodes(segments_dir: str | Path, only: str = "all", success_only: bool = False) -> list[Episode]:
    """The run's episodes in (robot, episode) order; ValueError for an unknown `only`."""
    if only not in ONLY:
        raise ValueError(f"only: {only!r}, not one of {', '.join(ONLY)}")
    by_episode: dict[tuple[int, int], dict[int, Segment]] = {}
    for payload in SegmentLog.read(segments_dir):
        seg = decode_segment(payload)
        if len(seg):
            by_episode.setdefault((seg.robot, seg.episode), {}).setdefault(seg.seq, seg)
    episodes = []
    for key in sorted(by_episode):
        segments = [by_episode[key][seq] for seq in sorted(by_episode[key])]
        whole = _join(segments)
        if success_only and not whole.success:
            continue
        if only == "all":
            episodes.append(whole)
            continue
        run: list[Segment] = []
        for seg in segments:
            if is_human(seg.controller) and (not run or run[-1].seq + 1 == seg.seq):
                run.append(seg)
                continue
            if run:
                episodes.append(_join(run))
            run = [seg] if is_human(seg.controller) else []
        if run:
            episodes.append(_join(run))
    return episodes
