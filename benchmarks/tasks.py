"""What each Meta-World task costs and whether its expert solves it: the scripted expert on 10 seeds.

    python benchmarks/tasks.py [--seeds 10] [--frames 50]

ms/step is one physics step plus one expert action; ms/frame one offscreen camera frame (the first,
which makes the GL context, not counted).
"""

from __future__ import annotations

import argparse
import time

from dagger.metaworld_tasks import METAWORLD_TASKS, MetaWorldTask


def expert_run(task: MetaWorldTask, seeds: int) -> tuple[int, list[int], float]:
    """Successes, episode lengths, and seconds spent stepping."""
    successes, lengths, stepping = 0, [], 0.0
    for seed in range(seeds):
        task.reset(seed=seed)
        steps, done, success = 0, False, False
        began = time.perf_counter()
        while not done:
            res = task.step(task.expert_action())
            steps, done, success = steps + 1, res.done, res.success
        stepping += time.perf_counter() - began
        successes += success
        lengths.append(steps)
    return successes, lengths, stepping


def frame_ms(task: MetaWorldTask, frames: int) -> float:
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
    print(f"{'task':<12} {'env':<15} {'horizon':>7} {'expert':>7} {'mean len':>8} {'ms/step':>7} {'ms/frame':>8}")
    for name, env_name in METAWORLD_TASKS.items():
        task = MetaWorldTask(env_name)
        successes, lengths, stepping = expert_run(task, args.seeds)
        print(f"{name:<12} {env_name:<15} {task.horizon:>7} {f'{successes}/{args.seeds}':>7} "
              f"{sum(lengths) / len(lengths):>8.1f} {stepping / sum(lengths) * 1e3:>7.2f} "
              f"{frame_ms(task, args.frames):>8.2f}")


if __name__ == "__main__":
    main()
