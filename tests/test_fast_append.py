"""The append path's shortcuts keep their contracts: the segment encoder writes exactly the bytes of the generic
encoder (so old logs and new ones read alike), the transition store fills its columns as stepping through each
segment would, and a segment validated once is still refused when another add changed what the storage holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buffers.codec import SEGMENT_TAG, decode_segment, encode, encode_segment
from buffers.replay import InvalidSegment, ReplayBuffer
from buffers.schema import META_FIELDS, STEP_FIELDS, Segment
from buffers.storage import ReplayStorage
from buffers.transitions import TransitionStore


def segment(robot: int, seq: int, episode: int, n: int, rng: np.random.Generator, obs_dim: int = 3,
            image: tuple[int, int] = (0, 0)) -> Segment:
    return Segment(robot, seq, episode, "operator:0", "size", float(seq),
                   obs=rng.normal(size=(n, obs_dim)).astype(np.float32),
                   action=rng.normal(size=(n, 2)).astype(np.float32),
                   policy_action=rng.normal(size=(n, 2)).astype(np.float32),
                   version=rng.integers(0, 3, n), spread=rng.random(n, np.float32),
                   threshold=rng.random(n, np.float32), reward=rng.random(n, np.float32),
                   success=rng.random(n) < 0.2, constraint=rng.random(n) < 0.3, done=rng.random(n) < 0.2,
                   step=np.arange(n, dtype=np.int64), t_wall=rng.random(n),
                   image=rng.integers(0, 255, (n, *image, 3), dtype=np.uint8))


def generic(seg: Segment) -> bytes:
    """A segment through the generic encoder, as every log before the fast encoder was written."""
    meta = {name: kind(getattr(seg, name)) for name, kind in META_FIELDS.items()}
    return encode({"kind": SEGMENT_TAG, "meta": meta, "steps": {name: getattr(seg, name) for name in STEP_FIELDS}})


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.sampled_from([(0, 0), (2, 3), (40, 40)]), st.booleans(), st.integers(0, 2**31))
def test_fast_segment_encoder_writes_the_generic_encoders_bytes(n: int, image: tuple[int, int], strided: bool,
                                                                 seed: int) -> None:
    seg = segment(7, seed, 2, n, np.random.default_rng(seed), image=image)
    if strided:  # a non-contiguous array encodes its C-order content
        seg.obs = np.asfortranarray(seg.obs)
        seg.t_wall = np.repeat(seg.t_wall, 2)[::2]
    blob = encode_segment(seg)
    assert blob == generic(seg)
    out = decode_segment(blob)
    for name in STEP_FIELDS:
        np.testing.assert_array_equal(getattr(out, name), getattr(seg, name))


def reference_transitions(segments: list[Segment]) -> dict[str, np.ndarray]:
    """Step by step: each step with its successor's observation, a step whose successor has not arrived held back."""
    rows: list[tuple[np.ndarray, ...]] = []
    held: dict[int, tuple[Segment, int]] = {}
    for seg in segments:
        if len(seg) == 0:
            continue
        waiting = held.pop(seg.robot, None)
        if waiting is not None and waiting[0].episode == seg.episode:
            rows.append((*step(*waiting), seg.obs[0]))
        ends = bool(seg.done[-1] or seg.success[-1])
        for i in range(len(seg) - (0 if ends else 1)):
            rows.append((*step(seg, i), seg.obs[min(i + 1, len(seg) - 1)]))
        if not ends:
            held[seg.robot] = (seg, len(seg) - 1)
    names = ("obs", "action", "reward", "terminal", "violation", "next_obs")
    return {name: np.array([r[k] for r in rows], np.float32) for k, name in enumerate(names)}


def step(seg: Segment, i: int) -> tuple[np.ndarray, ...]:
    return (seg.obs[i], seg.action[i], np.float32(seg.success[i]), np.float32(seg.success[i] or seg.done[i]),
            np.float32(seg.constraint[i]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4), st.booleans()), max_size=25), st.integers(0, 99))
def test_transitions_fill_columns_as_stepping_through_each_segment_would(plan: list[tuple[int, int, bool]],
                                                                         seed: int) -> None:
    rng, episodes = np.random.default_rng(seed), [0, 0, 0]
    segments = []
    for seq, (robot, n, next_episode) in enumerate(plan):
        episodes[robot] += next_episode
        segments.append(segment(robot, seq, episodes[robot], n, rng))
    store = TransitionStore(3, 2)
    for seg in segments:
        store.add_segment(seg)
    want = reference_transitions(segments)
    assert len(store) == len(want["obs"])
    for name, values in want.items():
        np.testing.assert_array_equal(getattr(store, name).view().reshape(values.shape), values, err_msg=name)
    np.testing.assert_array_equal(store.positives.view(), np.flatnonzero(want["reward"] > 0))


def test_a_checked_segment_is_refused_once_another_add_stored_other_feature_sizes() -> None:
    rng = np.random.default_rng(0)
    storage = ReplayStorage()
    wide, narrow = segment(0, 0, 0, 4, rng, obs_dim=5), segment(1, 0, 0, 4, rng, obs_dim=3)
    storage.check([wide])
    storage.check([narrow])  # both pass while the storage is empty, as two concurrent adds would
    storage.add_checked(narrow)
    with pytest.raises(InvalidSegment, match=r"segment 0:0: field 'obs' has 5 features, the replay storage holds 3"):
        storage.add_checked(wide)


def test_bad_input_is_named_by_field_and_segment_before_anything_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with ReplayBuffer(tmp_path) as buf:
        good, bad = segment(0, 0, 0, 4, rng), segment(0, 1, 0, 4, rng)
        bad.obs[2, 1] = np.nan
        with pytest.raises(InvalidSegment, match=r"segment 0:1: field 'obs' is not finite at step 2"):
            buf.add([good, bad])
        bad.action = bad.action.astype(np.float64)
        with pytest.raises(InvalidSegment, match=r"segment 0:1: field 'action' has dtype float64"):
            buf.add([good, bad])
        assert len(buf) == 0
    assert all(p.stat().st_size == 0 for p in tmp_path.glob("segments-*.log"))
