"""Evaluator: scores published weights alone (no gate, no human) during a run, for the learning curve.

It runs the policy on the same held-out episodes each time (dagger.evaluation) and emits an `eval`
event per version. On Ray it is its own process at the lowest CPU priority (`eval.nice`, 19; Ray runs
its other workers at 15), so on a busy machine the robots' control loops run first and evaluation
takes the idle time; the supervisor sends it a version only when it is free, so it never queues work.

    evaluator = Evaluator(cfg); evaluator.evaluate(weights); evaluator.poll()["events"]

In a run whose robots act through a policy server (`policy.type=remote`) it scores the server, as a robot of its own:
the policy the robots ran, whether or not the server took the run's weights (`dagger serve` without --accept-weights
serves its checkpoint). The event's version is the one the server answered with.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from typing import Any

from dagger.config import RunConfig
from dagger.core import Policy, PolicyTimeout
from dagger.evaluation import eval_seeds, evaluate_policy, summarize_episodes
from dagger.events import first_line
from dagger.gates.conformal import calibration_event, rollouts
from dagger.policies import make_policy, robot_policy
from dagger.policies.remote import RemotePolicy, RemotePolicyError
from dagger.tasks import make_task

SERVED_ROBOT = 1 << 30
"""the evaluator's robot id on a policy server: its episodes never share a robot's episode state"""
SERVED_DEADLINE_MS = 10_000.0
"""how long the evaluator waits for a served answer (it runs at the lowest priority; robots hold at their deadline)"""


class Evaluator:
    def __init__(self, cfg: RunConfig, clock: Any = time.time, background: bool = False):
        if background:  # its own process, at the lowest priority by default: robots' control loops come first
            now = os.getpriority(os.PRIO_PROCESS, 0)  # a worker of a `ray start` node is at nice 15 already
            os.setpriority(os.PRIO_PROCESS, 0, max(now, cfg.eval.nice))
        self.cfg, self.clock = cfg, clock
        self.task = make_task(cfg.task)
        self.seeds = eval_seeds(cfg.eval.episodes)
        self.lock = threading.Lock()
        self.events: list[dict] = []

    def evaluate(self, weights: dict) -> int:
        """Scores one published version; returns it."""
        policy = self.policy(weights)
        began = self.clock()
        calibration: dict | None = None
        try:
            if self.cfg.gate.calibrate == "conformal":  # the same episodes, scored step by step, calibrate the gate
                runs = rollouts(policy, self.task, self.seeds, self.cfg.gate.score)
                result = summarize_episodes([r.outcome for r in runs])
                calibration = calibration_event(runs, self.cfg.gate.false_alarm, self.cfg.eval.calibration_share,
                                                self.task.dt)
            else:
                result = evaluate_policy(policy, self.task, self.seeds)
        except (PolicyTimeout, RemotePolicyError) as err:  # the server went away: no score, the run goes on
            with self.lock:
                self.events.append({"ev": "eval_failed", "t": self.clock(), "version": policy.version,
                                    "error": first_line(err, 300)})
            return policy.version
        finally:
            if isinstance(policy, RemotePolicy):
                policy.close()
        with self.lock:
            self.events.append({"ev": "eval", "t": self.clock(), "version": policy.version,
                                "seed_base": self.seeds[0], "eval_s": round(self.clock() - began, 3), **result})
            if calibration is not None:
                self.events.append({"ev": "calibration", "t": self.clock(), "version": policy.version,
                                    "score": self.cfg.gate.score, **calibration})
        return policy.version

    def policy(self, weights: dict) -> Policy:
        """The policy to score: the weights in a family of its own, or the policy server the robots act through."""
        if self.cfg.policy.type == "remote":
            served = replace(self.cfg.policy, deadline_ms=SERVED_DEADLINE_MS)
            return robot_policy(served, self.task, SERVED_ROBOT)
        policy = make_policy(self.cfg.policy, self.task.obs_dim, self.task.act_dim, image_shape=self.task.image_shape)
        policy.load(weights)
        return policy

    def poll(self) -> dict:
        with self.lock:
            events, self.events = self.events, []
        return {"events": events, "status": {}}
