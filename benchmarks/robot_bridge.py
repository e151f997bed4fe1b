"""The robot bridge's cost: a `dagger robot-agent` in its own process serves a task over loopback TCP (HMAC, msgpack)
at the agent's default 4x real time, and a RemoteRobot in this process drives it, as a RobotWorker does.

Per task and policy (the scripted expert; an untrained torch mlp-ensemble, whose act() runs in the loop) it reports
the bridge's round-trip time (pings), command -> observation latency (a command is executed at the robot's next
period), control-period jitter at the agent and at the controller (|interval - period| between the observations it
gets), steps per second against the same loop on an in-process SimRobot paced at the same period and unpaced, and the
agent's repeats (the controller was late: the last setpoint held one more period) and watchdog holds. The agent's
jitter counts every period, the ones that reset the simulator too (Meta-World's reset takes about 8 ms); the
controller's counts the periods of episodes.

    python benchmarks/robot_bridge.py [--episodes 10] [--tasks reach,point] [--policy-steps 400]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import dagger.robots.remote as remote
from dagger.policies import PolicyConfig, make_policy
from dagger.robots import TOKEN_ENV, Robot, RobotLate, SimRobot
from dagger.tasks import make_task

SPEED = 4.0  # `dagger robot-agent`'s default control rate, as a multiple of real time
PING_S = 0.05  # a run pings every remote.PING_EVERY_S (0.5 s); more often here, for enough round-trip samples

Act = Callable[[Robot, np.ndarray], np.ndarray]


@dataclass
class Loop:
    """One policy's episodes on one robot: steps, wall time, and when each observation came (perf_counter)."""

    steps: int = 0
    seconds: float = 0.0
    late: int = 0
    intervals: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.steps / self.seconds


def run(robot: Robot, act: Act, reset: Callable[[], None], episodes: int, max_steps: int,
        period: float | None = None) -> Loop:
    """Episodes of act() on robot, as a RobotWorker steps it; paced in-process when `period` is given (the loop
    sleeps to the next tick, as the worker's own clock does)."""
    loop = Loop()
    began = time.perf_counter()
    for episode in range(episodes):
        obs, steps = robot.reset(seed=1000 + episode), 0
        reset()
        last = next_tick = time.perf_counter()
        while not obs.done and steps < max_steps:
            robot.send_action(act(robot, obs.obs))
            try:
                obs = robot.get_observation()
            except RobotLate:  # as a RobotWorker: this period holds, and its observation catches up with the robot
                loop.late += 1
                robot.hold()
                try:
                    obs = robot.get_observation()
                except RobotLate:
                    pass
                continue
            if period is not None:
                next_tick += period
                time.sleep(max(0.0, next_tick - time.perf_counter()))
            now = time.perf_counter()
            loop.intervals.append(now - last)
            last, steps = now, steps + 1
        loop.steps += steps
    loop.seconds = time.perf_counter() - began
    return loop


class Agent:
    """`dagger robot-agent --task TASK --port 0` in its own process; stop() returns its health report."""

    def __init__(self, task: str, token: bytes):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "dagger.app.cli", "robot-agent", "--task", task,
                                      "--port", "0", "--speed", str(SPEED)], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env={**os.environ, TOKEN_ENV: token.hex()})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # robot 0: reach at 127.0.0.1:PORT, a period of 3.12 ms
        found = re.search(r" at (\S+), a period of ([\d.]+) ms", line)
        if found is None:
            raise RuntimeError(f"robot-agent did not start: {line!r} {self.said()}")
        self.address, self.period = found[1], float(found[2]) / 1000

    def said(self) -> str:
        """The end of what the agent logged (its warnings: refusals, watchdog holds)."""
        self.log.seek(0)
        return self.log.read()[-2000:]

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])


def expert(robot: Robot, obs: np.ndarray) -> np.ndarray:
    return robot.expert_action()


def p50_p99(values_ms: Any) -> str:
    p50, p99 = np.percentile(np.asarray(values_ms, dtype=np.float64), [50, 99])
    return f"{p50:.2f} / {p99:.2f}"


def measure(task_name: str, policy_name: str, episodes: int, max_steps: int, token: bytes) -> list[str]:
    """One row of the table: the loop over the bridge, then in-process paced and unpaced."""
    task = make_task(task_name)
    policy = make_policy(PolicyConfig(), task.obs_dim, task.act_dim) if policy_name != "expert" else None
    act: Act = expert if policy is None else (lambda robot, obs: policy.act(obs).action)
    reset: Callable[[], None] = (lambda: None) if policy is None else policy.reset
    agent = Agent(task_name, token)
    try:
        robot = remote.RemoteRobot(agent.address, token)
        robot.connect()
        bridge = run(robot, act, reset, episodes, max_steps)
        health = robot.health()
        robot.disconnect()
    except (ConnectionError, RobotLate) as e:
        raise RuntimeError(f"{task_name}, {policy_name}: {e}; the agent logged:\n{agent.said()}") from e
    finally:
        agent_health = agent.stop()
    period = agent.period
    paced = run(SimRobot(task), act, reset, episodes, max_steps, period)
    unpaced = run(SimRobot(task), act, reset, episodes, max_steps)
    jitter = np.abs(np.asarray(bridge.intervals) - period) * 1000
    return [task_name, policy_name, f"{period * 1000:.2f}", str(bridge.steps),
            f"{health['rtt_ms_p50']:.2f} / {health['rtt_ms_p99']:.2f}",
            f"{health['command_ms_p50']:.2f} / {health['command_ms_p99']:.2f}",
            f"{agent_health['jitter_ms_p50']:.2f} / {agent_health['jitter_ms_p99']:.2f}", p50_p99(jitter),
            f"{bridge.rate:.0f}", f"{bridge.rate / paced.rate:.2f}", f"{bridge.rate / unpaced.rate:.3f}",
            str(agent_health.get("repeats", 0)), str(agent_health.get("watchdog_holds", 0)), str(bridge.late)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="expert episodes per task")
    parser.add_argument("--tasks", default="reach,point")
    parser.add_argument("--policy-steps", type=int, default=400,
                        help="steps with the untrained ensemble per task (0: skip; its episodes run to the limit)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as robots run
    remote.PING_EVERY_S = PING_S
    token = secrets.token_bytes(32)
    header = ["task", "policy", "period ms", "steps", "RTT ms p50 / p99", "command→obs ms p50 / p99",
              "jitter at agent ms p50 / p99", "jitter at controller ms p50 / p99", "steps/s", "vs paced in-process",
              "vs unpaced in-process", "repeats", "watchdog holds", "late"]
    rows = []
    for task in args.tasks.split(","):
        rows.append(measure(task, "expert", args.episodes, 10_000, token))
        if args.policy_steps:
            rows.append(measure(task, "mlp-ensemble (untrained)", max(1, args.policy_steps // 100), 100, token))
    print(f"robot agent in its own process over loopback TCP (HMAC-SHA256, msgpack), {SPEED:g}x real time, "
          f"{os.cpu_count()} CPUs; pings every {PING_S * 1000:.0f} ms", file=sys.stderr)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
