"""Per policy family: inference time per control step (p50 / p99, batch 1) and training updates per second in the
learner, side by side in one run, on one torch thread (as robots and the learner run); then, per family, a group of
K robots acting through one batched call (`act_batch`, a stream per robot) against K separate calls.

Every family learns from the same scripted demonstrations of the task (the timing does not depend on how well),
through the learner's own path (replay buffer, `Learner.train`), then acts through episodes of the task. `remote`
is the mlp-ensemble served over loopback by a PolicyServer (msgpack, HMAC): the network hop's cost; batched, one
act_batch request for the K robots against K act requests.

    python benchmarks/policy_inference.py [--task reach] [--steps 800] [--updates 200] [--sizes 1,4,16,64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dagger.config import load_config
from dagger.core import Policy, PolicyOutput, Task, camera_image
from dagger.policies import POLICIES, BasePolicy, make_policy
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


def group_inputs(task: Task, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """K robots' first observations (obs [K, obs_dim], images [K, H, W, 3] or None), one episode seed each."""
    states, images = [], []
    for robot in range(k):
        states.append(task.reset(seed=20_000 + robot))
        image = camera_image(task)
        if image is not None:
            images.append(image)
    return np.stack(states).astype(np.float32), np.stack(images) if images else None


def per_period_ms(act: Callable[[], list[PolicyOutput]], steps: int) -> float:
    """Mean milliseconds of `act` (one control period's calls) over `steps` periods, after one to warm."""
    act()
    began = time.perf_counter()
    for _ in range(steps):
        act()
    return 1000 * (time.perf_counter() - began) / steps


def batch_row(policy: BasePolicy, task: Task, k: int, steps: int) -> tuple[int, float, float]:
    """For K robots: ms per control period of one act_batch, and of K act_batch calls of one robot each (what K
    robots' own policies cost), each with its own streams; fixed observations (the cost does not depend on them)."""
    obs, images = group_inputs(task, k)
    group = [policy.stream(robot) for robot in range(k)]
    alone = [policy.stream(robot) for robot in range(k)]
    batched = per_period_ms(lambda: policy.act_batch(obs, images, group), steps)
    separate = per_period_ms(lambda: [out for i in range(k) for out in policy.act_batch(
        obs[i:i + 1], None if images is None else images[i:i + 1], [alone[i]])], steps)
    return k, batched, separate


def remote_batch_row(address: str, token: bytes, task: Task, k: int, steps: int) -> tuple[int, float, float]:
    """batch_row for a served policy: one act_batch request for K robots against K act requests."""
    obs, images = group_inputs(task, k)
    group = RemotePolicy(address, token, deadline_ms=10_000.0, instruction=task.instruction)
    alone = [RemotePolicy(address, token, deadline_ms=10_000.0, robot=1000 + robot, instruction=task.instruction)
             for robot in range(k)]
    batched = per_period_ms(lambda: group.act_batch(obs, images, list(range(k))), steps)
    separate = per_period_ms(lambda: [client.act(obs[i], None if images is None else images[i])
                                      for i, client in enumerate(alone)], steps)
    for client in (group, *alone):
        client.close()
    return k, batched, separate


def report_batches(family: str, rows: list[tuple[int, float, float]]) -> None:
    for k, batched, separate in rows:
        print(f"{family:<14}{k:>4}{batched:>13.2f}{batched / k:>13.3f}{separate:>14.2f}{separate / batched:>10.1f}x",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reach")
    parser.add_argument("--steps", type=int, default=800, help="control steps timed per family")
    parser.add_argument("--updates", type=int, default=200, help="learner updates timed per family")
    parser.add_argument("--sizes", default="1,4,16,64", help="group sizes K timed batched against K separate calls")
    parser.add_argument("--batch-steps", type=int, default=16,
                        help="control periods timed per group size (diffusion draws every `execute` of them)")
    args = parser.parse_args()
    sizes = [int(k) for k in args.sizes.split(",")]
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
    policies: dict[str, BasePolicy] = {}
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
        policies[family] = learner.policy
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
        print(f"\none batched call for K robots (act_batch, a stream each) vs K separate calls: ms per control period, "
              f"mean of {args.batch_steps}")
        print(f"{'family':<14}{'K':>4}{'batched ms':>13}{'per robot':>13}{'separate ms':>14}{'ratio':>11}")
        for family, policy in policies.items():
            report_batches(family, [batch_row(policy, task, k, args.batch_steps) for k in sizes])
        report_batches("remote", [remote_batch_row(server.address, token, task, k, args.batch_steps) for k in sizes])


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
