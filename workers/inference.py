"""A robot group's policy: one copy of the weights, each robot's episode in a stream of its own, one batched call a
period for the robots that need an answer — inline, or beside the control step.

    policy = GroupPolicy(cfg, task, robots=[0, 1, 2, 3])
    answers = policy.answers(asking)      # {robot: PolicyOutput, or the error that left it without one}

Beside (`robot.infer=beside`): the period's batch goes to an inference thread and the period goes on at once; each
robot acts on the answer to its previous period's observation, one period late, as LeRobot's asynchronous inference
and real-time chunking act on a chunk computed from an earlier observation. Inference then never holds up the control
loop: a robot whose answer is not ready holds that period (an episode's first period always does), and the time
from observation to answer is measured (`latency_ms`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Protocol

import numpy as np

from dagger.config import RunConfig
from dagger.core import PolicyOutput, PolicyTimeout, TaskSpec
from dagger.policies import robot_policy
from dagger.policies.remote import RemotePolicyError

Answers = dict[int, PolicyOutput | Exception]


class Asking(Protocol):
    """A robot that needs the policy's answer this period (a dagger.control.RobotController)."""

    id: int
    obs: np.ndarray
    image: np.ndarray | None
    episode: int


class GroupPolicy:
    def __init__(self, cfg: RunConfig, spec: TaskSpec, ids: list[int]):
        self.served = cfg.policy.type == "remote"  # a policy server acts for these robots: they take no weights
        self.policy = robot_policy(cfg.policy, spec, ids[0])
        self.streams = {robot: self.policy.stream(robot) for robot in ids}
        self.version = 0
        self.calls = self.answered = 0  # batched calls made, robots answered by them (the mean batch: their ratio)
        self.latency_ms = 0.0  # observation to answer, moving average
        self.beside = Beside(self) if cfg.robot.infer == "beside" else None

    def load(self, weights: dict) -> bool:
        """Takes a newer version; False when it was not newer."""
        if weights["version"] <= self.version:
            return False
        if not self.served:  # the supervisor gives a policy server its weights
            with self.beside.lock if self.beside is not None else nullcontext():
                self.policy.load(weights)
        self.version = int(weights["version"])
        return True

    def new_episode(self, robot: int) -> None:
        if self.beside is not None:
            self.beside.forget(robot)
        else:
            self.streams[robot].reset()

    def answers(self, asking: Sequence[Asking]) -> Answers:
        """Every asking robot's answer, or the error that left them without one (they hold this period)."""
        if self.beside is not None:
            return self.beside.answers(asking)
        began = time.perf_counter()
        out = self.batch([(a.id, a.obs, a.image) for a in asking])
        self.measured(began)
        return out

    def batch(self, rows: list[tuple[int, np.ndarray, np.ndarray | None]]) -> Answers:
        """One batched call for (robot, obs, image) rows."""
        if not rows:
            return {}
        self.calls += 1
        self.answered += len(rows)
        obs = np.stack([row[1] for row in rows])
        images = None if rows[0][2] is None else np.stack([row[2] for row in rows])  # type: ignore[misc]
        try:
            outs = self.policy.act_batch(obs, images, [self.streams[row[0]] for row in rows])
        except (PolicyTimeout, RemotePolicyError) as err:  # no answer, or none a robot may move on
            return {row[0]: err for row in rows}
        return {row[0]: out for row, out in zip(rows, outs, strict=True)}

    def measured(self, began: float) -> None:
        self.latency_ms += 0.05 * (1000 * (time.perf_counter() - began) - self.latency_ms)


class Beside:
    """The inference thread of a group acting beside its control step (see the module docstring)."""

    def __init__(self, group: GroupPolicy):
        self.group = group
        self.lock = threading.Lock()  # the policy's weights and streams: loaded between batches, never during one
        self.wake = threading.Condition()
        self.request: list[tuple[int, np.ndarray, np.ndarray | None]] | None = None
        self.episodes: dict[int, int] = {}  # robot -> the episode its pending request is of
        self.ready: Answers = {}
        self.resets: set[int] = set()  # robots whose stream resets before their next request
        threading.Thread(target=self.run, name="inference", daemon=True).start()

    def forget(self, robot: int) -> None:
        """A new episode: its stream resets before its next request, and an answer of the last one is dropped."""
        with self.wake:
            self.resets.add(robot)
            self.ready.pop(robot, None)

    def answers(self, asking: Sequence[Asking]) -> Answers:
        with self.wake:
            done = {a.id: self.ready.pop(a.id) for a in asking
                    if a.id in self.ready and self.episodes.get(a.id) == a.episode}
            if self.request is None:  # the thread is free: this period's observations go to it
                for a in asking:  # an answer of an earlier episode, come after it ended, is dropped
                    self.ready.pop(a.id, None)
                self.request = [(a.id, a.obs, a.image) for a in asking]
                self.episodes.update((a.id, a.episode) for a in asking)
                self.wake.notify()
        return done

    def run(self) -> None:
        while True:
            with self.wake:
                while self.request is None:
                    self.wake.wait()
                rows = self.request
                resets, self.resets = self.resets, set()
            began = time.perf_counter()
            with self.lock:
                for robot in resets:
                    self.group.streams[robot].reset()
                out = self.group.batch(rows)
            self.group.measured(began)
            with self.wake:
                self.ready.update(out)
                self.request = None
