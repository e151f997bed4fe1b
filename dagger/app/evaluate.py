"""`dagger eval`: a checkpoint's policy alone on held-out episodes, in parallel processes, with a video.

    result = evaluate_checkpoint("runs/demo", TaskConfig("reacher"), eval_seeds(100), processes=2)
    write_video(ckpt, TaskConfig("reacher"), seeds[:3], "rollouts.gif")
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from dagger.checkpoint import policy_from, read_checkpoint
from dagger.evaluation import Outcome, run_episode, summarize_episodes
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


def write_video(path: str, task_cfg: TaskConfig, seeds: list[int], out: Path, fps: int = 25) -> int:
    """Renders one rollout per seed into an animated GIF, or an MP4 when imageio-ffmpeg is installed; returns
    the number of frames."""
    import imageio.v2 as imageio

    task = make_task(task_cfg)
    policy = policy_from(read_checkpoint(path), task)
    frames: list[Any] = []  # imageio wants a list of its own array-like type
    for seed in seeds:
        run_episode(policy, task, seed, on_frame=frames.append)
        frames.extend([frames[-1]] * (fps // 2))  # hold the last frame half a second between episodes
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        imageio.mimsave(out, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(out, frames, fps=fps)
    return len(frames)


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
    console.print(f"seeds {result['seed_base']}..{last} (none used in training) · {result['seconds']} s · {out}"
                  + (f" · video {result['video']}" if "video" in result else ""))
