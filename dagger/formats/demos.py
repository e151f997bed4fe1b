"""Someone else's demonstrations as the demos a run starts from.

    episodes = read_dataset("theirs.hdf5", task)          # ValueError naming the file, episode and field
    episodes = read_dataset("their_lerobot_dataset", task)  # a directory with meta/info.json
    segments = demo_segments(episodes, first=3)           # beside 3 scripted demos

Only the steps a person or a demonstrator took become demonstrations: an exported run's policy steps are left out.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from buffers.schema import DEMO, NO_IMAGE, Segment, is_human
from dagger.core import TaskSpec
from dagger.episodes import Episode
from dagger.formats.lerobot import read_info, read_lerobot
from dagger.formats.robomimic import read_robomimic

HDF5 = (".hdf5", ".h5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # a robomimic file named otherwise is still read


def read_dataset(path: str | Path, task: TaskSpec) -> list[Episode]:
    """A dataset's episodes, checked against the task (spaces, a LeRobot dataset's fps) and for finite
    observations and actions; ValueError saying what does not fit, where."""
    path = Path(path)
    if path.is_dir():
        if not (path / "meta/info.json").is_file():
            raise ValueError(f"{path}: a directory without meta/info.json: not a LeRobot dataset")
        fps, task_fps = read_info(path).get("fps"), round(1 / task.dt)
        if fps != task_fps:
            raise ValueError(f"{path / 'meta/info.json'}: fps {fps}; task {task.name} runs at {task_fps} "
                             f"(a step of {task.dt} s)")
        episodes = read_lerobot(path)
    elif not path.is_file():
        raise ValueError(f"{path}: no such file")
    elif path.suffix in HDF5 or _signature(path) == HDF5_SIGNATURE:
        episodes = read_robomimic(path)
    else:
        raise ValueError(f"{path}: not a dataset dagger reads (robomimic HDF5, or a LeRobot dataset directory)")
    if not episodes:
        raise ValueError(f"{path}: holds no episodes")
    image = task.image_shape or NO_IMAGE.shape
    for i, ep in enumerate(episodes):
        shapes = (ep.steps["obs"].shape[1], ep.steps["action"].shape[1], ep.steps["image"].shape[1:])
        if shapes != (task.obs_dim, task.act_dim, tuple(image)):
            raise ValueError(f"{path}: episode {i} has obs {shapes[0]}, act {shapes[1]}, image {list(shapes[2])}; "
                             f"task {task.name} has obs {task.obs_dim}, act {task.act_dim}, image {list(image)}")
        for name in ("obs", "action"):
            bad = ~np.isfinite(ep.steps[name])
            if bad.any():
                step = int(np.argmax(bad.any(axis=1)))
                raise ValueError(f"{path}: episode {i}: field {name!r}: {ep.steps[name][bad][0]} at step {step} "
                                 f"(not finite, or beyond float32)")
    return episodes


def _signature(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(len(HDF5_SIGNATURE))


def demo_segments(episodes: list[Episode], first: int = 0) -> list[Segment]:
    """The steps a person or demonstrator took (not the policy's) as demonstration segments numbered from `first`
    (after the scripted ones): one a run of one controller; runs that follow each other share an episode number."""
    now, episode = time.time(), first - 1
    segments: list[Segment] = []
    for ep in episodes:
        bounds = [i for i in range(1, len(ep)) if ep.controller[i] != ep.controller[i - 1]]
        for start, end in zip([0, *bounds], [*bounds, len(ep)], strict=True):
            if start == end or not is_human(ep.controller[start]):
                continue
            episode += start == 0 or not is_human(ep.controller[start - 1])
            segments.append(Segment(-1, first + len(segments), episode, DEMO, "episode_end", now,
                                    **ep.part(start, end).steps))
    return segments
