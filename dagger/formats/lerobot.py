"""LeRobotDataset v3.0 (huggingface/lerobot, src/lerobot/datasets/), written and read with pyarrow as LeRobot writes it:

    meta/info.json                               codebase_version "v3.0", fps, features, counts, path templates
    meta/stats.json                              per feature: min max mean std count q01 q10 q50 q90 q99 (lerobot_stats)
    meta/tasks.parquet                           task_index, indexed by the task's text (pandas index "task")
    meta/episodes/chunk-000/file-000.parquet     per episode: tasks, length, data and video files, stats, missing
    data/chunk-CCC/file-FFF.parquet              one row a frame; vectors as fixed_size_list<float>[n]
    videos/observation.image/chunk-CCC/file-FFF.mp4    camera frames, episodes one after another

Frames carry dagger's labels beside LeRobot's features (observation.state, action, next.reward, next.done,
next.success): controller (who acted, a string), intervention, nudge and residual (an operator's nudge: the action
minus the policy's, zero elsewhere), operator, policy_action, policy_version, gate_score,
gate_threshold, constraint, step, t_wall_ns (int64 nanoseconds since 1970: LeRobot reads float features as float32,
see wall_time), robot and robot_episode; the robomimic export names them alike. An episode the segment log lost part
of is split there, each piece a LeRobot episode of its own (no frame straddles the gap), and meta/episodes' `missing`
says what is lost beside it ("" for a whole episode). Datasets written with float64
seconds in t_wall still read. Camera images (observation.image) are a "video" feature when PyAV imports: lossless
H.264 (libx264rgb, crf 0), so they read back bit for bit; otherwise (or with video=False) PNG bytes in the parquet,
as LeRobot's "image" features are. Data and video files roll over to the next
file at LeRobot's sizes (data_files_size_in_mb, video_files_size_in_mb; a new chunk every chunks_size files).

    write_lerobot(episodes, "corrections", task="reach")
    episodes = read_lerobot("corrections")
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from buffers.schema import NO_IMAGE, STEP_FIELDS
from dagger.episodes import Episode, with_defaults
from dagger.formats import mp4, wall_time
from dagger.formats.lerobot_stats import aggregate, feature_stats

CODEBASE_VERSION = "v3.0"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"  # lerobot datasets/utils.py CHUNK_FILE_PATTERN
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"  # utils.py DEFAULT_VIDEO_PATH
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
DEFAULT_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")  # lerobot utils/constants.py
IMAGE = "observation.image"
LABELS = {"policy_action": "policy_action", "policy_version": "version", "gate_score": "spread",
          "gate_threshold": "threshold", "next.reward": "reward", "next.done": "done", "next.success": "success",
          "constraint": "constraint", "step": "step"}
"""the frame column -> the step field, beside observation.state, action and wall_time.COLUMN"""
ARROW = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_(),
         "string": pa.string()}
PNG = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # the Arrow storage of datasets.Image
MB = 1024**2  # io_utils.py get_file_size_in_mb
"""H.264 in planar RGB (4:4:4: any width and height, no even-size rule), crf 0 = lossless; LeRobot's GOP of 2"""
TOLERANCE_S = 1e-4  # lerobot_dataset.py tolerance_s: how far a decoded frame may sit from the asked timestamp


def _features(first: Episode, video: bool) -> dict[str, dict[str, Any]]:
    """info.json's features: dagger's, then LeRobot's defaults (dataset_metadata.py create: {**features, **DEFAULT})."""
    def vector(name: str, width: int) -> dict[str, Any]:
        return {"dtype": "float32", "shape": [width], "names": [f"{name}_{i}" for i in range(width)]}

    def scalar(dtype: str) -> dict[str, Any]:
        return {"dtype": dtype, "shape": [1], "names": None}

    obs_dim, act_dim = first.steps["obs"].shape[1], first.steps["action"].shape[1]
    features = {"observation.state": vector("state", obs_dim), "action": vector("action", act_dim)}
    image = first.steps["image"].shape[1:]
    if image != NO_IMAGE.shape:
        features[IMAGE] = {"dtype": "video" if video else "image", "shape": list(image),
                           "names": ["height", "width", "channels"],  # lerobot utils/feature_utils.py (cameras)
                           "info": None if video else {"is_depth_map": False}}  # a video's: mp4.info
    features["policy_action"] = vector("action", act_dim)
    for column, field in LABELS.items():
        if field != "policy_action":
            features[column] = scalar(str(STEP_FIELDS[field]))
    features[wall_time.COLUMN] = scalar("int64")
    features["residual"] = vector("action", act_dim)
    features |= {"controller": scalar("string"), "intervention": scalar("bool"), "nudge": scalar("bool"),
                 "operator": scalar("int64"),
                 "robot": scalar("int64"), "robot_episode": scalar("int64")}
    features |= {"timestamp": scalar("float32"), **{name: scalar("int64") for name in DEFAULT_FEATURES[1:]}}
    return features


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def _frames(ep: Episode, index: int, start: int, fps: int, t_wall_ns: np.ndarray) -> dict[str, np.ndarray]:
    """One episode's columns by feature name (LeRobot's episode buffer after save_episode)."""
    n = len(ep)
    frames = {"observation.state": ep.steps["obs"], "action": ep.steps["action"]}
    if ep.steps["image"].shape[1:] != NO_IMAGE.shape:
        frames[IMAGE] = ep.steps["image"]
    frames |= {column: ep.steps[field] for column, field in LABELS.items()} | {wall_time.COLUMN: t_wall_ns}
    frames |= {"controller": np.array(ep.controller, dtype=object), "intervention": ep.intervention,
               "nudge": ep.nudge, "residual": ep.residual,
               "operator": ep.operator, "robot": np.full(n, ep.robot, np.int64),
               "robot_episode": np.full(n, ep.episode, np.int64)}
    frame_index = np.arange(n, dtype=np.int64)
    frames |= {"timestamp": (frame_index / fps).astype(np.float32), "frame_index": frame_index,  # add_frame
               "episode_index": np.full(n, index, np.int64), "index": np.arange(start, start + n, dtype=np.int64),
               "task_index": np.zeros(n, np.int64)}
    return frames


def _column(values: np.ndarray, feature: dict[str, Any], frame_paths: list[str]) -> pa.Array:
    if feature["dtype"] == "image":
        return pa.array([{"bytes": _png(img), "path": path} for img, path in zip(values, frame_paths, strict=True)],
                        PNG)
    if len(feature["shape"]) == 1 and feature["shape"] != [1]:
        flat = pa.array(np.ascontiguousarray(values).reshape(-1), ARROW[feature["dtype"]])
        return pa.FixedSizeListArray.from_arrays(flat, feature["shape"][0])
    if feature["dtype"] == "string":
        return pa.array(values.tolist(), pa.string())
    return pa.array(values.reshape(len(values)), ARROW[feature["dtype"]])  # shape [1]: a scalar column, as LeRobot's


def write_lerobot(episodes: list[Episode], path: str | Path, task: str,
                  progress: Callable[[int], None] = lambda _: None, *, video: bool | None = None,
                  data_files_size_in_mb: float = 100, video_files_size_in_mb: float = 200,
                  chunks_size: int = 1000) -> int:
    """Writes the episodes as one LeRobotDataset v3.0 directory (a new or empty one); returns its steps. Camera
    frames go to MP4 when `video` (None: when PyAV imports), else to PNG; sizes and chunks_size are LeRobot's.
    `path` is named as write_robomimic's, so `dagger export` calls either writer the same way."""
    from dagger.tasks import make_task

    spec = make_task(task)
    root = Path(path)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: not empty (a LeRobot dataset is written into a new directory)")
    if min(data_files_size_in_mb, video_files_size_in_mb) <= 0 or chunks_size < 1:
        raise ValueError(f"file sizes must be positive and chunks_size at least 1 (utils.py DatasetInfo), got "
                         f"{data_files_size_in_mb}, {video_files_size_in_mb}, {chunks_size}")
    fps = round(1 / spec.dt)
    times = wall_time.episodes_ns(episodes)  # checked before a file is written
    features = _features(episodes[0], mp4.available() if video is None else video)
    stored = {k: f for k, f in features.items() if f["dtype"] != "video"}
    schema = pa.schema([(k, PNG if f["dtype"] == "image" else ARROW[f["dtype"]] if f["shape"] == [1] else
                         pa.list_(ARROW[f["dtype"]], f["shape"][0])) for k, f in stored.items()])
    data = _DataFiles(root, schema, data_files_size_in_mb, chunks_size)
    videos = [_VideoFiles(root, k, fps, video_files_size_in_mb, chunks_size) for k in features if k not in stored]
    rows: dict[str, list[Any]] = {}
    stats: dict[str, dict[str, np.ndarray]] = {}
    start = 0
    with contextlib.ExitStack() as open_files:
        for files in (data, *videos):
            open_files.enter_context(files)
        for index, ep in enumerate(episodes):
            frames = _frames(ep, index, start, fps, times[index])
            paths = [f"frame-{i:06d}.png" for i in range(len(ep))]  # datasets keeps the file's name beside its bytes
            chunk, file = data.write(pa.table([_column(frames[k], f, paths) for k, f in stored.items()],
                                              schema=schema))
            ep_stats = {k: feature_stats(frames[k], f["dtype"] in ("image", "video")) for k, f in features.items()
                        if f["dtype"] != "string"}
            row = {"episode_index": index, "tasks": [spec.instruction], "length": len(ep), "data/chunk_index": chunk,
                   "data/file_index": file, "dataset_from_index": start, "dataset_to_index": start + len(ep)}
            for files in videos:
                row |= files.write(frames[files.key])
            row |= {f"stats/{k}/{s}": v.tolist() for k, st in ep_stats.items() for s, v in st.items()}
            row["missing"] = ep.missing  # "" for a whole episode; else what of it the log lost, beside this piece
            row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
            for key, value in row.items():
                rows.setdefault(key, []).append(value)
            with np.errstate(all="ignore"):
                stats = {k: aggregate(stats[k], v) for k, v in ep_stats.items()} if stats else ep_stats
            start += len(ep)
            progress(len(ep))
    for files in videos:  # dataset_metadata.py update_video_info: what the first file holds
        features[files.key]["info"] = mp4.info(root / VIDEO_PATH.format(video_key=files.key, chunk_index=0,
                                                                           file_index=0))
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pydict(rows), root / EPISODES_PATH.format(chunk_index=0, file_index=0),
                   compression="snappy", use_dictionary=True)
    _write_tasks(root / "meta/tasks.parquet", [spec.instruction])
    info = {"codebase_version": CODEBASE_VERSION, "fps": fps, "features": features, "total_episodes": len(episodes),
            "total_frames": start, "total_tasks": 1, "chunks_size": chunks_size,
            "data_files_size_in_mb": data_files_size_in_mb, "video_files_size_in_mb": video_files_size_in_mb,
            "data_path": DATA_PATH, "video_path": VIDEO_PATH if videos else None, "robot_type": task,
            "splits": {"train": f"0:{len(episodes)}"}}  # lerobot datasets/utils.py DatasetInfo.to_dict order
    (root / "meta/info.json").write_text(json.dumps(info, indent=4, ensure_ascii=False))
    (root / "meta/stats.json").write_text(json.dumps({k: {s: v.tolist() for s, v in st.items()}
                                                      for k, st in stats.items()}, indent=4))
    return start


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """lerobot datasets/utils.py update_chunk_file_indices."""
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


class _Files:
    """chunk-CCC/file-FFF files filled one after another: an episode goes to the next file (a new chunk after
    chunks_size files) when it would bring the current one to size_mb; an episode is never split."""

    def __init__(self, template: Path, size_mb: float, chunks_size: int) -> None:
        self.template, self.size_mb, self.chunks_size = str(template), size_mb, chunks_size
        self.chunk = self.file = 0

    def path(self) -> Path:
        return Path(self.template.format(chunk_index=self.chunk, file_index=self.file))

    def roll_over(self, size_mb: float) -> None:
        """Closes the current file and moves to the next when size_mb reaches the limit."""
        if size_mb >= self.size_mb:
            self.close()
            self.chunk, self.file = _next_file(self.chunk, self.file, self.chunks_size)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _DataFiles(_Files):
    """data/ as LeRobot's _save_episode_data fills it: the current file's size plus the episode's at the file's mean
    bytes per frame."""

    def __init__(self, root: Path, schema: pa.Schema, size_mb: float, chunks_size: int) -> None:
        super().__init__(root / DATA_PATH, size_mb, chunks_size)
        self.schema, self.frames = schema, 0
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> tuple[int, int]:
        """Appends one episode's frames; returns the (chunk, file) they went to."""
        if self.writer is not None:
            size = self.path().stat().st_size / MB
            self.roll_over(size + (size / self.frames if self.frames else 0) * table.num_rows)
        if self.writer is None:
            self.path().parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path(), self.schema, compression="snappy", use_dictionary=True)
            self.frames = 0
        self.writer.write_table(table)
        self.frames += table.num_rows
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _VideoFiles(_Files):
    """videos/<key>/ as LeRobot's _save_episode_video fills it: each episode is encoded on its own, then appended to
    the current file (timestamps go on) unless the two sizes together reach size_mb; then it starts the next file at
    0 s. The current file's size is the sum of its episodes' MP4s."""

    def __init__(self, root: Path, key: str, fps: int, size_mb: float, chunks_size: int) -> None:
        super().__init__(root / VIDEO_PATH.replace("{video_key}", key), size_mb, chunks_size)
        self.key, self.fps, self.bytes = key, fps, 0
        self.out: mp4.Appender | None = None

    def write(self, frames: np.ndarray) -> dict[str, Any]:
        """Appends one episode's frames; returns its videos/<key>/ columns of meta/episodes."""
        clip = mp4.encode(frames, self.fps)
        if self.out is not None:
            self.roll_over((self.bytes + len(clip)) / MB)
        if self.out is None:
            self.out, self.bytes = mp4.Appender(self.path()), 0
        first, end = self.out.append(clip)
        self.bytes += len(clip)
        return {f"videos/{self.key}/chunk_index": self.chunk, f"videos/{self.key}/file_index": self.file,
                f"videos/{self.key}/from_timestamp": first, f"videos/{self.key}/to_timestamp": end}

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """What pandas' DataFrame({"task_index": ...}, index=Index(tasks, name="task")).to_parquet writes."""
    pandas = {"index_columns": ["task"], "column_indexes": [{"name": None, "field_name": None,
                                                             "pandas_type": "unicode", "numpy_type": "object",
                                                             "metadata": {"encoding": "UTF-8"}}],
              "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                           "numpy_type": "int64", "metadata": None},
                          {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                           "metadata": None}],
              "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas)}), path)


def read_info(root: Path) -> dict[str, Any]:
    """meta/info.json; ValueError naming the file when it is not a JSON object."""
    path = root / "meta/info.json"
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not JSON ({err})") from err
    if not isinstance(info, dict):
        raise ValueError(f"{path}: not a JSON object")
    return info


def _tables(root: Path, pattern: str, columns: tuple[str, ...]) -> pa.Table:
    """The parquet files under root matching pattern, one table; ValueError naming the file that cannot be read or
    lacks one of `columns`, or the folder when there is none."""
    files = sorted(root.glob(pattern))
    if not files:
        raise ValueError(f"{root / pattern}: no such files")
    tables = []
    for path in files:
        try:
            tables.append(pq.read_table(path))
        except (pa.ArrowException, OSError) as err:
            raise ValueError(f"{path}: not a readable parquet file ({str(err).splitlines()[0]})") from err
        missing = [c for c in columns if c not in tables[-1].column_names]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]!r}")
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid as err:
        raise ValueError(f"{root / pattern}: the files' columns differ") from err


def read_lerobot(path: str | Path) -> list[Episode]:
    """The episodes of a LeRobotDataset v3 directory; frames without dagger's labels get the policy's action = the
    action, version 0, no gate, done at an episode's last frame, and "demo" as who acted. ValueError naming the file
    and column when one is missing or misshaped, or the episode whose rows meta/episodes places wrongly."""
    root = Path(path)
    info = read_info(root)
    if not str(info.get("codebase_version", "")).startswith("v3"):
        raise ValueError(f"{root}: codebase_version {info.get('codebase_version')!r}: dagger reads LeRobot v3 only")
    for needed in ("observation.state", "action"):
        if needed not in info.get("features", {}):
            raise ValueError(f"{root / 'meta/info.json'}: no feature {needed!r}")
    data = _tables(root, "data/chunk-*/file-*.parquet",
                   ("index", "episode_index", "observation.state", "action")).sort_by("index")
    episodes = _tables(root, "meta/episodes/chunk-*/*.parquet",
                       ("episode_index", "length", "dataset_from_index", "dataset_to_index"))
    video = info["features"].get(IMAGE, {}).get("dtype") == "video"
    out, decoded = [], _Decoded()
    for row in episodes.sort_by("episode_index").to_pylist():
        try:
            part = _rows(data, row)
            out.append(_episode(part, row["episode_index"], decoded.episode(root, info, row, part.num_rows)
                                if video else None, str(row.get("missing") or "")))
        except (KeyError, ValueError) as err:
            raise ValueError(f"{root}: episode {row['episode_index']}: {err}") from err
    return out


def _rows(data: pa.Table, row: dict[str, Any]) -> pa.Table:
    """The data rows meta/episodes gives an episode, checked: within the data, `length` of them, `index` counting
    from dataset_from_index, every one of the episode's episode_index."""
    start, end = row["dataset_from_index"], row["dataset_to_index"]
    where = f"meta/episodes gives rows {start}:{end}"
    if not 0 <= start <= end <= data.num_rows:
        raise ValueError(f"{where}: outside the data's {data.num_rows} rows")
    if row["length"] != end - start:
        raise ValueError(f"{where}: {end - start} rows, its length says {row['length']}")
    part = data.slice(start, end - start)
    if not np.array_equal(_array(part, "index"), np.arange(start, end)):
        raise ValueError(f"{where}: the data's 'index' column does not count {start} to {end - 1} there")
    others = _array(part, "episode_index") != row["episode_index"]
    if others.any():
        raise ValueError(f"{where}: data row {start + int(np.argmax(others))} has episode_index "
                         f"{_array(part, 'episode_index')[others][0]}")
    return part


def _array(table: pa.Table, column: str) -> np.ndarray:
    values = table.column(column).combine_chunks()
    if pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type):
        if len(set(pc.list_value_length(values).to_pylist())) > 1:
            raise ValueError(f"column {column!r}: rows of different lengths")
        flat = values.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(values), -1)
    return values.to_numpy(zero_copy_only=False)


class _Decoded:
    """The frames of the MP4 last decoded, so consecutive episodes in one file decode it once."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.times, self.frames = np.zeros(0), np.zeros((0, *NO_IMAGE.shape), np.uint8)

    def episode(self, root: Path, info: dict[str, Any], row: dict[str, Any], n: int) -> np.ndarray:
        """An episode's camera frames: frame i at from_timestamp + i / fps (lerobot_dataset.py _query_videos), the
        decoded frame nearest to it within TOLERANCE_S."""
        key = f"videos/{IMAGE}/"
        path = root / info["video_path"].format(video_key=IMAGE, chunk_index=row[key + "chunk_index"],
                                                file_index=row[key + "file_index"])
        if path != self.path:
            self.path, (self.times, self.frames) = path, mp4.decode(path)
        wanted = row[key + "from_timestamp"] + np.arange(n) / info["fps"]
        picks = np.searchsorted(self.times, wanted - TOLERANCE_S).clip(0, max(len(self.times) - 1, 0))
        missing = ~(np.abs(self.times[picks] - wanted) <= TOLERANCE_S) if len(self.times) else np.ones(n, bool)
        if missing.any():
            raise ValueError(f"{path}: no frame at {wanted[missing][0]:.4f} s (frame {int(np.argmax(missing))} of "
                             f"{n}); the file holds {len(self.times)} frames")
        return self.frames[picks]


def _episode(part: pa.Table, index: int, video: np.ndarray | None = None, missing: str = "") -> Episode:
    from PIL import Image

    n, names = part.num_rows, set(part.column_names)
    obs, actions = _array(part, "observation.state").reshape(n, -1), _array(part, "action").reshape(n, -1)
    found = {"obs": obs, "action": actions,
             "image": (video if video is not None else
                       np.stack([np.asarray(Image.open(io.BytesIO(v["bytes"])).convert("RGB"))
                                 for v in part.column(IMAGE).to_pylist()]) if IMAGE in names
                       else np.zeros((n, *NO_IMAGE.shape)))}
    if "frame_index" in names:
        found["step"] = _array(part, "frame_index")
    found.update({field: _array(part, column) for column, field in LABELS.items() if column in names})
    if wall_time.COLUMN in names:
        found["t_wall"] = wall_time.from_ns(_array(part, wall_time.COLUMN))
    elif wall_time.OLD_COLUMN in names:
        found["t_wall"] = _array(part, wall_time.OLD_COLUMN)
    if "policy_action" in found:
        found["policy_action"] = found["policy_action"].reshape(n, -1)
    steps = with_defaults(found)
    controller = [str(c) for c in part.column("controller").to_pylist()] if "controller" in names else ["demo"] * n
    robot = int(_array(part, "robot")[0]) if "robot" in names and n else -1
    episode = int(_array(part, "robot_episode")[0]) if "robot_episode" in names and n else index
    return Episode(robot, episode, steps, controller, missing)
