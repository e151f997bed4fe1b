"""The replay buffer: a durable segment log, an in-memory storage, and a sampler.

Every segment goes to the on-disk log before it is acknowledged; human segments are fsync'd first.
A restarted buffer replays the log, so it resumes with the same storage.

    buf = ReplayBuffer(run_dir / "segments", sampler=HumanWeightedSampler(0.5))
    acked = buf.add(segments)                 # keys now safe (human ones on disk)
    batch, first_time = buf.sample(256)       # batch["obs"], ["action"], ["human"], ["segment"]
    obs_mean, obs_std, act_mean, act_std = buf.normalizer()
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from buffers.codec import CodecError, decode_segment, encode_valid_segment
from buffers.samplers import HumanWeightedSampler, Sampler, UniformSampler
from buffers.schema import Segment
from buffers.segment_log import DEFAULT_MAX_FILE_BYTES, LogProblem, SegmentLog
from buffers.storage import InvalidSegment, ReplayStorage
from buffers.transitions import TransitionStore

__all__ = ["HumanWeightedSampler", "InvalidSegment", "ReplayBuffer", "ReplayStorage", "Sampler",
           "UniformSampler"]

log = logging.getLogger(__name__)


class ReplayBuffer:
    """Owns the segment log in `directory`, a ReplayStorage and a sampler; thread-safe.

    Opening a directory that already holds a log replays it (see `problems` for what was skipped).
    A segment key seen before is acknowledged again but not stored twice, so senders may retry.
    """

    def __init__(self, directory: str | os.PathLike[str], sampler: Sampler | None = None, seed: int = 0,
                 labels_only: bool = True, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, label_window: int = 1) -> None:
        self.sampler: Sampler = sampler if sampler is not None else UniformSampler()
        self.storage = ReplayStorage(labels_only=labels_only, label_window=label_window)
        self.duplicates = 0
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        self._sampled: set[int] = set()  # stored segment indices already in some batch
        self.transitions: TransitionStore | None = None  # every step, for the goal critic
        self.replayed: list[dict] = []  # the `segment` event of every segment read back from the log at opening
        self.reopen_every_s = 1.0  # after a failed fsync, how often an add tries the log again
        self._reopening = threading.Lock()
        self._reopened = -float("inf")
        self._log = SegmentLog(directory, max_file_bytes=max_file_bytes)
        try:
            self.problems: list[LogProblem] = list(self._log.problems)
            self._replay()
        except BaseException:
            self._log.close()
            raise

    @classmethod
    def open(cls, directory: str | os.PathLike[str], **kwargs: Any) -> ReplayBuffer:
        """Same as the constructor; reads as intent where a buffer resumes an existing run."""
        return cls(directory, **kwargs)

    @property
    def directory(self) -> Path:
        return self._log.directory

    def _replay(self) -> None:
        scan = SegmentLog.read(self._log.directory)
        bad: list[LogProblem] = []
        for record in scan.records():
            try:
                seg = decode_segment(record.payload)
                self.storage.check([seg])
            except (CodecError, InvalidSegment) as e:
                bad.append(LogProblem(record.file, record.offset, f"frame skipped: {e}"))
                log.warning("replay buffer: %s", bad[-1])
                continue
            if seg.key in self._keys:
                self.duplicates += 1
                continue
            self._store(seg)
            self.replayed.append(seg.event() | {"t": float(seg.t_closed)})
        self.problems += scan.problems + bad

    def add(self, segments: Sequence[Segment]) -> list[str]:
        """Logs and stores segments; returns their keys once acknowledged. Several threads may add at once.

        All are checked first: one bad segment raises InvalidSegment (naming its key and field)
        and nothing of the batch is written. Human segments are fsync'd before this returns (group commit: one
        fsync serves the adds waiting together), and stored only then, so nothing a failed fsync lost is trained on
        or acknowledged as a duplicate later. A log that failed is reopened at most every `reopen_every_s`.
        """
        self.storage.check(segments)  # outside the lock: storing checks the feature sizes again (add_checked)
        with self._lock:
            fresh: dict[str, Segment] = {}
            for seg in segments:
                if seg.key in self._keys or seg.key in fresh:
                    self.duplicates += 1
                else:
                    fresh[seg.key] = seg
        if fresh:
            self._reopen_if_failed()
            durable, end = any(seg.human for seg in fresh.values()), 0
            with self._log.coming() if durable else contextlib.nullcontext():
                for seg in fresh.values():
                    end = self._log.append(encode_valid_segment(seg), durable=False)  # checked above
            if durable:
                self._log.sync(end)  # covers the whole batch (and other adds'), before any key is returned
            with self._lock:
                for seg in fresh.values():
                    if seg.key in self._keys:  # another add of the same key got there first
                        self.duplicates += 1
                    else:
                        self._store(seg)
        return [seg.key for seg in segments]

    def _reopen_if_failed(self) -> None:
        if self._log.failed is None:  # the common case, without a lock every add would wait on
            return
        with self._reopening:
            if self._log.failed is None or time.monotonic() - self._reopened < self.reopen_every_s:
                return
            self._reopened = time.monotonic()
            log.warning("replay buffer: reopening the segment log after: %s", self._log.failed)
            self._log.reopen()

    def sync(self) -> None:
        """Returns once every segment logged so far is on disk; raises OSError (LogFailed) if it cannot be."""
        self._log.sync()

    def _store(self, seg: Segment) -> None:
        """Stores a segment that passed storage.check (validated once, on its way in)."""
        self.storage.add_checked(seg)
        self._keys.add(seg.key)
        if len(seg) and self.transitions is None:
            self.transitions = TransitionStore(seg.obs.shape[1], seg.action.shape[1])
        if self.transitions is not None:
            self.transitions.add_segment(seg)

    def sample_transitions(self, count: int) -> dict[str, np.ndarray] | None:
        """count (obs, action, reward, next_obs, terminal) over every step seen; None while there are none."""
        with self._lock:
            return None if self.transitions is None else self.transitions.sample(count, self._rng)

    def sample(self, batch_size: int, horizon: int = 1, history: int = 1) -> tuple[dict[str, np.ndarray], list[str]]:
        """A batch (obs, action, human, segment; with horizon/history, action and observation sequences: see
        ReplayStorage.get) and the keys of segments sampled for the first time."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        with self._lock:
            indices = self.sampler.sample(self.storage, batch_size, self._rng)
            batch = self.storage.get(indices, horizon, history)
            first = [int(i) for i in np.unique(batch["segment"]) if int(i) not in self._sampled]
            self._sampled.update(first)
            return batch, [self.storage.segment_keys[i] for i in first]

    def normalizer(self, min_std: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(obs_mean, obs_std, act_mean, act_std) over labelled steps, float32."""
        with self._lock:
            return self.storage.normalizer(min_std)

    def stats(self) -> dict[str, int]:
        """Counts: segments/steps received (human ones too), steps stored and labelled, and so on."""
        with self._lock:
            return {**self.storage.counts, "stored_segments": len(self.storage.segment_keys),
                    "stored_steps": len(self.storage), "labelled_steps": self.storage.labelled,
                    "duplicates": self.duplicates, "log_problems": len(self.problems)}

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self.storage)

    def close(self) -> None:
        """Syncs and closes the log (releasing its lock); the buffer takes no more segments."""
        self._log.close()

    def __enter__(self) -> ReplayBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
