"""`dagger eval`: a checkpoint's policy alone on held-out episodes, in parallel processes, with a video.

    result = evaluate_checkpoint("runs/demo", TaskConfig("reacher"), eval_seeds(100), processes=2)
    write_video(ckpt, TaskConfig("reacher"), seeds[:3], Path("rollouts.mp4"))   # captioned, 640 px wide
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dagger.app.video import WIDTH, Caption, captioned, enlarged, video_file
from dagger.checkpoint import policy_from, read_checkpoint
from dagger.evaluation import Outcome, run_episode, summarize_episodes
from dagger.events import first_line
from dagger.formats import mp4
from dagger.tasks import TaskConfig, make_task


def _episodes(path: str, task_cfg: TaskConfig, seeds: list[int]) -> list[Outcome]:
    """One worker's share: its own task and policy, loaded from the file (nothing pickled across)."""
    import torch

    torch.set_num_threads(1)
    task = make_task(task_cfg)
    policy = policy_from(read_checkpoint(path), task)
    return [run_episode(policy, task, seed) for seed in seeds]


def evaluate_checkpoint(path: str, task: TaskConfig, seeds: list[int], processes: int = 1) -> dict:
    """Success rate with its 95 % Wilson interval, mean return and length; the same for any `processes`."""
    began = time.monotonic()
    if processes <= 1:
        outcomes = _episodes(path, task, seeds)
    else:
        shares = [seeds[i::processes] for i in range(processes)]
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_episodes, [path] * processes, [task] * processes, shares))
        by_seed = {seed: outcome for share, part in zip(shares, parts, strict=True)
                   for seed, outcome in zip(share, part, strict=True)}
        outcomes = [by_seed[seed] for seed in seeds]
    result = summarize_episodes(outcomes)
    result["seconds"] = round(time.monotonic() - began, 2)
    return result


def write_video(path: str, task_cfg: TaskConfig, seeds: list[int], out: Path, fps: int = 25) -> dict[str, Any]:
    """Renders one rollout per seed into a playable MP4 or an animated GIF (by out's suffix), each frame at least
    640 px wide under a caption (episode, seed, step, outcome); returns what was written. ValueError naming the file
    and the cause when it cannot be made: then no file (partial or empty) is left at `out`."""
    failures: tuple[type[Exception], ...] = (OSError, RuntimeError, ValueError, *mp4.errors())  # RuntimeError: no GL
    try:
        task = make_task(task_cfg)
        task.render_width(WIDTH)  # a MuJoCo camera draws it wide; smaller frames are enlarged
        policy = policy_from(read_checkpoint(path), task)
        size = [0, 0]
        with video_file(out, fps) as video:
            for episode, seed in enumerate(seeds, 1):
                frames: list[np.ndarray] = []
                outcome = run_episode(policy, task, seed, on_frame=frames.append)
                frames.append(task.render())  # where the last action led: the state the outcome was judged in
                for step, frame in enumerate(frames + [frames[-1]] * (fps // 2)):  # the end held half a second
                    caption = Caption(episode, seed, min(step, outcome.length), outcome.length, outcome.success,
                                      outcome.violated)
                    shown = captioned(enlarged(frame), caption)
                    video.write(shown)
                    size = [shown.shape[1], shown.shape[0]]
            frames_written = video.frames
    except failures as err:
        raise ValueError(f"{out}: not written ({_cause(err)})") from err
    return {"video": str(out), "video_frames": frames_written, "video_size": size, "video_fps": fps}


def _cause(err: BaseException) -> str:
    """An error in one line, an OS error as its words and file rather than Python's [Errno n] form."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    return first_line(err)


def print_result(result: dict, out: Path) -> None:
    """The table `dagger eval` prints."""
    from rich.console import Console
    from rich.table import Table

    lo, hi = result["ci95"]
    table = Table(title=f"policy alone: {result['checkpoint']} (v{result['version']}) on {result['task']}",
                  title_justify="left")
    for head in ("episodes", "success rate", "95% interval", "mean return", "mean length"):
        table.add_column(head, justify="right")
    table.add_row(str(result["episodes"]), f"{result['success_rate']:.3f}", f"{lo:.3f} – {hi:.3f}",
                  f"{result['mean_return']:.2f}", f"{result['mean_length']:.1f}")
    console = Console()
    console.print(table)
    last = result["seed_base"] + result["episodes"] - 1
    console.print(f"seeds {result['seed_base']}..{last} (none used in training) · {result['seconds']} s · {out}")
