"""A nudge's steps downstream: the replay buffer samples them as corrections (with the corrected action), the
exports label them (nudge, residual), and the run's numbers count them."""

import h5py
import numpy as np
import pyarrow.parquet as pq

from buffers.samplers import HumanWeightedSampler
from buffers.schema import Segment, is_intervention, operator_of
from buffers.storage import ReplayStorage
from dagger.episodes import read_episodes
from dagger.formats.lerobot import write_lerobot
from dagger.formats.robomimic import read_robomimic, write_robomimic
from dagger.metrics import summarize
from workers.buffer import BufferWorker


def segment(seq, controller, n, start=0, done=False):
    """n steps whose policy acted -0.2 and whose executed action was i / 10 (a nudge's residual: i / 10 + 0.2)."""
    steps = [{"obs": np.full(3, 10 * seq + i, np.float32), "action": np.full(2, i / 10, np.float32),
              "policy_action": np.full(2, -0.2, np.float32), "version": 1, "spread": 0.0, "threshold": 0.0,
              "reward": 0.0, "success": False, "constraint": False, "done": done and i == n - 1, "step": start + i,
              "t_wall": 100.0 + start + i} for i in range(n)]
    return Segment.from_steps(0, seq, 0, controller, "episode_end" if done else "handback", 1.0, steps)


def run_segments():
    return [segment(0, "policy", 3), segment(1, "nudge:2", 4, 3), segment(2, "operator:2", 2, 7),
            segment(3, "policy", 2, 9, done=True)]


def test_a_nudge_is_an_operators_correction():
    assert is_intervention("nudge:2") and is_intervention("operator:2") and not is_intervention("demo")
    assert [operator_of(c) for c in ("nudge:2", "operator:7", "policy", "demo")] == [2, 7, -1, -1]


def test_the_learner_samples_nudged_steps_with_their_corrected_action():
    storage = ReplayStorage()
    for seg in run_segments():
        storage.add(seg)
    nudged = storage.intervention_indices()
    assert len(nudged) == 4 + 2  # the nudge's steps and the takeover's
    idx = HumanWeightedSampler(1.0).sample(storage, 256, np.random.default_rng(0))
    assert set(idx) <= set(nudged) and {int(i) for i in nudged[:4]} <= set(idx)
    np.testing.assert_allclose(storage.get(nudged[:4])["action"], np.repeat(np.arange(4)[:, None] / 10, 2, axis=1),
                               atol=1e-6)  # what executed: the policy's action plus the nudge


def test_exports_label_nudges_and_their_residual(tmp_path):
    buffer = BufferWorker(str(tmp_path / "segments"), 0.0, 0)
    buffer.add(run_segments())
    [episode] = read_episodes(tmp_path / "segments")
    assert episode.controller == ["policy"] * 3 + ["nudge:2"] * 4 + ["operator:2"] * 2 + ["policy"] * 2
    nudge = np.array([False] * 3 + [True] * 4 + [False] * 4)
    residual = np.zeros((11, 1))
    residual[3:7, 0] = np.arange(4) / 10 + 0.2
    write_robomimic([episode], tmp_path / "d.hdf5", task="point")
    with h5py.File(tmp_path / "d.hdf5") as f:
        demo = f["data/demo_0"]
        np.testing.assert_array_equal(demo["nudge"][()], nudge)
        np.testing.assert_allclose(demo["residual"][()], np.repeat(residual, 2, axis=1), atol=1e-6)
        np.testing.assert_array_equal(demo["intervention"][()], [False] * 3 + [True] * 6 + [False] * 2)
        np.testing.assert_array_equal(demo["operator"][()], [-1] * 3 + [2] * 6 + [-1] * 2)
    [back] = read_robomimic(tmp_path / "d.hdf5")
    np.testing.assert_array_equal(back.nudge, nudge)
    write_lerobot([episode], tmp_path / "ds", task="point")
    [data] = sorted((tmp_path / "ds" / "data").rglob("*.parquet"))
    table = pq.read_table(data)
    np.testing.assert_array_equal(table.column("nudge").to_numpy(), nudge)
    np.testing.assert_allclose(np.array(table.column("residual").to_pylist()), np.repeat(residual, 2, axis=1),
                               atol=1e-6)


def test_the_report_counts_nudged_steps_nudges_and_escalations():
    segs = run_segments()
    events = [{"ev": "run_start", "t": 0.0}]
    events += [{"ev": "segment", "t": float(i), "robot": 0, **{k: v for k, v in s.event().items() if k != "ev"}}
               for i, s in enumerate(segs)]
    events += [{"ev": "takeover", "t": 3.0, "robot": 0, "operator": 2, "gated": "robot", "wait_s": 0.0,
                "mode": "nudge"}, {"ev": "nudge_escalated", "t": 7.0, "robot": 0, "operator": 2}]
    summary = summarize(events)
    assert (summary["human_steps"], summary["nudged_steps"]) == (6, 4)
    assert (summary["takeovers"], summary["nudges"], summary["nudge_escalations"]) == (1, 1, 1)
