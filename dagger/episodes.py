"""A run's episodes, put back together from its segment log: every step in order, with who acted.

    episodes = read_episodes(Path(run_dir) / "segments")              # every robot's episodes, demos first
    episodes = read_episodes(segments, only="human", success_only=True)

Segments of one robot's episode are joined in sequence order (a key logged twice counts once); where a segment is
missing (a robot numbers its segments one after another: a gap in `seq`, or one the run's events.jsonl reports and
the log lacks, passed as `reported`) or `step` does not go on by 1 (a lost segment, a torn log, steps the robot took
but did not record) the episode is split into contiguous pieces, each an episode of its own with the same robot and
episode number (only the last can end done), and each piece says in `missing` what of its episode the log lacks
before or after it; an episode never reaches an export whole when part of it is lost. An episode's per-step labels:
the executed action, the policy's own action, the weights version, the gate's score and threshold, reward, success,
and who acted (`controller`: "policy", "operator:<id>", "nudge:<id>" or "demo"; a nudge's residual is its action minus
its policy's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from buffers.codec import decode_segment
from buffers.frames import LogProblem
from buffers.schema import FEATURE_FIELDS, STEP_FIELDS, Segment, is_human, is_intervention, is_nudge, operator_of
from buffers.segment_log import SegmentLog
from dagger.control import INCARNATION_STRIDE

ONLY = ("all", "human")
"""all: every episode, each step labelled; human: only the steps an operator or demonstrator took, each run of them
an episode of its own"""


@dataclass
class Episode:
    robot: int
    episode: int
    steps: dict[str, np.ndarray]  # STEP_FIELDS, one row per step
    controller: list[str]  # who acted at each step
    missing: str = ""
    """what of the robot's episode the log lacks next to this piece, in words ("" when the episode is whole)"""

    def __len__(self) -> int:
        return len(self.controller)

    @property
    def intervention(self) -> np.ndarray:
        """Per step: an operator took over or nudged (not the policy alone, not a scripted demonstration)."""
        return np.array([is_intervention(c) for c in self.controller], np.bool_)

    @property
    def nudge(self) -> np.ndarray:
        """Per step: the operator nudged (the policy acted, the operator's residual added)."""
        return np.array([is_nudge(c) for c in self.controller], np.bool_)

    @property
    def residual(self) -> np.ndarray:
        """Per step: the operator's nudge, executed action minus the policy's (zero where nobody nudged)."""
        return np.where(self.nudge[:, None], self.steps["action"] - self.steps["policy_action"], 0).astype(np.float32)

    @property
    def operator(self) -> np.ndarray:
        """Per step: the operator's id, -1 where none acted."""
        return np.array([operator_of(c) for c in self.controller], np.int64)

    @property
    def success(self) -> bool:
        return bool(self.steps["success"].any())

    def part(self, start: int, end: int, missing: str = "") -> Episode:
        """Its steps start..end-1, as an episode of the same robot and number."""
        return Episode(self.robot, self.episode, {name: arr[start:end] for name, arr in self.steps.items()},
                       self.controller[start:end], missing)


def with_defaults(found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Step fields read from someone else's dataset (obs, action and image at least) in STEP_FIELDS' dtypes; for what
    it lacks: the policy's action = the action, version 0, no gate score or threshold, no reward, success or
    violation, done at the last step, steps numbered from 0, no time. ValueError "field 'x': ..." for a field that is
    not numbers, not of the action's length, of the wrong rank, a flag other than 0 and 1, or an image not uint8."""
    n = len(found["action"]) if np.ndim(found["action"]) else 0  # a scalar's rank is refused below
    zeros = np.zeros(n)
    defaults = {"policy_action": found["action"], "version": zeros, "spread": zeros, "threshold": zeros,
                "reward": zeros, "done": np.arange(n) == n - 1, "success": zeros, "constraint": zeros,
                "step": np.arange(n), "t_wall": zeros}
    steps = {}
    for name, dtype in STEP_FIELDS.items():
        raw = np.asarray(found[name] if name in found else defaults[name])
        _check(name, raw, n)
        with np.errstate(over="ignore"):  # float64 beyond float32 becomes inf, which read_dataset refuses
            steps[name] = raw.astype(dtype)
    return steps


def _check(name: str, raw: np.ndarray, n: int) -> None:
    ndim = 2 if name in FEATURE_FIELDS else 4 if name == "image" else 1
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"field {name!r}: dtype {raw.dtype}, expected numbers")
    if raw.ndim != ndim or len(raw) != n:
        raise ValueError(f"field {name!r}: shape {raw.shape}, expected {ndim}-D with {n} steps (as the actions)")
    if STEP_FIELDS[name] == np.bool_ and not np.isin(raw, (0, 1)).all():
        raise ValueError(f"field {name!r}: {raw[~np.isin(raw, (0, 1))][0]} at step "
                         f"{int(np.argmin(np.isin(raw, (0, 1))))}, expected 0 or 1")
    if name == "image" and raw.dtype != np.uint8 and raw.size:
        raise ValueError(f"field 'image': dtype {raw.dtype}, expected uint8 (0-255)")


def _pieces(ep: Episode, human_only: bool, before: str, after: str) -> list[Episode]:
    """The episode's contiguous runs of steps (`step` going on by 1); with human_only, of operators' and
    demonstrators' steps only. `before` / `after`: what the log lacks before its first step / after its last."""
    steps = ep.steps["step"]
    gaps = np.flatnonzero(np.diff(steps) != 1) + 1
    keep = np.array([is_human(c) for c in ep.controller]) if human_only else np.ones(len(ep), np.bool_)
    breaks = np.union1d(gaps, np.flatnonzero(keep[1:] != keep[:-1]) + 1).astype(int)
    pieces = []
    for a, b in zip([0, *breaks], [*breaks, len(ep)], strict=True):
        if keep[a]:
            said = [before if a == 0 else _steps_lost(steps[a - 1], steps[a]) if a in gaps else "",
                    after if b == len(ep) else _steps_lost(steps[b - 1], steps[b]) if b in gaps else ""]
            pieces.append(ep.part(a, b, "; ".join(w for w in said if w)))
    return pieces


def _steps_lost(last: int, first: int) -> str:
    return (f"steps {last + 1}-{first - 1} are not in the log" if first > last + 1
            else f"the log does not go on by one step after step {last}")


def _join(segments: list[Segment]) -> Episode:
    first = segments[0]
    steps = {name: np.concatenate([getattr(s, name) for s in segments]) for name in STEP_FIELDS}
    return Episode(first.robot, first.episode, steps, [s.controller for s in segments for _ in range(len(s))])


def _keys(robot: int, seqs: list[int]) -> str:
    shown = ", ".join(f"{robot}:{seq}" for seq in seqs[:5])
    return f"segment{'s' if len(seqs) > 1 else ''} {shown}{f' and {len(seqs) - 5} more' if len(seqs) > 5 else ''}"


def read_episodes(segments_dir: str | Path, only: str = "all", success_only: bool = False,
                  problems: list[LogProblem] | None = None, reported: list[tuple[int, int, int]] | None = None,
                  lost: list[str] | None = None) -> list[Episode]:
    """The run's episodes in (robot, episode) order; ValueError for an unknown `only`. `problems`, when given,
    receives what the log scan skipped (bad frames, torn tails, missing files). `reported`: the (robot, seq, episode)
    of each segment the run closed (its `segment` events), when known; `lost`, when given, receives a line for each
    episode none of whose segments is in the log."""
    if only not in ONLY:
        raise ValueError(f"only: {only!r}, not one of {', '.join(ONLY)}")
    by_episode: dict[tuple[int, int], dict[int, Segment]] = {}
    scan = SegmentLog.read(segments_dir)
    for payload in scan:
        seg = decode_segment(payload)
        if len(seg):
            by_episode.setdefault((seg.robot, seg.episode), {}).setdefault(seg.seq, seg)
    if problems is not None:
        problems += scan.problems
    logged = {(robot, seq) for (robot, _), segs in by_episode.items() for seq in segs}
    expected: dict[tuple[int, int], set[int]] = {}
    for robot, seq, episode in reported or []:
        expected.setdefault((robot, episode), set()).add(seq)
    if lost is not None:
        lost += [f"robot {robot} episode {episode}: none of its {_keys(robot, sorted(seqs))} is in the log"
                 for (robot, episode), seqs in sorted(expected.items()) if (robot, episode) not in by_episode]
    episodes = []
    for key in sorted(by_episode):
        found = by_episode[key]
        seqs = sorted(found)
        missing = expected.get(key, set()) - set(found)
        runs = [[seqs[0]]]  # runs of consecutive seqs: a gap between two is a segment the log lacks
        for seq in seqs[1:]:
            if seq == runs[-1][-1] + 1:
                runs[-1].append(seq)
            else:
                runs.append([seq])
        robot = key[0]
        # the robot went on in the same incarnation past a gap after this episode's last segment, which is not done
        ends_early = not found[seqs[-1]].done[-1] and (robot, seqs[-1] + 1) not in logged and any(
            r == robot and s > seqs[-1] and s // INCARNATION_STRIDE == seqs[-1] // INCARNATION_STRIDE
            for r, s in logged)
        head = sorted(s for s in missing if s < seqs[0])
        tail = sorted(s for s in missing if s > seqs[-1])
        parts = []
        for i, run in enumerate(runs):
            first_step = int(found[run[0]].step[0])
            before = (_keys(robot, head) + " lost before it" if head else _steps_lost(-1, first_step) if first_step
                      else "") if i == 0 else (
                _keys(robot, list(range(runs[i - 1][-1] + 1, run[0]))) + " lost before it")
            after = (_keys(robot, tail) + " lost after it" if tail else "the episode's end is not in the log"
                     if ends_early else "") if i == len(runs) - 1 else (
                _keys(robot, list(range(run[-1] + 1, runs[i + 1][0]))) + " lost after it")
            parts.append((_join([found[seq] for seq in run]), before, after))
        if success_only and not any(part.success for part, _, _ in parts):
            continue
        for part, before, after in parts:
            episodes += _pieces(part, only == "human", before, after)
    return episodes
