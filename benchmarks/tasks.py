"""Every task: whether its scripted expert solves it, and what a step and a frame cost (the expert on 10 seeds).

    python benchmarks/tasks.py [--seeds 10] [--frames 50]

ms/step is one physics step plus one expert action (plus the policy's camera image on an image task); ms/frame
one frame of the console's camera (the first, which makes the GL context, not counted). violated: expert
episodes with a constraint violation (tasks with a constraint region).
"""

from __future__ import annotations

import argparse
import time

from dagger.core import Task, camera_image
from dagger.tasks import TASKS, make_task


def expert_run(task: Task, seeds: int) -> tuple[int, int, list[int], float]:
    """Successes, episodes with a violation, episode lengths, and seconds spent stepping."""
    successes, violated, lengths, stepping = 0, 0, [], 0.0
    for seed in range(seeds):
        task.reset(seed=seed)
        steps, done, success, bad = 0, False, False, False
        began = time.perf_counter()
        while not done:
            camera_image(task)
            res = task.step(task.expert_action())
            steps, done, success, bad = steps + 1, res.done, res.success, bad or res.constraint
        stepping += time.perf_counter() - began
        successes += success
        violated += bad
        lengths.append(steps)
    return successes, violated, lengths, stepping


def frame_ms(task: Task, frames: int) -> float:
    task.reset(seed=0)
    task.render()
    began = time.perf_counter()
    for _ in range(frames):
        task.render()
    return (time.perf_counter() - began) / frames * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()
    print(f"{'task':<16} {'obs':>4} {'image':>8} {'expert':>7} {'violated':>8} {'mean len':>8} {'ms/step':>7} "
          f"{'ms/frame':>8}")
    for name in TASKS:
        task = make_task(name)
        successes, violated, lengths, stepping = expert_run(task, args.seeds)
        image = "x".join(map(str, task.image_shape[:2])) if task.image_shape else "-"
        print(f"{name:<16} {task.obs_dim:>4} {image:>8} {f'{successes}/{args.seeds}':>7} {violated:>8} "
              f"{sum(lengths) / len(lengths):>8.1f} {stepping / sum(lengths) * 1e3:>7.2f} "
              f"{frame_ms(task, args.frames):>8.2f}")


if __name__ == "__main__":
    main()
