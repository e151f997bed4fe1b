"""Where each new policy version goes: every robot group (or, where a policy server acts for the robots, the server,
and the robots only its number), and the evaluator when it is free; at the end, the final version is scored.

    relay = WeightsRelay(cfg, fleet, record, clock, served=None)
    relay.forward(version)          # the learner published `version`: fetch it once, send it on
    relay.final_eval(fleet.fetch)   # the run ends: the version it leaves behind is scored
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from dagger.config import RunConfig
from dagger.events import first_line
from workers.evaluator import Evaluator
from workers.roles import EvaluatorRole, Fleet, LearnerRole, RobotRole
from workers.transport import DEADLINE_S, HUNG_S, Endpoint, Late, Pending, cause_of, settled


class WeightsRelay:
    def __init__(self, cfg: RunConfig, fleet: Fleet, record: Callable[[list[dict]], None],
                 clock: Callable[[], float], served: Any = None):
        self.cfg, self.fleet, self.record, self.clock = cfg, fleet, record, clock
        self.served = served  # policy.type=remote: the policy server (or a client of it) that takes the weights
        self.refused = ""  # why the policy server last refused weights (said once per reason)
        self.sent_version = 0
        self.evaluator = fleet.evaluator if cfg.eval.every_versions > 0 else None
        self.evaluated = -1  # the last version sent to the evaluator
        self.scored = -1  # the last version whose evaluation was logged
        self.eval_pending: Pending[int] | None = None
        self.asked: Pending[tuple[int, Any]] | None = None  # the learner's newest version, asked for, not yet answered
        self.eval_poll: tuple[Pending[dict], float] | None = None  # an evaluator poll not yet answered, since when
        self.eval_hung = False  # said to hang (or to have died): said again when it answers

    def forward(self, version: int) -> None:
        """Sends on a newer published version once the learner hands it out (asked once, taken when it answers: a
        hung learner holds nothing up); a learner gone between its poll and the fetch raises (the caller counts the
        outage)."""
        if version <= self.sent_version:
            return
        if self.asked is None:
            self.asked = self.fleet.learner.call(LearnerRole.latest)
        if not self.asked.ready():
            return
        asked, self.asked = self.asked, None
        latest, weights = asked.result()
        if self.served is not None:  # before the robots leave their start: the server acts for them
            self.serve(version, weights)
        for group in self.fleet.groups:
            group.call(RobotRole.set_weights, self.for_robots(latest, weights))
        self.sent_version = version
        self.maybe_evaluate(version, weights)

    def send_latest(self, group: Endpoint[RobotRole]) -> None:
        """A restarted group gets the newest version (a learner Ray is restarting is waited for)."""
        version, weights = settled(self.fleet.learner, LearnerRole.latest)
        group.call(RobotRole.set_weights, self.for_robots(version, weights))

    def for_robots(self, version: int, weights: Any) -> Any:
        """What robots are sent of a version: its weights, or where a policy server acts for them only the version
        (it lets them leave their start; they load nothing, so none of them need fetch the weights)."""
        return {"version": version} if self.served is not None else weights

    def serve(self, version: int, weights: Any) -> None:
        """Gives the policy server the weights. A server that refuses them (`dagger serve` without --accept-weights)
        serves on with its own policy: said once on the console and logged, then again only when the reason changes."""
        try:
            self.served.load(weights)
        except Exception as err:  # noqa: BLE001 - a frozen server serves on; the robots act with its policy
            why = first_line(err, 300)
            if why != self.refused:
                self.refused = why
                self.record([{"ev": "policy_server_refused", "t": self.clock(), "version": version, "error": why}])
                print(f"dagger: warning: the policy server did not take weights v{version}: {why}", file=sys.stderr)
        else:
            self.refused = ""

    def seen(self, events: list[dict]) -> None:
        """Notes the versions whose evaluation was logged."""
        for e in events:
            if e["ev"] == "eval":
                self.scored = max(self.scored, e["version"])

    def maybe_evaluate(self, version: int, weights: Any) -> None:
        """Sends the evaluator the first version and the first one past each multiple of eval.every_versions,
        only when it is free (it never queues work)."""
        if self.evaluator is None:
            return
        every = self.cfg.eval.every_versions
        due = self.evaluated < 0 or version // every > self.evaluated // every
        if due and (self.eval_pending is None or self.eval_pending.ready()):
            self.eval_pending = self.evaluator.call(EvaluatorRole.evaluate, weights)
            self.evaluated = version

    def poll_evaluator(self, timeout: float) -> None:
        """Logs the evaluator's scores, waiting `timeout` seconds at most; a poll it leaves unanswered is not asked
        again until it answers, and one unanswered for HUNG_S is reported (the fleet does not wait for scores)."""
        if self.evaluator is None:
            return
        if self.eval_poll is None:
            self.eval_poll = (self.evaluator.call(EvaluatorRole.poll), self.clock())
        pending, since = self.eval_poll
        try:
            events = pending.result(timeout)["events"]
        except Late:
            if not self.eval_hung and self.clock() - since >= HUNG_S:
                self.eval_hung = True
                self.record([{"ev": "component_hung", "t": self.clock(), "component": "evaluator",
                              "error": f"no answer to a poll for {HUNG_S:g} s"}])
            return
        except Exception as err:  # noqa: BLE001 - a dead evaluator costs only its scores: said once
            events = [] if self.eval_hung else [{"ev": "component_unavailable", "t": self.clock(),
                                                 "component": "evaluator", "error": cause_of(err, 300)}]
            self.eval_hung = True
            self.eval_poll = None
            self.record(events)
            return
        self.eval_poll = None
        if self.eval_hung:
            self.eval_hung = False
            events = [{"ev": "component_back", "t": self.clock(), "component": "evaluator"}, *events]
        self.record(events)

    def final_eval(self, fetch: Callable[[Any], dict]) -> None:
        """At the end of a run: stops the learner's publishing and scores its final version here, at the driver's
        priority (`fetch` turns the learner's published handle into weights), so the learning curve ends at the policy
        the run leaves behind (its last checkpoint). An evaluation still running in the evaluator, at the lowest
        priority, is not waited for: on a busy machine it could take minutes, and its version is an earlier one."""
        if self.evaluator is None:
            return
        settled(self.fleet.learner, LearnerRole.halt)
        version, weights = settled(self.fleet.learner, LearnerRole.latest)
        if self.served is not None and version > self.sent_version:  # the server acts with the final version too
            self.serve(version, weights)
            self.sent_version = version
        if self.eval_pending is None or self.eval_pending.ready():
            self.poll_evaluator(5 * DEADLINE_S)
        # a server that refused the weights serves what was scored already: scored again only if never
        if version > self.scored and (not self.refused or self.scored < 0):
            final = Evaluator(self.cfg, self.clock)
            final.evaluate(fetch(weights))
            self.record(final.poll()["events"])
