"""`dagger export --format lerobot`: a run's episodes as a LeRobotDataset v3.0 directory, checked against the layout
and schema LeRobot's own code writes (huggingface/lerobot src/lerobot/datasets/), read back bit for bit."""

from __future__ import annotations

import json
import shutil
import sys
from itertools import pairwise

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings

from buffers.schema import NO_IMAGE, STEP_FIELDS
from dagger.app.cli import main
from dagger.episodes import Episode
from dagger.formats.lerobot import read_lerobot, write_lerobot
from dagger.tasks import make_task
from tests.dataset_cases import assert_same, camera_episodes, episodes, make_run, zero_episodes


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path)


def test_the_export_follows_lerobots_v3_layout_and_schema(run, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["export", str(run), "--format", "lerobot", "--out", str(out)]) == 0
    assert "2 episodes, 14 steps (2 by operators) of point" in capsys.readouterr().out
    # datasets/utils.py: INFO_PATH, STATS_PATH, DEFAULT_TASKS_PATH, DEFAULT_EPISODES_PATH, DEFAULT_DATA_PATH
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json",
                     "meta/stats.json", "meta/tasks.parquet"]
    task = make_task("point")
    info = json.loads((out / "meta/info.json").read_text())
    assert {k: info[k] for k in info if k != "features"} == {  # datasets/utils.py DatasetInfo, its defaults
        "codebase_version": "v3.0", "fps": round(1 / task.dt), "total_episodes": 2, "total_frames": 14,
        "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
        "robot_type": "point", "splits": {"train": "0:2"}}
    features = info["features"]
    assert features["observation.state"] == {"dtype": "float32", "shape": [3], "names": ["state_0", "state_1",
                                                                                         "state_2"]}
    assert features["action"]["shape"] == [2] and features["policy_action"]["shape"] == [2]
    assert list(features)[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    assert features["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}  # utils/constants.py
    assert {features[k]["dtype"] for k in ("frame_index", "episode_index", "index", "task_index", "operator")} == {
        "int64"}
    assert (features["next.reward"]["dtype"], features["next.done"]["dtype"], features["controller"]["dtype"]) == (
        "float32", "bool", "string")

    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert data.column_names == list(features)  # feature_utils.get_hf_features_from_features: same order
    schema = data.schema
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 3)  # Sequence(length=3) → fixed list
    assert schema.field("action").type == pa.list_(pa.float32(), 2) == schema.field("policy_action").type
    assert all(schema.field(k).type == pa.int64() for k in ("frame_index", "episode_index", "index", "task_index"))
    assert schema.field("timestamp").type == pa.float32() and schema.field("next.done").type == pa.bool_()
    assert schema.field("controller").type == pa.string()
    assert data.column("index").to_pylist() == list(range(14))
    assert data.column("frame_index").to_pylist() == list(range(9)) + list(range(5))
    assert data.column("timestamp").to_pylist()[:2] == [0.0, np.float32(1 / info["fps"])]  # frame_index / fps
    assert data.column("intervention").to_pylist() == [False] * 3 + [True] * 2 + [False] * 9
    assert data.column("controller").to_pylist()[3] == "operator:1" and data.column("operator").to_pylist()[3] == 1

    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet")
    assert episodes.column_names[:7] == ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                                         "dataset_from_index", "dataset_to_index"]  # dataset_metadata.save_episode
    assert episodes.column_names[-3:] == ["missing", "meta/episodes/chunk_index", "meta/episodes/file_index"]
    assert episodes.column("missing").to_pylist() == ["", ""]  # whole episodes (see test_export's gappy_run)
    rows = episodes.to_pylist()
    assert [(r["episode_index"], r["length"], r["tasks"]) for r in rows] == [(0, 9, [task.instruction]),
                                                                             (1, 5, [task.instruction])]
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in rows] == [(0, 9), (9, 14)]  # a partition
    assert rows[0]["stats/action/max"] == [float(np.float32(0.3))] * 2 and rows[1]["stats/next.success/count"] == [5]

    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0], "task": [task.instruction]}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]  # pandas reads it back indexed

    stats = json.loads((out / "meta/stats.json").read_text())
    assert "controller" not in stats and set(stats) == set(features) - {"controller"}  # strings have none
    state = np.asarray(data.column("observation.state").to_pylist(), np.float32)
    s = stats["observation.state"]
    assert list(s) == ["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]  # compute_stats.py
    assert s["min"] == state.min(0).tolist() and s["max"] == state.max(0).tolist() and s["count"] == [14]
    assert np.allclose(s["mean"], state.mean(0)) and np.allclose(s["std"], state.std(0), rtol=1e-5)
    for q in ("q01", "q10", "q50", "q90", "q99"):  # per episode from a 5000-bin histogram, then the envelope
        assert np.all(np.asarray(s[q]) >= state.min(0) - 1e-6) and np.all(np.asarray(s[q]) <= state.max(0) + 1e-6)
    per_episode = [np.quantile(state[a:b], 0.5, axis=0) for a, b in ((0, 9), (9, 14))]
    assert np.allclose(s["q50"], np.min(per_episode, axis=0), atol=(state.max() - state.min()) / 1000)
    assert stats["next.reward"]["mean"] == [-1.0] and stats["index"]["max"] == [13.0]


def test_an_export_into_a_directory_that_holds_files_says_so(run, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert main(["export", str(run), "--format", "lerobot", "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_image_episodes_are_png_frames_read_back_exactly(tmp_path):
    (ep,) = camera_episodes((4,), (6, 5, 3))
    images = ep.steps["image"]
    write_lerobot([ep], tmp_path / "ds", "point", video=False)
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["features"]["observation.image"]["dtype"] == "image" and info["video_path"] is None
    assert info["features"]["observation.image"]["names"] == ["height", "width", "channels"]
    assert not (tmp_path / "ds/videos").exists()
    data = pq.read_table(tmp_path / "ds/data/chunk-000/file-000.parquet")
    assert data.schema.field("observation.image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert data.column("observation.image")[0].as_py()["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    stats = json.loads((tmp_path / "ds/meta/stats.json").read_text())["observation.image"]
    assert np.asarray(stats["mean"]).shape == (3, 1, 1)  # per channel, in [0, 1]
    assert np.allclose(np.asarray(stats["mean"]).ravel(), images.reshape(-1, 3).mean(0) / 255, atol=1e-6)
    (back,) = read_lerobot(tmp_path / "ds")
    assert back.steps["image"].tobytes() == images.tobytes()


def test_without_pyav_camera_frames_are_png(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    eps = camera_episodes((2, 3))
    write_lerobot(eps, tmp_path / "ds", "point")
    assert json.loads((tmp_path / "ds/meta/info.json").read_text())["features"]["observation.image"]["dtype"] == "image"
    assert_same(eps, read_lerobot(tmp_path / "ds"))


def test_a_video_dataset_follows_lerobots_v3_layout(tmp_path):
    eps = camera_episodes((3, 2, 4))  # 6 high, 4 wide; fps 20: 0.05 s a frame
    out = tmp_path / "ds"
    assert write_lerobot(eps, out, "point") == 9
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json",
                     "meta/stats.json", "meta/tasks.parquet", "videos/observation.image/chunk-000/file-000.mp4"]
    info = json.loads((out / "meta/info.json").read_text())
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert (info["fps"], info["video_files_size_in_mb"], info["chunks_size"]) == (20, 200, 1000)
    assert info["features"]["observation.image"] == {  # video_utils.py get_video_info (lerobot 0.4), of the file
        "dtype": "video", "shape": [6, 4, 3], "names": ["height", "width", "channels"],
        "info": {"video.height": 6, "video.width": 4, "video.codec": "h264", "video.pix_fmt": "gbrp",
                 "video.is_depth_map": False, "video.fps": 20, "video.channels": 3, "has_audio": False}}
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert "observation.image" not in data.column_names  # get_hf_features_from_features skips videos
    assert data.column_names == [k for k in info["features"] if k != "observation.image"]
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet")
    video = [f"videos/observation.image/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    assert episodes.column_names[7:11] == video  # after the data's columns, before the stats (save_episode)
    assert [episodes.column(c).to_pylist() for c in video] == [[0, 0, 0], [0, 0, 0], [0.0, 0.15, 0.25],
                                                               [0.15, 0.25, 0.45]]
    stats = json.loads((out / "meta/stats.json").read_text())["observation.image"]
    images = np.concatenate([ep.steps["image"] for ep in eps])
    assert np.allclose(np.asarray(stats["max"]).ravel(), images.reshape(-1, 3).max(0) / 255)
    with av.open(str(out / "videos/observation.image/chunk-000/file-000.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec.canonical_name, stream.pix_fmt, stream.width, stream.height) == ("h264", "gbrp", 4, 6)
        frames = list(container.decode(stream))
    assert [float(f.pts * stream.time_base) for f in frames] == [i / 20 for i in range(9)]
    assert np.array_equal(np.stack([f.to_ndarray(format="rgb24") for f in frames]), images)  # lossless
    keys = [f.key_frame for f in frames]
    assert keys[0] and keys[3] and keys[5] and all(a or b for a, b in pairwise(keys))  # episodes start on one; g=2


@settings(max_examples=8, deadline=None)
@given(episodes(shapes=((4, 6, 3), (5, 7, 3), (1, 1, 3))))
def test_camera_frames_go_through_mp4_bit_for_bit(tmp_path_factory, eps):
    path = tmp_path_factory.mktemp("mp4") / "ds"
    write_lerobot(eps, path, "point", video=True)
    height, width = eps[0].steps["image"].shape[1:3]  # odd sizes too: libx264rgb is 4:4:4, no even-size rule
    assert json.loads((path / "meta/info.json").read_text())["features"]["observation.image"]["info"][
        "video.width"] == width
    assert_same(eps, read_lerobot(path))


def test_files_roll_over_at_lerobots_sizes(tmp_path):
    eps = camera_episodes((3, 2, 4, 1, 2))
    out = tmp_path / "ds"
    write_lerobot(eps, out, "point", data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6, chunks_size=2)
    rows = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    places = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]  # one episode a file, two files a chunk
    assert [(r["data/chunk_index"], r["data/file_index"]) for r in rows] == places
    key = "videos/observation.image/"
    assert [(r[key + "chunk_index"], r[key + "file_index"]) for r in rows] == places
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in rows] == [(0, 3), (3, 5), (5, 9), (9, 10),
                                                                                (10, 12)]
    assert [(r[key + "from_timestamp"], r[key + "to_timestamp"]) for r in rows] == [
        (0.0, 0.15), (0.0, 0.1), (0.0, 0.2), (0.0, 0.05), (0.0, 0.1)]
    names = [f"chunk-{c:03d}/file-{f:03d}" for c, f in places]
    assert sorted(str(p.relative_to(out / "data")) for p in (out / "data").rglob("*.parquet")) == [
        n + ".parquet" for n in names]
    assert sorted(str(p.relative_to(out / "videos/observation.image")) for p in out.glob("videos/**/*.mp4")) == [
        n + ".mp4" for n in names]
    assert pq.read_table(out / "data/chunk-001/file-000.parquet").column("index").to_pylist() == [5, 6, 7, 8]
    assert_same(eps, read_lerobot(out))


def test_episodes_share_files_until_the_size_is_reached(tmp_path):
    eps = camera_episodes((4,) * 8, (16, 16, 3))  # ~3 kB of incompressible frames an episode
    out = tmp_path / "ds"
    write_lerobot(eps, out, "point", data_files_size_in_mb=0.01, video_files_size_in_mb=0.01)
    rows = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for kind in ("data", "videos/observation.image"):
        files = [r[f"{kind}/file_index"] for r in rows]
        assert files == sorted(files) and 1 < len(set(files)) < len(eps), (kind, files)
    key = "videos/observation.image/"
    for before, row in zip(rows, rows[1:], strict=False):  # a file's timestamps go on; a new file starts at 0
        same = before[key + "file_index"] == row[key + "file_index"]
        assert row[key + "from_timestamp"] == (before[key + "to_timestamp"] if same else 0.0)
        assert row[key + "to_timestamp"] == pytest.approx(row[key + "from_timestamp"] + 0.2)
    assert_same(eps, read_lerobot(out))


def test_a_short_truncated_or_missing_video_names_the_file_and_the_episode(tmp_path):
    out, short = tmp_path / "ds", tmp_path / "short"
    write_lerobot(camera_episodes((3, 4)), out, "point")
    write_lerobot(camera_episodes((3,)), short, "point")
    mp4 = "videos/observation.image/chunk-000/file-000.mp4"
    whole = (out / mp4).read_bytes()
    (out / mp4).write_bytes((short / mp4).read_bytes())  # episode 1's frames (0.15 s on) are not in it
    with pytest.raises(ValueError, match=r"episode 1: .*file-000\.mp4: no frame at 0\.1500 s \(frame 0 of 4\); "
                                         r"the file holds 3 frames"):
        read_lerobot(out)
    (out / mp4).write_bytes(whole[:len(whole) * 3 // 4])
    with pytest.raises(ValueError, match=r"episode 0: .*file-000\.mp4: not a readable video"):
        read_lerobot(out)
    (out / mp4).unlink()
    with pytest.raises(ValueError, match=r"episode 0: .*file-000\.mp4: not a readable video"):
        read_lerobot(out)


@settings(max_examples=30, deadline=None)
@given(episodes(images=False))
def test_export_then_import_gives_the_same_steps_bit_for_bit(tmp_path_factory, eps):
    path = tmp_path_factory.mktemp("rt") / "ds"
    assert write_lerobot(eps, path, "point") == sum(len(ep) for ep in eps)
    back = read_lerobot(path)
    assert_same(eps, back)


def test_someone_elses_lerobot_dataset_is_read_with_defaults(tmp_path):
    n = 3
    eps = [Episode(5, 7, {name: np.ones((n, 2) if name in ("obs", "action", "policy_action") else
                                        (n, *NO_IMAGE.shape) if name == "image" else (n,), dtype)
                          for name, dtype in STEP_FIELDS.items()}, ["policy"] * n)]
    write_lerobot(eps, tmp_path / "ds", "point")
    path = tmp_path / "ds/data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).select(["observation.state", "action", "timestamp", "frame_index",
                                               "episode_index", "index", "task_index"]), path)
    (ep,) = read_lerobot(tmp_path / "ds")
    assert (ep.robot, ep.episode, ep.controller) == (-1, 0, ["demo"] * n)
    assert ep.steps["policy_action"].tolist() == [[1.0, 1.0]] * n and ep.steps["done"].tolist() == [False, False, True]
    assert ep.steps["step"].tolist() == [0, 1, 2] and ep.steps["version"].dtype == np.int64


def test_a_run_starts_from_an_exported_lerobot_dataset(run, tmp_path, capsys):
    from dagger.events import read_events

    out = tmp_path / "ds"
    assert main(["export", str(run), "--format", "lerobot", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["import", str(out), "--task", "reach"]) == 2  # 20 frames a second: not reach's 80
    assert capsys.readouterr().err.endswith("meta/info.json: fps 20; task reach runs at 80 (a step of 0.0125 s)\n")
    task = make_task("point")
    theirs = zero_episodes(task.obs_dim, task.act_dim, (7, 5))
    write_lerobot(theirs, tmp_path / "theirs", "point")
    assert main(["import", str(tmp_path / "theirs"), "--task", "point"]) == 0
    run_dir = tmp_path / "started"
    assert main(["start", "--in-process", "--task", "point", "--steps", "100", "--demos", str(tmp_path / "theirs"),
                 "demos=0", "--run-dir", str(run_dir), "learner.pretrain_updates=10", "eval.every_versions=0"]) == 0
    start = next(e for e in read_events(run_dir / "events.jsonl") if e["ev"] == "policy_start")
    assert (start["demo_episodes"], start["demo_steps"]) == (2, 12)


EPISODES, DATA = "meta/episodes/chunk-000/file-000.parquet", "data/chunk-000/file-000.parquet"


def _set_rows(root, change):
    rows = pq.read_table(root / EPISODES).to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, pq.read_table(root / EPISODES).schema), root / EPISODES)


def _set_column(root, name, values):
    table = pq.read_table(root / DATA)
    pq.write_table(table.set_column(table.schema.get_field_index(name), name, values), root / DATA)


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda d: _set_rows(d, lambda r: r[1].update(dataset_from_index=2, dataset_to_index=6)),
     r"episode 1: meta/episodes gives rows 2:6: data row 2 has episode_index 0"),
    (lambda d: _set_rows(d, lambda r: r[2].update(dataset_to_index=40)),
     r"episode 2: meta/episodes gives rows 9:40: outside the data's 12 rows"),
    (lambda d: _set_rows(d, lambda r: r[0].update(length=99)),
     r"episode 0: meta/episodes gives rows 0:5: 5 rows, its length says 99"),
    (lambda d: _set_rows(d, lambda r: [x.update(episode_index=2 - x["episode_index"]) for x in r]),
     r"episode 0: meta/episodes gives rows 9:12: data row 9 has episode_index 2"),
    (lambda d: _set_column(d, "index", pa.array(np.arange(1, 13))),
     r"episode 0: meta/episodes gives rows 0:5: the data's 'index' column does not count 0 to 4 there"),
    (lambda d: _set_column(d, "observation.state", pa.array([[0.0] * 3] * 11 + [[0.0] * 2], pa.list_(pa.float32()))),
     r"episode 2: column 'observation.state': rows of different lengths"),
    (lambda d: shutil.rmtree(d / "meta/episodes"), r"meta/episodes/chunk-\*/\*.parquet: no such files"),
    (lambda d: shutil.rmtree(d / "data"), r"data/chunk-\*/file-\*.parquet: no such files"),
    (lambda d: pq.write_table(pq.read_table(d / DATA).drop(["index"]), d / DATA),
     r"data/chunk-000/file-000.parquet: no column 'index'$"),
    (lambda d: (d / "meta/info.json").write_text("{"), r"meta/info.json: not JSON \(Expecting property name"),
    (lambda d: (d / DATA).write_bytes(b"PAR1 torn"), r"file-000.parquet: not a readable parquet file"),
])
def test_a_dataset_whose_rows_or_files_do_not_fit_is_named_in_one_line(tmp_path, break_it, message):
    eps = zero_episodes(3, 2, (5, 4, 3))
    for i, ep in enumerate(eps):
        ep.steps["obs"][:] = i
    root = tmp_path / "ds"
    write_lerobot(eps, root, "point")
    break_it(root)
    with pytest.raises(ValueError, match=message) as err:
        read_lerobot(root)
    assert len(str(err.value).splitlines()) == 1 and str(err.value).startswith(str(root))


def lerobot_reads(table: pa.Table) -> dict[str, list]:
    """A data file's frames as LeRobotDataset hands them out: `datasets` gives hf_transform_to_torch Python values
    (pa.Table.to_pydict), and it makes a tensor of each but strings (lerobot datasets/io_utils.py), so a Python float
    becomes float32 and a Python int int64."""
    import torch

    return {name: [x if isinstance(x, str) else torch.tensor(x) for x in values]
            for name, values in table.to_pydict().items()}


def test_every_feature_and_the_wall_time_read_exactly_as_lerobot_converts_them(tmp_path):
    from dagger.formats.wall_time import from_ns

    (ep,) = zero_episodes(3, 2, (40,))
    ep.steps["t_wall"] = 1.7e9 + np.arange(40) * 0.05  # 20 steps a second, today's Unix time
    ep.steps["obs"] = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    write_lerobot([ep], tmp_path / "ds", "point")
    table = pq.read_table(tmp_path / "ds/data/chunk-000/file-000.parquet")
    tensors = lerobot_reads(table)
    for name in table.column_names:  # every number LeRobot hands out is the one written
        values = np.asarray(table.column(name).to_pylist()) if name != "controller" else None
        if values is not None:
            read = np.stack([t.numpy() for t in tensors[name]])
            assert read.shape == values.shape and (read == values).all(), name
    times = np.array([t.item() for t in tensors["t_wall_ns"]])
    assert str(tensors["t_wall_ns"][0].dtype) == "torch.int64" and (np.diff(times) > 0).all()  # each its own time
    assert from_ns(times).tobytes() == ep.steps["t_wall"].tobytes()  # dagger's float64 seconds, bit for bit


def test_a_lerobot_dataset_with_float_seconds_in_t_wall_still_reads(tmp_path):
    (ep,) = zero_episodes(3, 2, (4,))
    ep.steps["t_wall"] = 1.7e9 + np.arange(4) * 0.05
    root = tmp_path / "ds"
    write_lerobot([ep], root, "point")
    table = pq.read_table(root / DATA)  # as exports before t_wall_ns wrote it: float64 seconds
    column = table.schema.get_field_index("t_wall_ns")
    pq.write_table(table.set_column(column, "t_wall", pa.array(ep.steps["t_wall"], pa.float64())), root / DATA)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"] = {("t_wall" if k == "t_wall_ns" else k): v | ({"dtype": "float64"} if k == "t_wall_ns" else {})
                        for k, v in info["features"].items()}
    (root / "meta/info.json").write_text(json.dumps(info))
    (back,) = read_lerobot(root)
    assert back.steps["t_wall"].tobytes() == ep.steps["t_wall"].tobytes()
