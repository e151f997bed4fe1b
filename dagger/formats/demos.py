"""Someone else's demonstrations as the demos a run starts from.

    episodes = read_dataset("theirs.hdf5", task)          # ValueError naming both shapes when they do not fit
    episodes = read_dataset("their_lerobot_dataset", task)  # a directory with meta/info.json
    segments = demo_segments(episodes, first=3)           # beside 3 scripted demos
"""

from __future__ import annotations

import time
from pathlib import Path

from buffers.schema import DEMO, NO_IMAGE, Segment
from dagger.core import TaskSpec
from dagger.episodes import Episode
from dagger.formats.lerobot import read_lerobot
from dagger.formats.robomimic import read_robomimic

READERS = {".hdf5": read_robomimic, ".h5": read_robomimic}
"""file readers by suffix; a directory with meta/info.json is a LeRobot dataset"""


def read_dataset(path: str | Path, task: TaskSpec) -> list[Episode]:
    """A dataset's episodes, checked against the task's spaces; ValueError saying what does not fit."""
    path = Path(path)
    if path.is_dir():
        if not (path / "meta/info.json").is_file():
            raise ValueError(f"{path}: a directory without meta/info.json: not a LeRobot dataset")
        episodes = read_lerobot(path)
    elif path.suffix not in READERS:
        raise ValueError(f"{path}: not a dataset dagger reads (robomimic {', '.join(READERS)}, or a LeRobot "
                         f"dataset directory)")
    elif not path.is_file():
        raise ValueError(f"{path}: no such file")
    else:
        episodes = READERS[path.suffix](path)
    if not episodes:
        raise ValueError(f"{path}: holds no episodes")
    image = task.image_shape or NO_IMAGE.shape
    for i, ep in enumerate(episodes):
        shapes = (ep.steps["obs"].shape[1], ep.steps["action"].shape[1], ep.steps["image"].shape[1:])
        if shapes != (task.obs_dim, task.act_dim, tuple(image)):
            raise ValueError(f"{path}: episode {i} has obs {shapes[0]}, act {shapes[1]}, image {list(shapes[2])}; "
                             f"task {task.name} has obs {task.obs_dim}, act {task.act_dim}, image {list(image)}")
    return episodes


def demo_segments(episodes: list[Episode], first: int = 0) -> list[Segment]:
    """Each episode as one demonstration segment (numbered from `first`, after the scripted ones)."""
    now = time.time()
    return [Segment(-1, first + i, first + i, DEMO, "episode_end", now, **ep.steps) for i, ep in enumerate(episodes)]
