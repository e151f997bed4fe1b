"""Per policy family: inference time per control step (p50 / p99, batch 1) and training updates per second in the
learner, side by side in one run, on one torch thread (as robots and the learner run).

Every family learns from the same scripted demonstrations of the task (the timing does not depend on how well),
through the learner's own path (replay buffer, `Learner.train`), then acts through episodes of the task. `remote`
is the mlp-ensemble served over loopback by a PolicyServer (msgpack, HMAC): the network hop's cost.

    python benchmarks/policy_inference.py [--task reach] [--steps 800] [--updates 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dagger.config import load_config
from dagger.core import Policy, Task, camera_image
from dagger.policies import POLICIES, make_policy
from dagger.policies.remote import PolicyServer, RemotePolicy
from dagger.tasks import make_task
from dagger.wire import new_token
from workers.buffer import BufferWorker
from workers.launch import collect_demos
from workers.learner import Learner
from workers.transport import LocalEndpoint


def act_times(policy: Policy, task: Task, steps: int) -> np.ndarray:
    """Milliseconds of each act() over `steps` control steps, episode after episode (each from a reset)."""
    times: list[float] = []
    episode = 0
    while len(times) < steps:
        obs, done = task.reset(seed=10_000 + episode), False
        policy.reset()
        while not done and len(times) < steps:
            began = time.perf_counter()
            out = policy.act(obs, camera_image(task))
            times.append(1000 * (time.perf_counter() - began))
            res = task.step(out.action)
            obs, done = res.obs, res.done
        episode += 1
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reach")
    parser.add_argument("--steps", type=int, default=800, help="control steps timed per family")
    parser.add_argument("--updates", type=int, default=200, help="learner updates timed per family")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = make_task(args.task)
    base = load_config(None, [f"task={args.task}", "demos=10"])
    period_ms = 1000 * task.dt / base.robot.speed
    buffer = BufferWorker(Path(tempfile.mkdtemp(prefix="policy-bench-")), seed=0)
    buffer.add(collect_demos(base, task))
    print(f"task {args.task} (obs {task.obs_dim}, act {task.act_dim}), control period {period_ms:.1f} ms "
          f"(robot.speed {base.robot.speed:g}), learner batch {base.learner.batch_size}, one torch thread")
    print(f"{'family':<14}{'params':>9}{'act p50 ms':>12}{'act p99 ms':>12}{'mean ms':>9}{'mean/period':>13}"
          f"{'updates/s':>11}{'p50 vs mlp':>12}")
    rows: dict[str, tuple[np.ndarray, float]] = {}
    weights = None
    for family in POLICIES:
        cfg = load_config(None, [f"task={args.task}", f"policy.type={family}"])
        learner = Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer))
        learner.train(20)  # warm: first calls allocate
        began = time.perf_counter()
        learner.train(args.updates)
        rate = args.updates / (time.perf_counter() - began)
        learner.publish()
        if family == "mlp-ensemble":
            weights = learner.published
        rows[family] = act_times(learner.policy, task, args.steps), rate
        report(family, sum(p.numel() for p in learner.policy.trainable()), rows, period_ms)
    token = new_token()
    ensemble = load_config(None, [f"task={args.task}"]).policy
    with PolicyServer(lambda: make_policy(ensemble, task.obs_dim, task.act_dim), token) as server:
        assert weights is not None
        server.load(weights)
        client = RemotePolicy(server.address, token, deadline_ms=1000.0, instruction=task.instruction)
        rows["remote"] = act_times(client, task, args.steps), float("nan")
        client.close()
    report("remote", 0, rows, period_ms)


def report(family: str, params: int, rows: dict[str, tuple[np.ndarray, float]], period_ms: float) -> None:
    times, rate = rows[family]
    p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
    mlp = np.percentile(rows["mlp-ensemble"][0], 50)
    shown_params = f"{params / 1000:.0f}k" if params else "(served)"
    shown_rate = f"{rate:.0f}" if np.isfinite(rate) else "-"
    print(f"{family:<14}{shown_params:>9}{p50:>12.2f}{p99:>12.2f}{times.mean():>9.2f}{times.mean() / period_ms:>13.2f}"
          f"{shown_rate:>11}{p50 / mlp:>11.1f}x", flush=True)


if __name__ == "__main__":
    main()
