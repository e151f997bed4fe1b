"""The supervisor: the control plane of a run, the same in-process and on Ray.

It polls every component, writes their events to events.jsonl, keeps the help queue (dagger.help_queue) and
carries out its assignments, forwards new weights and fleet gate thresholds, and stops the run at its budget.
None of this is on a robot's control path: robots never wait for it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

from dagger.config import RunConfig
from dagger.events import EventLog, first_line
from dagger.gates import AutoGate, make_gate
from dagger.help_queue import RELEASES, HelpQueue
from teleop_devices.station import HumanDevice, OperatorStation
from workers.budget import StepBudget
from workers.evaluator import Evaluator
from workers.roles import BufferRole, EvaluatorRole, LearnerRole, RobotRole
from workers.transport import Endpoint, Pending, settled

MAX_OUTAGE_POLLS = 300
"""polls in a row (30 s on Ray) a learner or buffer may miss before the run stops"""
MAX_HELD_S = 30.0
"""how long every robot may hold because its policy server or robot agent does not answer before the run stops"""


class Supervisor:
    def __init__(self, cfg: RunConfig, robots: list[Endpoint[RobotRole]], buffer: Endpoint[BufferRole],
                 learner: Endpoint[LearnerRole], log: EventLog, on_events: Callable[[list[dict]], None] | None = None,
                 clock: Any = time.time, restart: Callable[[int], Endpoint[RobotRole]] | None = None,
                 devices: dict[int, HumanDevice] | None = None, pump: Callable[[], None] | None = None,
                 evaluator: Endpoint[EvaluatorRole] | None = None, served: Any = None):
        self.served = served  # policy.type=remote: the policy server (or a client of it) that takes the weights
        self.refused = ""  # why the policy server last refused weights (said once per reason)
        self.cfg, self.robots, self.buffer, self.learner, self.log, self.clock = (
            cfg, robots, buffer, learner, log, clock)
        self.restart = restart
        self.station = OperatorStation(devices, self.send_input, self.send_lost, self.record, clock,
                                       pump=pump) if devices else None
        self.on_events = on_events  # e.g. the dashboard's live numbers
        self.help = HelpQueue.for_run(cfg, len(robots), clock(), remote=devices or ())
        gate = make_gate(cfg.gate)
        self.fleet_gate = gate if isinstance(gate, AutoGate) else None  # tuned from every robot's states
        self.sent_version = 0
        self.evaluator = evaluator if cfg.eval.every_versions > 0 else None
        self.evaluated = -1  # the last version sent to the evaluator
        self.scored = -1  # the last version whose evaluation was logged
        self.eval_pending: Pending[int] | None = None
        self.sent_thresholds: dict[str, float] = self.fleet_gate.observe([]) if self.fleet_gate else {}
        self.status: dict[str, Any] = {"robots": {}, "learner": {}, "buffer": {}, "frames": {}}
        self.failed = ""  # a component that cannot go on (the learner's loop died): the run stops with this
        self.outage: dict[str, int] = {}  # component -> polls in a row it did not answer
        self.held_since: dict[int, float] = {}  # robot -> since when its policy or robot has been late (it holds)
        self.budget = StepBudget(cfg.steps, len(robots), lead=1)  # lead: half a second of steps, set at the first poll
        self.steps = 0  # the fleet's steps, replaced robots' included
        # robot -> its clock minus ours: on a cluster each robot's host keeps its own wall clock; its events are
        # logged on ours and an operator's readings reach it on its own (the stale-input rule compares them)
        self.offsets = [self.clock_offset(robot) for robot in range(len(robots))]

    def poll(self) -> dict[str, Any]:
        """One round of the control plane; returns the latest status of every component."""
        robot_polls = [r.call(RobotRole.poll) for r in self.robots]
        learner_poll, buffer_poll = self.learner.call(LearnerRole.poll), self.buffer.call(BufferRole.poll)
        if self.evaluator is not None:
            self.record(self.evaluator.call(EvaluatorRole.poll).result()["events"])
        for robot, pending in enumerate(robot_polls):
            try:
                result = pending.result()
            except Exception as err:  # noqa: BLE001 - a dead actor; anything else would be a bug below
                self.robot_lost(robot, err)
            else:
                self.handle(result)
                if result["status"].get("failure"):  # its control loop died: replace it like a dead actor
                    self.robot_lost(robot, RuntimeError(f"control loop failed: {result['status']['failure']}"))
        for name, pending in (("learner", learner_poll), ("buffer", buffer_poll)):
            try:
                result = pending.result()
            except Exception as err:  # noqa: BLE001 - a crashed actor that Ray is restarting; counted below
                self.unavailable(name, err)
                continue
            if self.outage.pop(name, 0):
                self.record([{"ev": "component_back", "t": self.clock(), "component": name}])
            self.record(result["events"])
            if any(e["ev"] == "restarted" for e in result["events"]):  # numbers on after what robots run
                self.learner.call(LearnerRole.advance_to, self.sent_version)
            self.status[name] = result["status"]
            if result["status"].get("failure") and not self.failed:
                self.failed = f"{name} failed: {result['status']['failure']}"
        now = self.clock()
        self.check_held(now)
        self.share_budget()
        self.forward_weights()
        self.allocate()
        self.status["queue"] = self.help.queue_status(now)
        self.status["serving"] = self.help.serving_status()
        self.status["steps"] = self.steps
        self.status["thresholds"] = self.sent_thresholds  # a tuned gate's bars now (auto, thrifty), for the dashboard
        self.status["devices"] = self.station.health(now) if self.station is not None else {}
        return self.status

    def share_budget(self) -> None:
        """A step budget (not minutes) is shared out among the robots that can step, so the fleet takes exactly it."""
        if self.cfg.minutes > 0:
            return
        stepping = {r for r, s in self.status["robots"].items() if s["state"] != "waiting" and not s.get("held")}
        for robot, allowed, seq in self.budget.grants(stepping):
            self.robots[robot].call(RobotRole.allow, allowed, seq)

    def check_held(self, now: float) -> None:
        """A fleet whose every robot has held for MAX_HELD_S because its policy server or robot agent does not
        answer stops the run, saying why (else it would sit at the same step count for ever)."""
        for robot, status in self.status["robots"].items():
            if status.get("held"):
                self.held_since.setdefault(robot, now)
            else:
                self.held_since.pop(robot, None)
        if len(self.held_since) == len(self.robots) and now - max(self.held_since.values()) >= MAX_HELD_S:
            held = self.status["robots"][min(self.held_since)]
            self.failed = self.failed or f"every robot has held for {MAX_HELD_S:g} s: {held['held']} late: " \
                                         f"{held['held_why']}"

    def clock_offset(self, robot: int) -> float:
        """Robot `robot`'s clock minus ours, from the quickest of three round trips (as NTP does); logged."""
        samples = []
        try:
            for _ in range(3):
                t0 = self.clock()
                t = self.robots[robot].call(RobotRole.now).result()
                t1 = self.clock()
                samples.append((t1 - t0, t - (t0 + t1) / 2))
        except Exception:  # noqa: BLE001 - a robot that does not answer is found lost at its first poll
            return 0.0
        rtt, offset = min(samples)
        self.record([{"ev": "clock_offset", "t": self.clock(), "robot": robot, "offset_s": offset, "rtt_s": rtt}])
        return offset

    def send_input(self, robot: int, reading: dict[str, Any]) -> None:
        """An operator's reading from the station, its times moved onto the robot's clock."""
        reading = {**reading, "t_report": reading["t_report"] + self.offsets[robot],
                   "t_input": reading["t_input"] + self.offsets[robot]}
        self.robots[robot].call(RobotRole.operator_input, reading)

    def send_lost(self, robot: int, operator: int) -> None:
        """The station lost the device of an operator who controls the robot."""
        self.robots[robot].call(RobotRole.operator_lost, operator)

    def record(self, events: list[dict]) -> None:
        self.log.write(events)
        if self.on_events is not None:
            self.on_events(events)
        for e in events:
            if e["ev"] == "eval":
                self.scored = max(self.scored, e["version"])
            if e["ev"] == "log_problem":
                print(f"dagger: warning: segment log {e['file']}@{e['offset']}: {e['what']}", file=sys.stderr)

    def handle(self, result: dict) -> None:
        """Takes one robot's poll: logs its events (on our clock) and updates queue, operators and fleet gate."""
        status = result["status"]
        offset = self.offsets[status["robot"]]
        for event in result["events"] if offset else ():
            for key in ("t", "t_start", "t_end"):  # a segment's times too: metrics place events among them
                if key in event:
                    event[key] -= offset
        self.record(result["events"])
        self.status["robots"][status["robot"]] = status
        if result.get("frame") is not None:
            self.status["frames"][status["robot"]] = result["frame"]
        self.budget.seen(status["robot"], status["steps"], status.get("allowed", -1), status.get("allow_seq", 0))
        self.budget.lead = max(self.budget.lead, math.ceil(status.get("rate", 0.0) / 2))
        self.steps = self.budget.taken
        for event in result["events"]:
            if event["ev"] == "help_requested":
                self.help.asked(event)
            elif event["ev"] in RELEASES and self.help.released(event):
                if self.station is not None and event["operator"] in self.station.devices:
                    self.station.release(event["operator"], event.get("robot", -1))
        if self.fleet_gate is not None and result["states"]:
            thresholds = self.fleet_gate.observe(result["states"])
            if thresholds != self.sent_thresholds:
                self.sent_thresholds = thresholds
                for r in self.robots:
                    r.call(RobotRole.set_thresholds, thresholds)

    def robot_lost(self, robot: int, error: Exception) -> None:
        """Frees the robot's operator and queue place, then replaces it (when a restart is given)."""
        self.record([{"ev": "robot_lost", "t": self.clock(), "robot": robot, "error": str(error)[:300]}])
        self.help.lost(robot)
        if self.restart is None:
            raise RuntimeError(f"robot {robot} failed and cannot be restarted: {error}") from error
        self.robots[robot] = self.restart(robot)
        self.budget.replaced(robot)
        self.record([{"ev": "robot_restarted", "t": self.clock(), "robot": robot}])
        self.offsets[robot] = self.clock_offset(robot)
        version, weights = settled(self.learner, LearnerRole.latest)  # a learner Ray is restarting is waited for
        self.robots[robot].call(RobotRole.set_weights, self.for_robots(version, weights))
        self.robots[robot].call(RobotRole.set_thresholds, self.sent_thresholds)

    def unavailable(self, name: str, error: Exception) -> None:
        """A learner or buffer that did not answer a poll: logged once per outage; the run stops when it stays
        away for MAX_OUTAGE_POLLS polls in a row (Ray restarts a crashed one within seconds)."""
        self.outage[name] = self.outage.get(name, 0) + 1
        if self.outage[name] == 1:
            self.record([{"ev": "component_unavailable", "t": self.clock(), "component": name,
                          "error": first_line(error)}])
        if self.outage[name] >= MAX_OUTAGE_POLLS and not self.failed:
            self.failed = f"{name} failed: no answer to {self.outage[name]} polls"

    def forward_weights(self) -> None:
        version = self.status["learner"].get("version", 0)
        if version > self.sent_version:
            try:
                latest, weights = self.learner.call(LearnerRole.latest).result()
            except Exception as err:  # noqa: BLE001 - the learner went away between poll and fetch
                self.unavailable("learner", err)
                return
            if self.served is not None:  # before the robots leave their start: the server acts for them
                self.serve_weights(version, weights)
            for r in self.robots:
                r.call(RobotRole.set_weights, self.for_robots(latest, weights))
            self.sent_version = version
            self.maybe_evaluate(version, weights)

    def for_robots(self, version: int, weights: Any) -> Any:
        """What robots are sent of a version: its weights, or where a policy server acts for them only the version
        (it lets them leave their start; they load nothing, so none of them need fetch the weights)."""
        return {"version": version} if self.served is not None else weights

    def serve_weights(self, version: int, weights: Any) -> None:
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

    def final_eval(self, fetch: Callable[[Any], dict]) -> None:
        """At the end of a run: stops the learner's publishing and scores its final version here, at the driver's
        priority (`fetch` turns the learner's published handle into weights), so the learning curve ends at the policy
        the run leaves behind (its last checkpoint). An evaluation still running in the evaluator, at the lowest
        priority, is not waited for: on a busy machine it could take minutes, and its version is an earlier one."""
        if self.evaluator is None:
            return
        settled(self.learner, LearnerRole.halt)
        version, weights = settled(self.learner, LearnerRole.latest)
        if self.served is not None and version > self.sent_version:  # the server acts with the final version too
            self.serve_weights(version, weights)
            self.sent_version = version
        if self.eval_pending is None or self.eval_pending.ready():
            self.record(self.evaluator.call(EvaluatorRole.poll).result()["events"])
        # a server that refused the weights serves what was scored already: scored again only if never
        if version > self.scored and (not self.refused or self.scored < 0):
            final = Evaluator(self.cfg, self.clock)
            final.evaluate(fetch(weights))
            self.record(final.poll()["events"])

    def allocate(self) -> None:
        """Carries out the help queue's assignments: each robot is told its operator, the station its robots."""
        now = self.clock()
        away = self.station.lost if self.station is not None else ()  # operators whose device disappeared
        for given in self.help.allocate(now, self.robot_statuses(), self.steps, away):
            self.robots[given.robot].call(RobotRole.assign, given.operator, given.remote, given.strain,
                                          given.switching)
            if self.station is not None and given.remote:
                self.station.assign(given.operator, given.robot)
            self.record([{"ev": "operator_assigned", "t": now, "robot": given.robot, "operator": given.operator,
                          "queued_s": given.queued_s, "strain": given.strain, "switching": given.switching}])

    def robot_statuses(self) -> list[dict[str, Any]]:
        """Every robot's latest status, in robot order ({} for one not heard from yet)."""
        return [self.status["robots"].get(r, {}) for r in range(len(self.robots))]

    def done(self, started: float) -> bool:
        if self.cfg.minutes > 0:
            return self.clock() - started >= self.cfg.minutes * 60
        return self.steps >= self.cfg.steps

    def run(self, between: Callable[[], None], on_status: Callable[[dict], None] | None = None,
            period: float = 0.1, station_period: float = 0.01) -> str:
        """Polls until the budget is spent or Ctrl-C; `between` drives in-process components.

        With human operators the loop ticks at station_period (device readings must stay fresh)
        and polls every `period`.
        """
        started = self.clock()
        tick = station_period if self.station is not None and period else period
        polls_every = max(1, round(period / tick)) if tick else 1
        ticks = 0
        try:
            while not self.done(started) and not self.failed:
                between()
                if self.station is not None:
                    self.station.tick()
                if ticks % polls_every == 0:
                    status = self.poll()
                    if on_status is not None:
                        on_status(status)
                ticks += 1
                if tick:
                    time.sleep(tick)
        except KeyboardInterrupt:
            return "interrupted"
        return "failed" if self.failed else "budget"
