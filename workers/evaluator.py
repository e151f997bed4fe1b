"""Evaluator: scores published weights alone (no gate, no human) during a run, for the learning curve.

It runs the policy on the same held-out episodes each time (dagger.evaluation) and emits an `eval`
event per version. On Ray it is its own process at the lowest CPU priority (`eval.nice`, 19; Ray runs
its other workers at 15), so on a busy machine the robots' control loops run first and evaluation
takes the idle time; the supervisor sends it a version only when it is free, so it never queues work.

    evaluator = Evaluator(cfg); evaluator.evaluate(weights); evaluator.poll()["events"]
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from dagger.config import RunConfig
from dagger.evaluation import eval_seeds, evaluate_policy
from dagger.policies import make_policy
from dagger.tasks import make_task


class Evaluator:
    def __init__(self, cfg: RunConfig, clock: Any = time.time, background: bool = False):
        if background:  # its own process, at the lowest priority by default: robots' control loops come first
            now = os.getpriority(os.PRIO_PROCESS, 0)  # Ray starts its workers at nice 15 already
            os.setpriority(os.PRIO_PROCESS, 0, max(now, cfg.eval.nice))
        self.cfg, self.clock = cfg, clock
        self.task = make_task(cfg.task)
        self.seeds = eval_seeds(cfg.eval.episodes)
        self.lock = threading.Lock()
        self.events: list[dict] = []

    def evaluate(self, weights: dict) -> int:
        """Scores one published version; returns it."""
        policy = make_policy(self.cfg.policy, self.task.obs_dim, self.task.act_dim, image_shape=self.task.image_shape)
        policy.load(weights)
        began = self.clock()
        result = evaluate_policy(policy, self.task, self.seeds)
        with self.lock:
            self.events.append({"ev": "eval", "t": self.clock(), "version": policy.version,
                                "seed_base": self.seeds[0], "eval_s": round(self.clock() - began, 3), **result})
        return policy.version

    def poll(self) -> dict:
        with self.lock:
            events, self.events = self.events, []
        return {"events": events, "status": {}}
