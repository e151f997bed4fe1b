"""Camera images in the loop: what a step costs, what the log stores, and the control rate 4 image robots keep.

Runs the live loop on Ray (4 robots, 1 scripted operator) on reacher-image and on reacher (state only) for the
same time, then reads everything from the runs' files: the control rate each robot kept while it stepped
(steps / time within its segments: a robot holding for an operator takes no steps, and that is not a slow
loop), the camera's ms per step (from `episode_end` events), bytes per logged step and the log's write rate.
Before that, a bare loop (task step + camera image + policy with its CNN, one process) gives the floor.

    python benchmarks/image_robots.py [--robots 4] [--seconds 60] [--speed 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dagger.config import load_config
from dagger.core import camera_image
from dagger.events import read_events
from dagger.policies import EnsemblePolicy
from dagger.tasks import make_task
from workers.launch import run_loop
from workers.ray_fleet import RayFleet, init_ray


def bare_ms(task_name: str, steps: int = 2000) -> tuple[float, float]:
    """(ms per step of task + camera + policy, ms of which the camera) in one plain loop."""
    torch.set_num_threads(1)
    task = make_task(task_name)
    policy = EnsemblePolicy(task.obs_dim, task.act_dim, image_shape=task.image_shape)
    obs, camera_s, began = task.reset(seed=0), 0.0, time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        image = camera_image(task)
        camera_s += time.perf_counter() - t
        res = task.step(policy.act(obs, image).action)
        obs = task.reset() if res.done else res.obs
    return 1000 * (time.perf_counter() - began) / steps, 1000 * camera_s / steps


def live(task_name: str, robots: int, seconds: float, speed: float, out: Path) -> dict:
    cfg = load_config(None, [f"task={task_name}", f"robots={robots}", f"minutes={seconds / 60}", f"robot.speed={speed}",
                             "learner.batch_size=16", "eval.every_versions=0", "log.writers=[]"])
    run_dir = out / task_name
    run_loop(cfg, run_dir, make_fleet=RayFleet)
    events = read_events(run_dir / "events.jsonl")
    segments = [e for e in events if e["ev"] == "segment"]
    steps = sum(e["steps"] for e in segments)
    span = max(e["t_end"] for e in segments) - min(e["t_start"] for e in segments)
    per_robot = [sum(e["steps"] - 1 for e in segments if e["robot"] == r and e["steps"] > 1)
                 / sum(e["t_end"] - e["t_start"] for e in segments if e["robot"] == r and e["steps"] > 1)
                 for r in range(robots)]
    log_bytes = sum(p.stat().st_size for p in (run_dir / "segments").glob("*.log"))
    camera = [e["camera_ms"] for e in events if e["ev"] == "episode_end" and "camera_ms" in e]
    return {"target_hz": speed / make_task(task_name).dt, "hz": float(np.mean(per_robot)), "hz_min": min(per_robot),
            "bytes_per_step": log_bytes / steps, "log_kb_s": log_bytes / span / 1024, "steps": steps,
            "camera_ms": float(np.mean(camera)) if camera else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--speed", type=float, default=1.0, help="robot.speed: 1 = Reacher's real-time 50 Hz")
    args = parser.parse_args()
    step_ms, cam_ms = bare_ms("reacher-image")
    print(f"bare loop, reacher-image: {step_ms:.2f} ms per step, of which camera {cam_ms:.2f} ms (64×64, EGL on CPU)")
    init_ray("")
    with tempfile.TemporaryDirectory() as tmp:
        rows = {name: live(name, args.robots, args.seconds, args.speed, Path(tmp)) for name in ("reacher-image",
                                                                                               "reacher")}
    print(f"{args.robots} robots on Ray, {args.seconds:.0f} s each, robot.speed={args.speed}")
    print(f"{'task':14} {'target Hz':>9} {'Hz/robot':>9} {'slowest':>8} {'camera ms':>9} {'bytes/step':>10} "
          f"{'log KB/s':>9}")
    for name, r in rows.items():
        print(f"{name:14} {r['target_hz']:9.0f} {r['hz']:9.1f} {r['hz_min']:8.1f} {r['camera_ms']:9.2f} "
              f"{r['bytes_per_step']:10.0f} {r['log_kb_s']:9.1f}")
    img, state = rows["reacher-image"], rows["reacher"]
    print(f"images cost {img['bytes_per_step'] / state['bytes_per_step']:.1f}× the bytes per step; image robots keep "
          f"{img['hz'] / img['target_hz']:.0%} of the target rate")


if __name__ == "__main__":
    main()
