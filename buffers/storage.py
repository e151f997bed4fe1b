"""In-memory replay storage: the steps we train on, in flat growable arrays.

By default only human-labelled steps are stored (a policy's own actions are no labels for
behaviour cloning); policy segments are still counted.

    storage = ReplayStorage()
    idx = storage.add(seg)            # storage indices of its steps (empty if not stored)
    batch = storage.get(idx)          # obs, action, human, segment (and image, on an image task)
    batch = storage.get(idx, horizon=8, history=2)   # action [B, 8, A] and pad, obs [B, 2, O]: within each segment
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from buffers.schema import Segment, is_intervention


class InvalidSegment(ValueError):
    """A segment was rejected; `key` says which, the message says which field and why."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Column:
    """A growable numpy array (amortised doubling)."""

    def __init__(self, dtype: type, width: int | tuple[int, ...] | None = None) -> None:
        shape = () if width is None else (width,) if isinstance(width, int) else width
        self.data: np.ndarray = np.zeros((16, *shape), dtype)
        self.n = 0

    def extend(self, rows: np.ndarray) -> None:
        self.reserve(len(rows))[:] = rows

    def reserve(self, count: int) -> np.ndarray:
        """Grows by `count` rows and returns them, to be filled in place (one copy, no temporary)."""
        if self.n + count > len(self.data):
            grown = np.empty((max(2 * len(self.data), self.n + count), *self.data.shape[1:]), self.data.dtype)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.n += count
        return self.data[self.n - count:self.n]

    def view(self) -> np.ndarray:
        return self.data[:self.n]


class Moments:
    """Running mean and variance per feature (Chan et al. parallel update, float64)."""

    def __init__(self, width: int) -> None:
        self.count, self.mean, self.m2 = 0, np.zeros(width), np.zeros(width)

    def update(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        n, mean = len(x), x.mean(axis=0, dtype=np.float64)
        m2 = ((x - mean) ** 2).sum(axis=0, dtype=np.float64)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    def mean_std(self, min_std: float) -> tuple[np.ndarray, np.ndarray]:
        if self.count == 0:
            return np.zeros_like(self.mean, np.float32), np.ones_like(self.mean, np.float32)
        std = np.maximum(np.sqrt(self.m2 / self.count), min_std)
        return self.mean.astype(np.float32), std.astype(np.float32)


def centred_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Each row replaced by the mean of the `window` rows centred on it (fewer at the ends); window 1: x itself."""
    if window == 1 or len(x) < 2:
        return x
    half, n = window // 2, len(x)
    total, count = np.zeros(x.shape, np.float64), np.zeros(n)
    for shift in range(-half, half + 1):  # a sum of shifted copies, not of a running sum: zeros stay exactly zero
        lo, hi = max(0, -shift), min(n, n - shift)
        total[lo:hi] += x[lo + shift:hi + shift]
        count[lo:hi] += 1
    return (total / count.reshape(-1, *[1] * (x.ndim - 1))).astype(x.dtype)


class ReplayStorage:
    """Steps in flat growable arrays: obs, action, human flag, and the stored segment of each step."""

    def __init__(self, labels_only: bool = True, label_window: int = 1) -> None:
        if label_window < 1 or label_window % 2 == 0:
            raise ValueError(f"label_window must be an odd number of steps, at least 1; got {label_window}")
        self.labels_only = labels_only
        self.label_window = label_window
        self.obs_dim: int | None = None
        self.act_dim: int | None = None
        self.segment_keys: list[str] = []  # stored segment index -> key
        self.counts = {"segments": 0, "human_segments": 0, "steps": 0, "human_steps": 0}
        self._obs: Column | None = None
        self._action: Column | None = None
        self._image: Column | None = None  # camera images (uint8), when the task has them
        self._human = Column(np.bool_)
        self._segment = Column(np.int64)
        self._bounds = Column(np.int64, 2)  # stored segment index -> [first, end) storage index of its steps
        self._intervention_idx = Column(np.int64)
        self._labelled = 0
        self._obs_moments: Moments | None = None
        self._act_moments: Moments | None = None
        self._moments_upto = 0  # the moments cover the labelled steps stored before this index (updated when read)

    def stores(self, seg: Segment) -> bool:
        return seg.human or not self.labels_only

    def check(self, segments: Sequence[Segment]) -> None:
        """Raises InvalidSegment for the first segment that is malformed or cannot be stored."""
        dims = (self.obs_dim, self.act_dim)
        for seg in segments:
            if not isinstance(seg, Segment):
                raise InvalidSegment("?", f"expected a Segment, got {type(seg).__name__}")
            try:
                seg.validate()
            except ValueError as e:
                raise InvalidSegment(seg.key, str(e)) from e
            if not self.stores(seg) or len(seg) == 0:
                continue
            self._check_fits(seg, dims)
            for name in ("obs", "action"):
                arr = getattr(seg, name)
                if not np.isfinite(arr).all():
                    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
                    raise InvalidSegment(seg.key, f"segment {seg.key}: field {name!r} is not finite "
                                                  f"at step {bad[0]}")
            dims = (seg.obs.shape[1], seg.action.shape[1])

    def _check_fits(self, seg: Segment, dims: tuple[int | None, int | None]) -> None:
        """Raises InvalidSegment if a valid segment's feature sizes differ from `dims` (its images from storage's)."""
        for name, arr, dim in (("obs", seg.obs, dims[0]), ("action", seg.action, dims[1])):
            if dim is not None and arr.shape[1] != dim:
                raise InvalidSegment(seg.key, f"segment {seg.key}: field {name!r} has {arr.shape[1]} "
                                              f"features, the replay storage holds {dim}")
        if self._image is not None and seg.image.shape[1:] != self._image.data.shape[1:]:
            raise InvalidSegment(seg.key, f"segment {seg.key}: field 'image' has images of {seg.image.shape[1:]}, "
                                          f"the replay storage holds {self._image.data.shape[1:]}")

    def add(self, seg: Segment) -> np.ndarray:
        """Counts a segment, stores its steps if they are kept; returns their storage indices."""
        self.check([seg])
        return self.add_checked(seg)

    def add_checked(self, seg: Segment) -> np.ndarray:
        """add() for a segment that passed check() already: checks again only what another add may have changed
        since (the feature sizes the storage holds), so a segment is validated once on its way in."""
        if self.stores(seg) and len(seg):
            self._check_fits(seg, (self.obs_dim, self.act_dim))
        n = len(seg)
        self.counts["segments"] += 1
        self.counts["steps"] += n
        self.counts["human_segments"] += int(seg.human)
        self.counts["human_steps"] += n * int(seg.human)
        if not self.stores(seg):
            return np.zeros(0, np.int64)
        if self._obs is None and n > 0:
            self.obs_dim, self.act_dim = seg.obs.shape[1], seg.action.shape[1]
            self._obs, self._action = Column(np.float32, self.obs_dim), Column(np.float32, self.act_dim)
            self._obs_moments, self._act_moments = Moments(self.obs_dim), Moments(self.act_dim)
            if seg.image.size:
                self._image = Column(np.uint8, seg.image.shape[1:])
        first = len(self)
        indices = np.arange(first, first + n, dtype=np.int64)
        self.segment_keys.append(seg.key)
        self._bounds.reserve(1)[0] = (first, first + n)
        if n == 0:
            return indices
        assert self._obs and self._action
        self._obs.extend(seg.obs)
        self._action.extend(centred_mean(seg.action, self.label_window) if seg.human else seg.action)
        if self._image is not None:
            self._image.extend(seg.image)
        self._human.reserve(n)[:] = seg.human
        self._segment.reserve(n)[:] = len(self.segment_keys) - 1
        self._labelled += n * int(seg.human)
        if is_intervention(seg.controller):
            self._intervention_idx.extend(indices)
        return indices

    def _update_moments(self, obs: Moments, act: Moments) -> None:
        """Adds the labelled steps stored since the last update: once per read, over every step added meanwhile,
        rather than once per segment on the add path."""
        assert self._obs is not None and self._action is not None
        upto, self._moments_upto = self._moments_upto, len(self)
        human = self._human.view()[upto:]
        rows = slice(upto, None) if human.all() else upto + np.flatnonzero(human)
        obs.update(self._obs.view()[rows])
        act.update(self._action.view()[rows])

    def __len__(self) -> int:
        return self._segment.n

    def intervention_indices(self) -> np.ndarray:
        """Indices of operator-corrected steps (what IWR-style samplers up-weight)."""
        return self._intervention_idx.view()

    @property
    def labelled(self) -> int:
        """Stored steps with a human (operator or demonstration) label."""
        return self._labelled

    def get(self, indices: np.ndarray, horizon: int = 1, history: int = 1) -> dict[str, np.ndarray]:
        """Copies of the steps at indices: obs, action, human, segment (index into segment_keys), and image when
        the steps have camera images.

        With horizon > 1, action is [B, horizon, A]: the step's action and the next ones of its segment, the last
        repeated past the segment's end, where `pad` [B, horizon] is True. With history > 1, obs is
        [B, history, O]: the earlier observations of its segment and the step's own last, the first repeated
        before the segment's start (as Diffusion Policy pads)."""
        if self._obs is None or self._action is None:
            raise IndexError("replay storage is empty")
        segment = self._segment.view()[indices]
        first, end = self._bounds.view()[segment].T
        obs, action = self._obs.view(), self._action.view()
        batch = {"obs": np.take(obs, indices, axis=0) if history == 1 else  # take: ~2x a fancy index's speed
                 obs[self._window(indices, first, end, np.arange(1 - history, 1))],
                 "action": np.take(action, indices, axis=0) if horizon == 1 else
                 action[self._window(indices, first, end, np.arange(horizon))],
                 "human": self._human.view()[indices], "segment": segment}
        if horizon > 1:
            batch["pad"] = (indices[:, None] + np.arange(horizon)) >= end[:, None]
        if self._image is not None:
            batch["image"] = np.take(self._image.view(), indices, axis=0)
        return batch

    @staticmethod
    def _window(indices: np.ndarray, first: np.ndarray, end: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """[B, len(offsets)] storage indices index + offsets, clipped into each step's segment [first, end)."""
        return np.clip(indices[:, None] + offsets, first[:, None], end[:, None] - 1)

    def normalizer(self, min_std: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(obs_mean, obs_std, act_mean, act_std) over labelled steps, float32; std floored at min_std."""
        if self._obs_moments is None or self._act_moments is None:
            raise ValueError("replay storage has no steps yet: observation/action sizes unknown")
        self._update_moments(self._obs_moments, self._act_moments)
        return (*self._obs_moments.mean_std(min_std), *self._act_moments.mean_std(min_std))
