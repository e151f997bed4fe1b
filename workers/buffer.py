"""BufferWorker: the replay buffer as a component (durable log + index + sampler) with events.

    buffer = BufferWorker(run_dir / "segments", human_fraction=0.0, seed=0)
    acked = buffer.add(segments)          # human segments are fsync'd before their keys return
    batch = buffer.sample(1024)           # obs, action, normalizer
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from buffers.replay import HumanWeightedSampler, ReplayBuffer, UniformSampler
from buffers.schema import DEMO, Segment, is_human
from buffers.segment_log import LogProblem
from dagger.config import RunConfig


class BufferWorker:
    def __init__(self, directory: str | Path, human_fraction: float = 0.0, seed: int = 0, clock: Any = time.time,
                 label_window: int = 1):
        sampler = HumanWeightedSampler(human_fraction) if human_fraction > 0 else UniformSampler()
        self.replay = ReplayBuffer(Path(directory), sampler=sampler, seed=seed, label_window=label_window)
        self.clock = clock
        self.lock = threading.Lock()
        # can the buffer make segments durable: ok, the last error in full, when the current outage began (clock)
        self.storage: dict[str, Any] = {"ok": True, "error": None, "since": None}
        self.kept: list[dict] = []  # the `segment` event of every operator's segment added since opening
        self.events: list[dict] = [{"ev": "log_problem", "t": clock(), "file": str(p.file), "offset": p.offset,
                                    "what": p.what} for p in self.replay.problems]

    @classmethod
    def for_run(cls, directory: str | Path, cfg: RunConfig, clock: Any = time.time) -> BufferWorker:
        """The buffer a run with these settings keeps: its sampler's human share, its seed, its label window."""
        return cls(directory, cfg.learner.human_fraction, cfg.seed, clock, cfg.learner.label_window)

    def add(self, segments: list[Segment]) -> list[str]:
        """Stores segments; returns their keys once acknowledged (human ones durable). Adds run concurrently (the
        replay buffer's group commit gives the ones waiting together one fsync). An OSError from the log reaches the
        caller with its cause in words (e.g. 'File too large') and marks storage failed in poll()'s status until an
        add is durable again: during an outage every add is fsync'd, so a success proves storage is back."""
        try:
            keys = self.replay.add(segments)
            if not self.storage["ok"]:
                self.replay.sync()
        except OSError as err:
            with self.lock:
                self.storage = {"ok": False, "error": f"{type(err).__name__}: {err}",
                                "since": self.storage["since"] or self.clock()}
            raise
        kept = [seg.event() | {"t": float(seg.t_closed)} for seg in segments if seg.human and seg.controller != DEMO]
        if kept or not self.storage["ok"]:  # concurrent adds take this lock: only when there is something to record
            with self.lock:
                self.storage = {"ok": True, "error": None, "since": None}
                self.kept.extend(kept)
        return keys

    def sample(self, count: int, horizon: int = 1, history: int = 1) -> dict[str, Any] | None:
        """count labelled steps (None while there are none), plus the current normalizer; horizon/history: action
        and observation sequences (ReplayStorage.get)."""
        with self.lock:
            if len(self.replay) == 0:
                return None
            batch, first = self.replay.sample(count, horizon, history)
            now = self.clock()
            self.events.extend({"ev": "segment_trained", "t": now, "key": key} for key in first)
            return {**batch, "normalizer": self.replay.normalizer()}

    def sample_transitions(self, count: int) -> dict[str, Any] | None:
        """count transitions of every controller (reward 1 at success) for the goal critic."""
        with self.lock:
            return self.replay.sample_transitions(count)

    def unreported(self, logged: list[str]) -> list[dict]:
        """`segment` events for segments the log holds (read back at opening, or operators' segments added since) that
        are not among the `logged` keys: a driver, or a robot, killed after the buffer stored a segment but before
        its event reached events.jsonl."""
        known = set(logged)
        with self.lock:
            held = self.replay.replayed + self.kept
        return [e | {"recovered": True} for e in held
                if e["controller"] != DEMO and f"{e['robot']}:{e['seq']}" not in known]

    def lost(self, reported: list[dict]) -> list[dict]:
        """A `log_lost` event (or none) for the segments the earlier runs' `reported` events (their `segment`, `stored`,
        `segment_trained` and `log_lost` events) say were stored and the log no longer holds (read back at opening)."""
        held = {f"{e['robot']}:{e['seq']}" for e in self.replay.replayed}
        event = log_lost(reported, held, self.replay.problems, self.replay.directory)
        return [] if event is None else [{"ev": "log_lost", "t": self.clock(), **event}]

    def stats(self) -> dict[str, int]:
        """How much the buffer holds (what a checkpoint has trained on)."""
        return self.replay.stats()

    def poll(self) -> dict:
        with self.lock:
            events, self.events = self.events, []
            return {"events": events, "status": {**self.replay.stats(), "storage": dict(self.storage)}}

    def close(self) -> None:
        with self.lock:
            self.replay.close()


def log_lost(reported: list[dict], held: set[str], problems: list[LogProblem], directory: Path) -> dict | None:
    """What the log lost (a torn or damaged file, one cut short or removed) of what the events report: the fields of
    a `log_lost` event, with `what`, one line counting it and naming the files, or None when nothing is missing.

    Every reported segment (not a demonstration) the log lacks is named in `keys`, for the report to leave out. The
    counts are of those the run counted as stored: policy segments, and operators' segments acknowledged durable
    (`stored`), sampled for training or read back at an earlier resume. An operator's segment never acknowledged was
    taken but never stored (the report already says so): it is counted apart, as not the log's loss."""
    def key(e: dict) -> str:
        return f"{e['robot']}:{e['seq']}"

    trained = {e["key"] for e in reported if e["ev"] == "segment_trained"}
    acked = {key(e) for e in reported if e["ev"] == "stored"} | trained
    told = {k for e in reported if e["ev"] == "log_lost" for k in e["keys"]}  # by an earlier resume
    missing: dict[str, dict] = {}
    for e in reported:
        if e["ev"] == "segment" and e["controller"] != DEMO and key(e) not in held and key(e) not in told:
            missing[key(e)] = e
    if not missing:
        return None
    gone = [e for k, e in missing.items() if not is_human(e["controller"]) or k in acked or e.get("recovered")]
    human = [e for e in gone if is_human(e["controller"])]
    never = [e for e in missing.values() if e not in gone]
    damaged = sorted({p.file.name for p in problems})
    where = ("; ".join(f"{p.file.name}@{p.offset}: {p.what}" for p in problems[:3])
             + (f"; {len(problems) - 3} more problems" if len(problems) > 3 else "") if problems else
             "no damaged frame found: a file was cut at a frame boundary or removed")
    what = (f"segment log {directory}: {len(gone)} frames ({sum(e['steps'] for e in gone)} steps) the run stored "
            f"are gone ({where}): {len(human)} operators' segments ({sum(e['steps'] for e in human)} human steps, "
            f"{sum(key(e) in trained for e in human)} of them already trained on) and {len(gone) - len(human)} "
            f"policy segments ({sum(e['steps'] for e in gone if e not in human)} steps); the report leaves them out")
    if never:
        what += (f"; {len(never)} operators' segments ({sum(e['steps'] for e in never)} steps) were never "
                 "acknowledged durable")
    return {"keys": list(missing), "frames": len(gone), "steps": sum(e["steps"] for e in gone),
            "human_segments": len(human), "human_steps": sum(e["steps"] for e in human),
            "trained": sum(key(e) in trained for e in human), "files": damaged or [str(directory)], "what": what}
