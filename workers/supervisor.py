"""The supervisor: the control plane of a run, the same in-process and on Ray.

It polls every component, writes their events to events.jsonl, keeps the help queue (dagger.help_queue) and
carries out its assignments, forwards new weights and fleet gate thresholds, and stops the run at its budget.
None of this is on a robot's control path: robots never wait for it.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from dagger.config import RunConfig
from dagger.events import EventLog, StorageError, first_line
from dagger.gates import AutoGate, make_gate
from dagger.help_queue import RELEASES, HelpQueue
from teleop_devices.station import HumanDevice, OperatorStation
from workers.budget import StepBudget
from workers.roles import BufferRole, Fleet, LearnerRole, RobotRole
from workers.storage_watch import StorageWatch
from workers.transport import DEADLINE_S, HUNG_S, Endpoint, Late
from workers.weights_relay import WeightsRelay

MAX_OUTAGE_POLLS = 300
"""polls in a row (30 s on Ray) a learner or buffer may miss before the run stops"""
MAX_HELD_S = 30.0
"""how long every robot may hold because its policy server or robot agent does not answer before the run stops"""


def label(who: tuple[str, int]) -> str:
    """A component's name in events: learner, buffer, or `group N`."""
    return f"group {who[1]}" if who[0] == "group" else who[0]


class Supervisor:
    def __init__(self, cfg: RunConfig, fleet: Fleet, log: EventLog,
                 on_events: Callable[[list[dict]], None] | None = None, clock: Any = time.time,
                 devices: dict[int, HumanDevice] | None = None, pump: Callable[[], None] | None = None,
                 served: Any = None):
        self.cfg, self.fleet, self.buffer, self.learner, self.log, self.clock = (
            cfg, fleet, fleet.buffer, fleet.learner, log, clock)
        self.group_of = {robot: g for g, ids in enumerate(fleet.members) for robot in ids}
        self.robots = len(self.group_of)
        self.replaced: dict[int, int] = {}  # robot -> the incarnation whose failure was last answered by a replacement
        self.station = OperatorStation(devices, self.send_input, self.send_lost, self.record, clock,
                                       pump=pump, max_age_s=cfg.safety.max_age_s) if devices else None
        self.on_events = on_events  # e.g. the dashboard's live numbers
        self.help = HelpQueue.for_run(cfg, self.robots, clock(), remote=devices or ())
        gate = make_gate(cfg.gate)
        self.fleet_gate = gate if isinstance(gate, AutoGate) else None  # tuned from every robot's states
        self.weights = WeightsRelay(cfg, fleet, self.record, clock, served)
        self.sent_thresholds: dict[str, float] = self.fleet_gate.observe([]) if self.fleet_gate else {}
        self.status: dict[str, Any] = {"robots": {}, "learner": {}, "buffer": {}, "frames": {}}
        self.failed = ""  # a component that cannot go on (the learner's loop died): the run stops with this
        self.outage: dict[str, int] = {}  # component -> polls in a row it did not answer
        self.round = 0  # polls so far
        self.published = 0  # the newest version the learner logged: a restarted one numbers on after it
        self.reported: set[str] = set()  # robot:seq of every segment whose event was logged
        self.recovery: tuple[float, Any] | None = None  # when to ask the buffer for a lost group's segments, or the ask
        self.asked: dict[tuple[str, int], tuple[Any, int, float]] = {}  # unanswered polls: (pending, round, since)
        self.hung: dict[tuple[str, int], float] = {}  # components reported hung -> since when they are silent
        self.storage = StorageWatch(cfg.storage_wait_s)
        self.held_since: dict[int, float] = {}  # robot -> since when its policy or robot has been late (it holds)
        self.budget = StepBudget(cfg.steps, self.robots, lead=1)  # lead: half a second of steps, set at the first poll
        self.steps = 0  # the fleet's steps, replaced robots' included
        # robot -> its clock minus ours: on a cluster each robot's host keeps its own wall clock; its events are
        # logged on ours and an operator's readings reach it on its own (the stale-input rule compares them)
        self.offsets = [0.0] * self.robots
        for group in range(len(fleet.groups)):
            self.clock_offset(group)

    def group(self, robot: int) -> Endpoint[RobotRole]:
        """The worker that drives `robot`."""
        return self.fleet.groups[self.group_of[robot]]

    def poll(self) -> dict[str, Any]:
        """One round of the control plane; returns the latest status of every component. Each component is waited
        for DEADLINE_S at most: one that stays silent is reported hung and, after HUNG_S, treated as dead."""
        self.round += 1
        for group, endpoint in enumerate(self.fleet.groups):
            self.ask(("group", group), endpoint, RobotRole.poll)
        self.ask(("learner", 0), self.learner, LearnerRole.poll)
        self.ask(("buffer", 0), self.buffer, BufferRole.poll)
        end = time.monotonic() + DEADLINE_S
        for group in range(len(self.fleet.groups)):
            try:
                results = self.answer(("group", group), end)
            except Late:
                continue
            except Exception as err:  # noqa: BLE001 - a dead actor; anything else would be a bug below
                self.group_lost(group, err)
                continue
            for result in results:
                self.handle(result)
            self.check_failures(group, [result["status"] for result in results])
        for name in ("learner", "buffer"):
            try:
                result = self.answer((name, 0), end)
            except Late:
                continue
            except Exception as err:  # noqa: BLE001 - a crashed actor that Ray is restarting; counted below
                self.unavailable(name, err)
                continue
            self.record(result["events"])
            self.published = max([self.published] + [e["version"] for e in result["events"]
                                                     if e["ev"] == "weights_published"])
            if any(e["ev"] == "restarted" for e in result["events"]):  # numbers on after every version logged
                self.learner.call(LearnerRole.advance_to, max(self.published, self.weights.sent_version))
            self.status[name] = result["status"]
            if result["status"].get("failure") and not self.failed:
                self.failed = f"{name} failed: {result['status']['failure']}"
        self.weights.poll_evaluator(0.0)
        self.recover()
        now = self.clock()
        self.check_storage(now)
        self.check_held(now)
        self.share_budget()
        try:
            self.weights.forward(self.status["learner"].get("version", 0))
        except Exception as err:  # noqa: BLE001 - the learner went away between poll and fetch
            self.unavailable("learner", err)
        self.allocate()
        self.status["queue"] = self.help.queue_status(now)
        self.status["serving"] = self.help.serving_status()
        self.status["steps"] = self.steps
        self.status["thresholds"] = self.sent_thresholds  # a tuned gate's bars now (auto, thrifty), for the dashboard
        self.status["devices"] = self.station.health(now) if self.station is not None else {}
        self.status["storage"] = self.storage.status(now)
        return self.status

    def ask(self, who: tuple[str, int], endpoint: Endpoint[Any], method: Callable[..., Any]) -> None:
        """Polls a component, unless its poll of an earlier round is still unanswered (a hung component's calls do not
        pile up)."""
        if who not in self.asked:
            self.asked[who] = (endpoint.call(method), self.round, self.clock())

    def answer(self, who: tuple[str, int], end: float) -> Any:
        """The component's answer, waited for until `end` (time.monotonic) if it was asked this round, not at all if it
        is late from an earlier one; Late while it has not answered. A component silent for HUNG_S is reported hung
        and then handled as a dead one."""
        pending, asked_round, since = self.asked[who]
        try:
            result = pending.result(max(0.0, end - time.monotonic()) if asked_round == self.round else 0.0)
        except Late:
            self.silent(who, since)
            raise
        except Exception:
            self.asked.pop(who, None)  # it answered, with an error
            raise
        self.asked.pop(who, None)
        if (self.hung.pop(who, None) is not None) | bool(self.outage.pop(who[0], 0)):
            self.record([{"ev": "component_back", "t": self.clock(), "component": label(who)}])
        return result

    def silent(self, who: tuple[str, int], since: float) -> None:
        """A component that has not answered its poll: reported once as hung; after HUNG_S a robot group is restarted
        and a learner or buffer killed for Ray to restart (as a crashed one is); one that cannot be stops the run."""
        now = self.clock()
        if who not in self.hung:
            self.hung[who] = since
            self.record([{"ev": "component_hung", "t": now, "component": label(who),
                          "error": f"no answer to a poll within {DEADLINE_S:g} s"}])
        if now - since < HUNG_S:
            return
        del self.asked[who]
        self.hung.pop(who)
        why = f"{label(who)} hung: no answer for {now - since:.0f} s"
        kind, index = who
        if kind == "group":
            self.group_lost(index, RuntimeError(why))
        else:
            try:
                self.fleet.kill_hung(self.learner if kind == "learner" else self.buffer)
            except RuntimeError as err:
                self.failed = self.failed or f"{why}, and it cannot be restarted: {err}"
                return
            self.unavailable(kind, RuntimeError(why))

    def recover(self) -> None:
        """The segments a lost group's robots closed and the buffer stored, whose events died with them: logged from
        the buffer's record (`recovered`), so the report counts what the log holds."""
        if self.recovery is None:
            return
        at, pending = self.recovery
        if pending is None and self.clock() >= at:
            self.recovery = (at, self.buffer.call(BufferRole.unreported, sorted(self.reported)))
        elif pending is not None and pending.ready():
            self.recovery = None
            with contextlib.suppress(Exception):  # a buffer restarting: its log is read back at the next resume
                events = pending.result()
                self.reported.update(f"{e['robot']}:{e['seq']}" for e in events)
                self.record(events)

    def check_storage(self, now: float) -> None:
        """While the buffer cannot make a correction durable, every robot holds and nobody is asked to help (robots
        are told, and told again when it can); storage away for storage_wait_s stops the run."""
        why = self.storage.update(now, self.status["buffer"].get("storage", {}), self.status["robots"].values())
        if why is not None:
            self.record([{"ev": "storage_failed", "t": now, "error": why} if why else
                         {"ev": "storage_back", "t": now}])
            for group in self.fleet.groups:
                group.call(RobotRole.storage, why)
        if self.storage.expired(now) and not self.failed:
            self.failed = (f"storage failed for {self.cfg.storage_wait_s:g} s (storage_wait_s): {self.storage.why}; "
                           "robots held, and no correction was taken that could not be kept")

    def share_budget(self) -> None:
        """A step budget (not minutes) is shared out among the robots that can step, so the fleet takes exactly it."""
        if self.cfg.minutes > 0:
            return
        stepping = {r for r, s in self.status["robots"].items() if s["state"] != "waiting" and not s.get("held")}
        for robot, allowed, seq in self.budget.grants(stepping):
            self.group(robot).call(RobotRole.allow, robot, allowed, seq)

    def check_held(self, now: float) -> None:
        """A fleet whose every robot has held for MAX_HELD_S because its policy server or robot agent does not
        answer stops the run, saying why (else it would sit at the same step count for ever)."""
        for robot, status in self.status["robots"].items():
            if status.get("held"):
                self.held_since.setdefault(robot, now)
            else:
                self.held_since.pop(robot, None)
        if len(self.held_since) == self.robots and now - max(self.held_since.values()) >= MAX_HELD_S:
            held = self.status["robots"][min(self.held_since)]
            self.failed = self.failed or f"every robot has held for {MAX_HELD_S:g} s: {held['held']} late: " \
                                         f"{held['held_why']}"

    def clock_offset(self, group: int) -> None:
        """Sets the offsets of a group's robots: its clock minus ours, from the quickest of three round trips (as NTP
        does); logged per robot."""
        samples = []
        try:
            for _ in range(3):
                t0 = self.clock()
                t = self.fleet.groups[group].call(RobotRole.now).result(DEADLINE_S)
                t1 = self.clock()
                samples.append((t1 - t0, t - (t0 + t1) / 2))
        except Exception:  # noqa: BLE001 - a group that does not answer is found lost at its first poll
            return
        rtt, offset = min(samples)
        for robot in self.fleet.members[group]:
            self.offsets[robot] = offset
            self.record([{"ev": "clock_offset", "t": self.clock(), "robot": robot, "offset_s": offset, "rtt_s": rtt}])

    def send_input(self, robot: int, reading: dict[str, Any]) -> None:
        """An operator's reading from the station, its times moved onto the robot's clock."""
        reading = {**reading, "t_report": reading["t_report"] + self.offsets[robot],
                   "t_input": reading["t_input"] + self.offsets[robot]}
        self.group(robot).call(RobotRole.operator_input, robot, reading)

    def send_lost(self, robot: int, operator: int) -> None:
        """The station lost the device of an operator who controls the robot."""
        self.group(robot).call(RobotRole.operator_lost, robot, operator)

    def record(self, events: list[dict]) -> None:
        try:
            self.log.write(events)
        except StorageError as err:  # disk full: the run stops, its last events in the space the log kept
            self.failed = self.failed or str(err.strerror)
        if self.on_events is not None:
            self.on_events(events)
        self.weights.seen(events)
        for e in events:
            if e["ev"] == "log_problem":
                print(f"dagger: warning: segment log {e['file']}@{e['offset']}: {e['what']}", file=sys.stderr)
            elif e["ev"] == "calibration" and e.get("threshold") is not None:  # gate.calibrate=conformal
                self.sent_thresholds = {"threshold": e["threshold"]}
                for group in self.fleet.groups:
                    group.call(RobotRole.set_thresholds, self.sent_thresholds)

    def handle(self, result: dict) -> None:
        """Takes one robot's poll: logs its events (on our clock) and updates queue, operators and fleet gate."""
        status = result["status"]
        offset = self.offsets[status["robot"]]
        for event in result["events"] if offset else ():
            for key in ("t", "t_start", "t_end"):  # a segment's times too: metrics place events among them
                if key in event:
                    event[key] -= offset
        self.record(result["events"])
        self.reported.update(f"{e['robot']}:{e['seq']}" for e in result["events"] if e["ev"] == "segment")
        self.status["robots"][status["robot"]] = status
        if result.get("frame") is not None:
            self.status["frames"][status["robot"]] = result["frame"]
        if status.get("incarnation", 0) > self.replaced.get(status["robot"], -1):  # not a replaced robot's last words
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
                for group in self.fleet.groups:
                    group.call(RobotRole.set_thresholds, thresholds)

    def check_failures(self, group: int, statuses: list[dict[str, Any]]) -> None:
        """A group whose control loop died is restarted like a dead actor; a robot of it that failed alone (its
        simulator or connection raised) gets a fresh controller while the rest of the group drives on."""
        died = next((s["group_failure"] for s in statuses if s.get("group_failure")), "")
        if died:
            self.group_lost(group, RuntimeError(f"control loop failed: {died}"))
            return
        for status in statuses:
            robot = status["robot"]
            if status.get("failure") and status["incarnation"] > self.replaced.get(robot, -1):
                self.replaced[robot] = status["incarnation"]
                self.lost(robot, status["failure"])
                self.fleet.replace_robot(robot)
                self.restarted(robot)
                self.group(robot).call(RobotRole.set_thresholds, self.sent_thresholds)

    def group_lost(self, group: int, error: Exception) -> None:
        """Frees its robots' operators and queue places, then replaces the worker (RuntimeError: it cannot be)."""
        for robot in self.fleet.members[group]:
            self.lost(robot, first_line(error))
        try:
            endpoint = self.fleet.restart_group(group)
        except RuntimeError as err:
            raise RuntimeError(f"robots {self.fleet.members[group]} failed and cannot be restarted: {error}") from err
        for robot in self.fleet.members[group]:
            self.restarted(robot)
        self.recovery = (self.clock() + DEADLINE_S, None)  # after its last sends have landed
        self.clock_offset(group)
        self.weights.send_latest(endpoint)
        endpoint.call(RobotRole.set_thresholds, self.sent_thresholds)
        if self.storage.why:
            endpoint.call(RobotRole.storage, self.storage.why)

    def lost(self, robot: int, error: str) -> None:
        self.record([{"ev": "robot_lost", "t": self.clock(), "robot": robot, "error": error[:300]}])
        self.help.lost(robot)

    def restarted(self, robot: int) -> None:
        self.budget.replaced(robot)
        self.record([{"ev": "robot_restarted", "t": self.clock(), "robot": robot}])

    def unavailable(self, name: str, error: Exception) -> None:
        """A learner or buffer that did not answer a poll: logged once per outage; the run stops when it stays
        away for MAX_OUTAGE_POLLS polls in a row (Ray restarts a crashed one within seconds)."""
        self.outage[name] = self.outage.get(name, 0) + 1
        if self.outage[name] == 1:
            self.record([{"ev": "component_unavailable", "t": self.clock(), "component": name,
                          "error": first_line(error)}])
        if self.outage[name] >= MAX_OUTAGE_POLLS and not self.failed:
            self.failed = f"{name} failed: no answer to {self.outage[name]} polls"

    def allocate(self) -> None:
        """Carries out the help queue's assignments: each robot is told its operator, the station its robots."""
        if self.storage.why:
            return  # nobody is asked to help while a correction could not be kept
        now = self.clock()
        away = self.station.away() if self.station is not None else set()  # a device lost, or a page gone quiet
        for given in self.help.allocate(now, self.robot_statuses(), self.steps, away):
            self.group(given.robot).call(RobotRole.assign, given)
            if self.station is not None and given.remote:
                self.station.assign(given.operator, given.robot)
            self.record([{"ev": "operator_assigned", "t": now, "robot": given.robot, "operator": given.operator,
                          "queued_s": given.queued_s, "strain": given.strain, "switching": given.switching}])

    def robot_statuses(self) -> list[dict[str, Any]]:
        """Every robot's latest status, in robot order ({} for one not heard from yet)."""
        return [self.status["robots"].get(r, {}) for r in range(self.robots)]

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
