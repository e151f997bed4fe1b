"""Learner: trains the policy continuously on sampled batches and publishes versioned weights.

The training math is the policy family's (dagger.policies: `policy.update(batch)`); the learner fetches
what the family asks for — one batch per ensemble member (online bootstrap), action chunks, observation
histories — and, when the gate or the allocator needs them, transitions for the critics. The classifier
learns where the policy errs, so it trains on human segments the policy never sees (every HOLDOUT-th
stored segment, as SafeDAgger holds out a set for it).

Every `learner.checkpoint_every` published versions, and when it stops, it writes a checkpoint
(dagger.checkpoint) to its checkpoint dir; `restore` continues from one.

    learner = Learner(cfg, obs_dim, act_dim, LocalEndpoint(buffer), checkpoints=run_dir / "checkpoints")
    learner.train(100); learner.publish(); version, weights = learner.latest()
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dagger.allocators import READS_RISK
from dagger.checkpoint import check_compatible, has_checkpoint, read_checkpoint, to_arrays, to_tensors, write_checkpoint
from dagger.config import RunConfig, to_dict
from dagger.events import first_line
from dagger.gates import GATES
from dagger.policies import make_policy
from dagger.tasks import TASK_IMAGES
from workers.roles import SampleSource
from workers.transport import DEADLINE_S, HUNG_S, Endpoint, Late, start_loop

#: on an image task, one fetch from the buffer carries at most this many bytes of images (a long train() fetches
#: in several parts)
IMAGE_FETCH_BYTES = 64 << 20


class Learner:
    def __init__(self, cfg: RunConfig, obs_dim: int, act_dim: int, buffer: Endpoint[SampleSource],
                 clock: Any = time.time, checkpoints: Path | None = None):
        torch.manual_seed(cfg.seed)
        self.cfg, self.buffer, self.clock, self.checkpoints = cfg, buffer, clock, checkpoints
        # a buffer restarting, or hung past HUNG_S: the learner waits for it instead of failing
        self.buffer_away: tuple[type[BaseException], ...] = (Late, *buffer.transient)
        image_shape = TASK_IMAGES.get(cfg.task.name)
        self.task: dict[str, Any] = {"name": cfg.task.name, "obs_dim": obs_dim, "act_dim": act_dim,
                                     **({"image_shape": list(image_shape)} if image_shape else {})}
        self.frozen_normalizer = False  # a policy started from another run's checkpoint keeps its normaliser
        self.numbering = True  # may publish: it knows the next version number
        self.policy = make_policy(cfg.policy, obs_dim, act_dim, seed=cfg.seed, image_shape=image_shape)
        per_update = self.policy.members * cfg.learner.batch_size * int(np.prod(image_shape or (0,)))
        self.per_fetch = max(1, IMAGE_FETCH_BYTES // per_update) if per_update else 1 << 30  # updates per fetch
        self.needs = GATES[cfg.gate.name].needs + (("hazard",) if cfg.allocator in READS_RISK else ())
        self.updates = 0
        self.updates_at_publish = 0
        self.loss = float("nan")
        self.side_losses: dict[str, float] = {}  # critic / classifier, when trained
        self.last_part: dict[str, Any] | None = None  # one member's part of the newest training batch
        self.published: dict = self.policy.weights()
        self.lock = threading.Lock()
        self.training = threading.Lock()  # held while the weights change: a training step, a restore
        self.events: list[dict] = []
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.failure = ""  # why the training loop died, if it did

    def train(self, n: int) -> float:
        """n gradient updates on freshly sampled batches; returns the mean loss."""
        with self.training:  # the loop's thread and a call (start-up retried after a restart) never step at once
            parts = [self._train(min(self.per_fetch, n - done)) for done in range(0, n, self.per_fetch)]
        finite = [loss for loss in parts if math.isfinite(loss)]
        return float(np.mean(finite)) if finite else float("nan")

    def _train(self, n: int) -> float:
        p, batch = self.policy, self.cfg.learner.batch_size
        data = self.buffer.call(SampleSource.sample, n * p.members * batch, p.horizon, p.history).result(HUNG_S)
        if data is None:
            return float("nan")
        if not self.frozen_normalizer:
            p.set_normalizer(*data["normalizer"])
        parts = {k: v.reshape(n, p.members, batch, *v.shape[1:]) for k, v in data.items() if k != "normalizer"}
        critics = [name for name in ("critic", "hazard") if name in self.needs]
        transitions = self.buffer.call(SampleSource.sample_transitions, n * batch).result(HUNG_S) if critics else None
        losses: dict[str, list[float]] = {}
        for i in range(n):
            part = {k: v[i * batch:(i + 1) * batch] for k, v in transitions.items()} if transitions else None
            step = p.update({k: v[i] for k, v in parts.items()}, part, self.needs, self.cfg.gate.tau_sup)
            for name, value in step.items():
                losses.setdefault(name, []).append(value)
        self.last_part = {k: v[-1] for k, v in parts.items()}  # what publish() measures the train gap on
        self.updates += n
        self.loss = float(np.mean(losses.pop("bc")))
        self.side_losses = {k: float(np.mean(v)) for k, v in losses.items()}
        return self.loss

    def publish(self) -> int:
        """Freezes the current weights as the next version."""
        if self.last_part is not None:  # once per version: with a sampling family's greedy, it costs
            self.policy.measure_gap(self.last_part)
        self.policy.version += 1
        self.updates_at_publish = self.updates
        self.published = self.policy.weights()
        self._emit_progress()
        self._emit("weights_published", version=self.policy.version, updates=self.updates)
        every = self.cfg.learner.checkpoint_every
        if every > 0 and self.policy.version % every == 0:
            self.checkpoint()
        return self.policy.version

    def checkpoint(self) -> None:
        """Writes the published version (with the trainer's state) to the checkpoint dir."""
        if self.checkpoints is None:
            return
        try:
            data = self.buffer.call(SampleSource.stats).result(DEADLINE_S)
        except self.buffer_away:
            data = {}  # the buffer is restarting or hangs: the checkpoint goes without its counts
        config = to_dict(self.cfg)
        policy = {**config["policy"], "type": self.policy.family}  # for `remote`: the family it serves
        payload = {"version": self.published["version"], "task": self.task, "policy": policy,
                   "config": config, "weights": to_tensors(self.published), "trainer": self.trainer_state(),
                   "data": data, "saved_at": self.clock()}
        path = write_checkpoint(self.checkpoints, payload, keep=self.cfg.learner.checkpoint_keep)
        self._emit("checkpoint", version=self.published["version"], updates=self.updates, path=str(path),
                   trained_on_steps=data.get("stored_steps", 0))

    def resume_after_crash(self) -> None:
        """A learner process started again in a running run: restore the newest checkpoint, train on."""
        if self.checkpoints is not None and has_checkpoint(self.checkpoints):
            self.restore(read_checkpoint(self.checkpoints), trainer=True)
        self.numbering = False  # until the supervisor says which version the robots run (advance_to)
        self._emit("restarted", component="learner", version=self.policy.version)
        self.start()

    def advance_to(self, version: int) -> None:
        """Numbers the next published version after `version`: a learner restored after a crash may be behind what
        the robots already run, and a version number is never given twice."""
        self.policy.version = max(self.policy.version, version)
        self.numbering = True

    def trainer_state(self) -> dict:
        """What training needs besides the published weights: optimisers, the critics' targets, counters."""
        return {"updates": self.updates, **self.policy.trainer_state()}

    def restore(self, ckpt: dict, trainer: bool = True) -> int:
        """Continues from a checkpoint (see dagger.checkpoint.read_checkpoint): its weights and version, and with
        `trainer` its optimisers and update count; without, the normaliser stays the checkpoint's. Returns the
        version."""
        check_compatible(ckpt, self.task, self.cfg.policy)
        with self.training:
            self.policy.version = 0
            self.policy.load(to_arrays(ckpt["weights"]))
            if trainer:
                state = ckpt["trainer"]
                self.policy.load_trainer_state(state)
                self.updates = self.updates_at_publish = int(state["updates"])
            self.frozen_normalizer = not trainer
            self.published = self.policy.weights()
        self._emit("restored", version=self.policy.version, updates=self.updates, path=ckpt["path"],
                   trainer=trainer)
        return self.policy.version

    def latest(self) -> tuple[int, Any]:
        return self.published["version"], self.published

    def poll(self) -> dict:
        with self.lock:
            events, self.events = self.events, []
        return {"events": events, "status": {"updates": self.updates, "loss": self.loss,
                                             "version": self.published["version"], "failure": self.failure}}

    def _emit_progress(self) -> None:
        """A `learner` event; no loss yet is null (NaN is not JSON)."""
        self._emit("learner", updates=self.updates, loss=self.loss if math.isfinite(self.loss) else None,
                   **self.side_losses)

    def _emit(self, kind: str, **fields: Any) -> None:
        with self.lock:
            self.events.append({"ev": kind, "t": self.clock(), **fields})

    def start(self) -> None:
        if self.thread is not None:  # one training loop, however often asked
            return
        self.thread = start_loop(self.run, "learner", self.loop_failed)

    def loop_failed(self, error: str) -> None:
        self.failure = error
        self._emit("loop_failed", component="learner", error=error)

    def halt(self) -> None:
        """Stops training and publishing: the final version is fixed from here on."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()

    def stop(self) -> dict:
        self.halt()
        self._emit_progress()
        if self.checkpoints is not None and self.published["version"] > 0:
            self.checkpoint()
        return self.poll()

    def run(self) -> None:
        """Train and publish until stopped, at most max_updates_per_s."""
        n, cap = self.cfg.learner.updates_per_fetch, self.cfg.learner.max_updates_per_s
        while not self.stopped.is_set():
            began = time.perf_counter()
            try:
                self.train(n)
            except self.buffer_away as err:  # a buffer restarting or hung: wait for it instead of failing
                self._emit("buffer_unavailable", error=first_line(err, 200))
                self.stopped.wait(0.5)
                continue
            if self.numbering and self.updates - self.updates_at_publish >= self.cfg.learner.publish_every:
                self.publish()
            if cap > 0:
                self.stopped.wait(max(0.0, n / cap - (time.perf_counter() - began)))
