"""The robot bridge across a bad network: a robot agent on one host (a network namespace) and its controller on
another, through a fault-injecting TCP proxy (tests/netfaults.py), under a few conditions.

Per condition: how many periods the robot moved against its real-time rate (it repeats its last setpoint while a
command is on its way), the controller's steps and how many of them it could record (a step executed from a state
the controller did not see is not a sample), the round trip, periods the controller held (an observation missed its
watchdog) and the robot held, stale messages the agent refused, commands the robot executed older than its watchdog
deadline (must be 0; measured independently: both hosts share this machine's clock, so a command's age is when the
robot executed it minus when the controller sent it, allowing the agent's clock-offset error and a thread switch) and
the oldest one executed, reconnects, and for a partition how long after the link came back the robot moved again.

The controller drives the point task's scripted expert as a RobotWorker does (a RobotLate: hold, go on). Needs
root and `ip netns`.

    python benchmarks/network.py [--seconds 15] [--partition-s 10]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the network helpers

from dagger.robots import RobotLate  # noqa: E402
from dagger.robots.remote import RemoteRobot  # noqa: E402
from tests.netfaults import Faults, unavailable  # noqa: E402
from tests.two_hosts import TwoHosts, command_ages, recording_sends  # noqa: E402

TASK_DT = 0.05  # the point task's real-time period


@dataclass
class Condition:
    name: str
    faults: Faults | None = None
    speed: float = 1.0  # the agent's control rate as a multiple of real time
    direct: bool = False  # the controller on the robot's host, no proxy (loopback)
    partition: bool = False


@dataclass
class Drive:
    """What the controller did: steps taken, recorded (fresh), late periods; stop() ends its loop."""

    robot: RemoteRobot
    steps: int = 0
    fresh: int = 0
    late: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        obs = None
        while not self.stopped.is_set():
            try:
                if obs is None or obs.done:
                    obs = self.robot.reset(seed=self.steps)
                    continue
                self.robot.send_action(self.robot.expert_action())
                obs = self.robot.get_observation()
            except RobotLate:
                self.late += 1
                self.robot.hold()
                continue
            self.steps += 1
            self.fresh += obs.fresh


def measure(condition: Condition, seconds: float, partition_s: float, token: bytes) -> list[str]:
    period = TASK_DT / condition.speed
    with TwoHosts(token, condition.faults, period=period, seed=7) as hosts, recording_sends() as sent:
        host = hosts.robot if condition.direct else hosts.worker
        with host.inside():
            robot = RemoteRobot(hosts.agent.address if condition.direct else hosts.address, token)
            robot.connect()
            drive = Drive(robot)
            thread = threading.Thread(target=drive.run, daemon=True)
            began = time.time()
            thread.start()
        resume = ""
        if condition.partition:
            time.sleep(seconds / 3)
            hosts.robot.link(up=False)
            time.sleep(partition_s)
            hosts.robot.link(up=True)
            healed = time.time()
            time.sleep(seconds * 2 / 3)
            after = [when for when, _ in hosts.traced.runs if when > healed]
            resume = f"{after[0] - healed:.2f}" if after else "never"
        else:
            time.sleep(seconds)
        drive.stopped.set()
        thread.join(timeout=30)
        took = time.time() - began
        health = robot.health()
        robot.disconnect()
        agent = hosts.agent.health()
        runs = [run for run in hosts.traced.runs if run[0] >= began]
        ages = np.asarray(command_ages(runs, sent))
        # the agent judges an age by its estimate of our clock (off by the measured offset: the true one is 0), and
        # both hosts share this process (a thread switch between the agent's check and the robot's step)
        deadline = hosts.agent.deadline + abs(health["offset_ms"]) / 1000 + sys.getswitchinterval()
    moving_s = took - (partition_s if condition.partition else 0.0)
    oldest = f"{ages.max() * 1000:.0f} ({hosts.agent.deadline * 1000:.0f})" if len(ages) else "–"
    return [condition.name, f"{period * 1000:.1f}", f"{len(runs) / moving_s:.1f} of {1 / period:.0f}",
            f"{drive.steps / moving_s:.1f}", f"{100 * drive.fresh / max(1, drive.steps):.0f} %",
            f"{health.get('rtt_ms_p50', 0):.0f}", str(drive.late), str(hosts.traced.holds),
            str(agent.get("watchdog_holds", 0)), str(agent.get("refused_stale", 0) + health.get("refused_stale", 0)),
            str(int((ages > deadline).sum())), oldest, str(health.get("reconnects", 0)), resume or "–"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="each condition's time (a partition's: besides)")
    parser.add_argument("--partition-s", type=float, default=10.0, help="how long the partition lasts")
    args = parser.parse_args()
    if why := unavailable():
        sys.exit(f"network benchmark: {why}")
    slow, lossy = Faults(delay_s=0.05, jitter_s=0.01), Faults(delay_s=0.05, jitter_s=0.01, loss=0.02)
    conditions = [
        Condition("loopback (one host, no proxy)", direct=True),
        Condition("two hosts, clean link (proxy)"),
        Condition("50 ± 10 ms each way", slow),
        Condition("50 ± 10 ms each way, 2 % loss", lossy),
        Condition("clean link, 1 chunk in 200 resets the connection", Faults(drop=0.005)),
        Condition(f"{args.partition_s:g} s partition (robot's link down)", partition=True),
        Condition("50 ± 10 ms, 2 % loss, agent at 4x real time", lossy, speed=4.0),
    ]
    token = secrets.token_bytes(32)
    header = ["network", "period ms", "robot moved, periods/s (of real time)", "controller steps/s", "recorded",
              "RTT ms p50", "controller held", "robot held periods", "watchdog holds", "stale refused",
              "stale executed", "oldest executed ms (deadline)", "reconnects", "resume after heal s"]
    rows = [measure(c, args.seconds, args.partition_s, token) for c in conditions]
    print(f"point task's expert over the robot bridge, {args.seconds:g} s a condition, {os.cpu_count()} CPUs; "
          "delay and loss per direction (a lost segment waits a retransmission timeout, >= 200 ms)", file=sys.stderr)
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
