"""Learner: trains the ensemble continuously on sampled batches and publishes versioned weights.

Each member gets its own batch (online bootstrap), so members disagree where data is thin.

    learner = Learner(cfg, obs_dim, act_dim, LocalEndpoint(buffer))
    learner.train(100); learner.publish(); version, weights = learner.latest()
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import torch

from dagger.config import RunConfig
from dagger.policy import EnsemblePolicy
from workers.transport import Endpoint


class Learner:
    def __init__(self, cfg: RunConfig, obs_dim: int, act_dim: int, buffer: Endpoint, clock: Any = time.time):
        torch.manual_seed(cfg.seed)
        self.cfg, self.buffer, self.clock = cfg, buffer, clock
        self.policy = EnsemblePolicy(obs_dim, act_dim, cfg.policy, seed=cfg.seed)
        self.optimizer = torch.optim.Adam(self.policy.net.parameters(), lr=cfg.policy.lr)
        self.updates = 0
        self.updates_at_publish = 0
        self.loss = float("nan")
        self.published: dict = self.policy.weights()
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def train(self, n: int) -> float:
        """n gradient updates on freshly sampled batches; returns the mean loss."""
        members, batch = self.cfg.policy.members, self.cfg.learner.batch_size
        data = self.buffer.call("sample", n * members * batch).result()
        if data is None:
            return float("nan")
        self.policy.set_normalizer(*data["normalizer"])
        obs = torch.from_numpy(data["obs"]).reshape(n, members, batch, -1)
        act = torch.from_numpy(data["action"]).reshape(n, members, batch, -1)
        losses = []
        for i in range(n):
            loss = self.policy.loss(obs[i], act[i])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.updates += n
        self.loss = float(np.mean(losses))
        return self.loss

    def publish(self) -> int:
        """Freezes the current weights as the next version."""
        self.policy.version += 1
        self.updates_at_publish = self.updates
        self.published = self.policy.weights()
        self._emit("learner", updates=self.updates, loss=self.loss)
        self._emit("weights_published", version=self.policy.version, updates=self.updates)
        return self.policy.version

    def latest(self) -> tuple[int, Any]:
        return self.published["version"], self.published

    def poll(self) -> dict:
        with self.lock:
            events, self.events = self.events, []
        return {"events": events, "status": {"updates": self.updates, "loss": self.loss,
                                             "version": self.published["version"]}}

    def _emit(self, kind: str, **fields: Any) -> None:
        with self.lock:
            self.events.append({"ev": kind, "t": self.clock(), **fields})

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="learner", daemon=True)
        self.thread.start()

    def stop(self) -> dict:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        self._emit("learner", updates=self.updates, loss=self.loss)
        return self.poll()

    def run(self) -> None:
        """Train and publish until stopped, at most max_updates_per_s."""
        n, cap = self.cfg.learner.updates_per_fetch, self.cfg.learner.max_updates_per_s
        while not self.stopped.is_set():
            began = time.perf_counter()
            self.train(n)
            if self.updates - self.updates_at_publish >= self.cfg.learner.publish_every:
                self.publish()
            if cap > 0:
                self.stopped.wait(max(0.0, n / cap - (time.perf_counter() - began)))
