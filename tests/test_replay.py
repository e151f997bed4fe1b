"""The replay buffer: durable human labels, restart from the log, sampling, and rejection of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from buffers.codec import encode_segment
from buffers.replay import (
    HumanWeightedSampler,
    InvalidSegment,
    ReplayBuffer,
    ReplayStorage,
    UniformSampler,
)
from buffers.schema import Segment
from buffers.segment_log import file_name
from buffers.storage import centred_mean


def make_segment(robot: int, seq: int, n: int, controller: str = "operator:0", obs_dim: int = 3,
                 act_dim: int = 2) -> Segment:
    rng = np.random.default_rng(1000 * robot + seq)
    steps = [{
        "obs": rng.normal(size=obs_dim), "action": rng.normal(size=act_dim),
        "policy_action": rng.normal(size=act_dim), "version": 1, "spread": 0.0, "threshold": 1.0,
        "reward": 0.0, "success": False, "constraint": False, "done": False, "step": i, "t_wall": 0.0,
    } for i in range(n)]
    return Segment.from_steps(robot, seq, 0, controller, "handback", 1.0, steps)


def log_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("segments-*.log"))}


def test_human_segment_is_fsynced_before_it_is_acknowledged(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[int, int]] = []  # (inode, size) of each file at each fsync
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        st = os.fstat(fd)
        real_fsync(fd)
        synced.append((st.st_ino, st.st_size))

    with ReplayBuffer(tmp_path / "segments") as buf:
        monkeypatch.setattr(os, "fsync", recording_fsync)
        log_file = tmp_path / "segments" / file_name(0)
        assert buf.add([make_segment(0, 0, 5, controller="policy")]) == ["0:0"]
        assert synced == []  # policy segments are flushed, not fsync'd
        assert buf.add([make_segment(0, 1, 4)]) == ["0:1"]
        st = log_file.stat()
        assert (st.st_ino, st.st_size) in synced  # the fsync covered every byte, before add returned
        assert buf.stats()["labelled_steps"] == 4


def test_restart_rebuilds_the_same_storage(tmp_path: Path) -> None:
    segments = [make_segment(r, s, n=3 + s, controller="policy" if s % 3 == 0 else "operator:1")
                for r in range(3) for s in range(6)]
    with ReplayBuffer(tmp_path, max_file_bytes=2000) as buf:
        for i in range(0, len(segments), 4):
            buf.add(segments[i:i + 4])
        before = buf.storage.get(np.arange(len(buf)))
        stats, norm = buf.stats(), buf.normalizer()
        keys = list(buf.storage.segment_keys)
    assert len(log_bytes(tmp_path)) > 1  # rotated
    with ReplayBuffer.open(tmp_path, max_file_bytes=2000) as again:
        assert again.stats() == stats and again.problems == []
        assert again.storage.segment_keys == keys
        after = again.storage.get(np.arange(len(again)))
        for k in before:
            np.testing.assert_array_equal(before[k], after[k])
        for a, b in zip(norm, again.normalizer(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        assert again.add([segments[0], segments[1]]) == ["0:0", "0:1"]  # a resend is acknowledged...
        assert again.stats()["segments"] == stats["segments"]  # ...but not stored twice


def test_restart_after_torn_tail_reports_it_and_keeps_the_rest(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path) as buf:
        buf.add([make_segment(0, s, 4) for s in range(3)])
    path = tmp_path / file_name(0)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 5)
    with ReplayBuffer(tmp_path) as buf:
        assert [s for s in buf.storage.segment_keys] == ["0:0", "0:1"]
        assert [p.file for p in buf.problems] == [path]
        assert "torn tail" in buf.problems[0].what
        buf.add([make_segment(0, 2, 4)])  # the robot resends what was never acknowledged
    with ReplayBuffer(tmp_path) as buf:
        assert buf.storage.segment_keys == ["0:0", "0:1", "0:2"] and buf.problems == []


def test_segment_logged_twice_is_stored_once_after_restart(tmp_path: Path) -> None:
    """A crash after the write but before the ack makes the robot resend: the log holds it twice."""
    seg = make_segment(0, 0, 4)
    with ReplayBuffer(tmp_path) as buf:
        buf.add([seg])
        buf._log.append(encode_segment(seg), durable=True)
        buf.add([make_segment(0, 1, 2)])
    with ReplayBuffer(tmp_path) as buf:
        assert buf.storage.segment_keys == ["0:0", "0:1"] and len(buf) == 6
        assert buf.stats()["duplicates"] == 1 and buf.problems == []


def test_frame_that_is_not_a_segment_is_reported_with_its_offset(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path) as buf:
        buf.add([make_segment(0, 0, 2)])
        offset = (tmp_path / file_name(0)).stat().st_size
        buf._log.append(b"not a segment", durable=True)
        buf.add([make_segment(0, 1, 2)])
    with ReplayBuffer(tmp_path) as buf:
        assert buf.storage.segment_keys == ["0:0", "0:1"]
        [problem] = buf.problems
        assert (problem.file, problem.offset) == (tmp_path / file_name(0), offset)
        assert "frame skipped" in problem.what and "codec format" in problem.what


def test_human_weighted_sampler_draws_the_requested_share(tmp_path: Path) -> None:
    storage = ReplayStorage(labels_only=False)
    storage.add(make_segment(0, 0, 900, controller="policy"))
    storage.add(make_segment(0, 1, 100, controller="operator:2"))
    rng = np.random.default_rng(0)
    f, p = 0.5, 0.1
    draws = np.concatenate([HumanWeightedSampler(f).sample(storage, 250, rng) for _ in range(40)])
    share = storage.get(draws)["human"].mean()
    expected = f + (1 - f) * p  # the non-human part is uniform over all steps
    sd = np.sqrt(p * (1 - p) * (1 - f) / len(draws))
    assert abs(share - expected) < 5 * sd
    uniform = storage.get(UniformSampler().sample(storage, 10_000, rng))["human"].mean()
    assert abs(uniform - p) < 5 * np.sqrt(p * (1 - p) / 10_000)


def test_demonstrations_are_labels_but_not_up_weighted(tmp_path: Path) -> None:
    storage = ReplayStorage()
    storage.add(make_segment(0, 0, 900, controller="demo"))
    storage.add(make_segment(0, 1, 100, controller="operator:0"))
    assert storage.labelled == 1000 and len(storage.intervention_indices()) == 100
    draws = HumanWeightedSampler(0.5).sample(storage, 20_000, np.random.default_rng(0))
    share = (draws >= 900).mean()  # the operator's steps are stored after the demo's
    assert abs(share - 0.55) < 0.02


def test_human_weighted_sampler_falls_back_to_uniform(tmp_path: Path) -> None:
    storage = ReplayStorage(labels_only=False)
    storage.add(make_segment(0, 0, 10, controller="policy"))
    idx = HumanWeightedSampler(0.9).sample(storage, 64, np.random.default_rng(1))
    assert len(idx) == 64 and idx.min() >= 0 and idx.max() < 10


def test_labels_only_keeps_human_steps_and_counts_policy_steps(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path) as buf:
        buf.add([make_segment(0, 0, 7, controller="policy"), make_segment(0, 1, 3, controller="demo")])
        stats = buf.stats()
        assert (stats["segments"], stats["steps"], stats["human_steps"]) == (2, 10, 3)
        assert (stats["stored_steps"], stats["labelled_steps"]) == (3, 3)
        batch, _ = buf.sample(32)
        assert batch["human"].all() and batch["obs"].shape == (32, 3) and batch["action"].shape == (32, 2)


@pytest.mark.parametrize(("field", "bad"), [
    ("obs", lambda s: s.obs.astype(np.float64)),
    ("reward", lambda s: s.reward[:-1]),
    ("action", lambda s: np.full_like(s.action, np.nan)),
    ("action", lambda s: np.zeros((len(s), 5), np.float32)),  # width differs from what is stored
    ("robot", lambda s: "zero"),
])
def test_invalid_segment_is_rejected_and_nothing_is_written(tmp_path: Path, field: str, bad: object) -> None:
    with ReplayBuffer(tmp_path) as buf:
        buf.add([make_segment(0, 0, 4)])
        before, stats = log_bytes(tmp_path), buf.stats()
        seg = make_segment(1, 7, 4)
        setattr(seg, field, bad(seg))  # type: ignore[operator]
        with pytest.raises(InvalidSegment, match=f"'{field}'") as err:
            buf.add([make_segment(2, 0, 3), seg])
        assert err.value.key == seg.key and seg.key in str(err.value)
        assert log_bytes(tmp_path) == before and buf.stats() == stats and "2:0" not in buf


def test_first_sampled_keys_are_reported_once(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path, seed=3) as buf:
        buf.add([make_segment(0, s, 5) for s in range(4)])
        seen: list[str] = []
        for _ in range(30):
            _, first = buf.sample(8)
            seen += first
        assert sorted(seen) == ["0:0", "0:1", "0:2", "0:3"]
        buf.add([make_segment(1, 0, 50)])
        firsts = [buf.sample(64)[1] for _ in range(5)]
        assert sum(firsts, []) == ["1:0"]


def test_normalizer_matches_labelled_steps(tmp_path: Path) -> None:
    storage = ReplayStorage(labels_only=False)
    with pytest.raises(ValueError, match="no steps"):
        storage.normalizer()
    segs = [make_segment(0, s, 5 + s, controller="policy" if s == 1 else "operator:0") for s in range(4)]
    for seg in segs:
        storage.add(seg)
    human = [s for s in segs if s.human]
    obs = np.concatenate([s.obs for s in human])
    act = np.concatenate([s.action for s in human])
    obs_mean, obs_std, act_mean, act_std = storage.normalizer()
    assert obs_mean.dtype == np.float32 and act_std.dtype == np.float32
    np.testing.assert_allclose(obs_mean, obs.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obs_std, obs.std(0), rtol=1e-5)
    np.testing.assert_allclose(act_mean, act.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(act_std, act.std(0), rtol=1e-5)


def test_empty_buffer_cannot_sample(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path) as buf:
        with pytest.raises(ValueError, match="empty"):
            buf.sample(4)
        assert buf.add([make_segment(0, 0, 0)]) == ["0:0"]  # an empty segment is fine, but stores nothing
        assert len(buf) == 0 and buf.stats()["segments"] == 1


def with_images(seg: Segment) -> Segment:
    """Each step's image is filled with a value derived from its obs, so a batch's pairing can be checked."""
    codes = (np.abs(seg.obs[:, 0]) * 50).astype(np.uint8)
    seg.image = np.broadcast_to(codes[:, None, None, None], (len(seg), 8, 8, 3)).copy()
    return seg


def test_camera_images_are_durable_replayed_and_sampled_with_their_steps(tmp_path: Path) -> None:
    buf = ReplayBuffer(tmp_path, seed=1)
    buf.add([with_images(make_segment(0, i, 6)) for i in range(3)])
    buf.close()
    again = ReplayBuffer(tmp_path, seed=1)  # a restarted buffer has the images back from the log
    batch, _ = again.sample(40)
    assert batch["image"].shape == (40, 8, 8, 3) and batch["image"].dtype == np.uint8
    np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], (np.abs(batch["obs"][:, 0]) * 50).astype(np.uint8))
    with pytest.raises(InvalidSegment, match="images of"):  # another camera size cannot join the storage
        seg = make_segment(0, 9, 2)
        seg.image = np.zeros((2, 4, 4, 3), np.uint8)
        again.add([seg])
    again.close()


def test_action_chunks_and_observation_histories_stay_within_their_segment() -> None:
    """Segments of 3 and 4 steps, stored back to back: windows are cut at each segment's ends and edge-padded."""
    storage = ReplayStorage()
    first, second = make_segment(0, 0, 3), make_segment(0, 1, 4)
    storage.add(first)
    storage.add(second)
    batch = storage.get(np.array([1, 2, 3]), horizon=3, history=2)
    act, obs = np.r_[first.action, second.action], np.r_[first.obs, second.obs]
    # step 1: actions 1, 2 and step 2 again (its segment ends at 3); observations 0, 1
    np.testing.assert_array_equal(batch["action"][0], act[[1, 2, 2]])
    np.testing.assert_array_equal(batch["obs"][0], obs[[0, 1]])
    # step 2: the last of its segment, repeated; step 3: the first of the next, its past is itself
    np.testing.assert_array_equal(batch["action"][1], act[[2, 2, 2]])
    np.testing.assert_array_equal(batch["action"][2], act[[3, 4, 5]])
    np.testing.assert_array_equal(batch["obs"][2], obs[[3, 3]])
    assert batch["pad"].tolist() == [[False, False, True], [False, True, True], [False, False, False]]
    single = storage.get(np.array([1]))
    assert single["action"].shape == (1, 2) and single["obs"].shape == (1, 3) and "pad" not in single


def test_centred_mean_by_hand() -> None:
    x = np.array([[0.0], [3.0], [6.0], [9.0], [12.0]], np.float32)
    assert centred_mean(x, 1) is x
    assert np.allclose(centred_mean(x, 3)[:, 0], [1.5, 3.0, 6.0, 9.0, 10.5])  # the ends average the rows they have
    assert np.allclose(centred_mean(x, 5)[:, 0], [3.0, 4.5, 6.0, 7.5, 9.0])
    assert centred_mean(x, 3).dtype == np.float32


def test_a_persons_labels_train_smoothed_while_the_log_keeps_what_was_sent(tmp_path: Path) -> None:
    human, robot = make_segment(0, 0, 6), make_segment(0, 1, 6, controller="policy")
    with ReplayBuffer(tmp_path, labels_only=False, label_window=3) as buf:
        buf.add([human, robot])
        stored = buf.storage.get(np.arange(12))["action"]
        _, _, act_mean, _ = buf.normalizer()
    assert np.allclose(stored[:6], centred_mean(human.action, 3))  # the person's steps: their centred mean
    assert not np.allclose(stored[:6], human.action)
    assert np.allclose(stored[6:], robot.action)  # the policy's own steps as they were
    assert np.allclose(act_mean, centred_mean(human.action, 3).mean(0), atol=1e-6)  # normalised as trained
    with ReplayBuffer(tmp_path, label_window=1) as again:  # the log holds the raw actions
        assert np.allclose(again.storage.get(np.arange(6))["action"], human.action)


@pytest.mark.parametrize("window", [0, 2, -1])
def test_label_window_must_be_odd_and_positive(window: int) -> None:
    with pytest.raises(ValueError, match="label_window"):
        ReplayStorage(label_window=window)
