"""The run's event log: one JSON object per line in RUN_DIR/events.jsonl, every kind of event catalogued in KINDS.

    log = EventLog(run_dir / "events.jsonl"); log.write([{"ev": "run_start", "t": time.time()}])
    events = read_events(run_dir / "events.jsonl")   # every event checked against FIELDS

KINDS says, for every kind of event the code writes, what it means and the fields it carries with their JSON types.
Each event is checked against it when written (see STRICT); reading checks FIELDS, the fields reports rely on and
every log ever written carries, so a damaged or hand-edited log is an error naming its line and field, never a
crash deep in a report, and an older log that lacks a newer field still reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NUMBER, INT, TEXT, FLAG, LIST = "number", "integer", "string", "boolean", "list"


@dataclass(frozen=True)
class Kind:
    """One kind of event: what it says, and its fields (besides "ev", a string, and "t", a number: the fleet clock)."""

    doc: str
    needs: dict[str, str] = field(default_factory=dict)
    """fields reports read and every log ever written carries: checked when read and when written"""
    has: dict[str, str] = field(default_factory=dict)
    """fields written today (an older log may lack them): checked when written"""
    may: dict[str, str] = field(default_factory=dict)
    """fields that may be absent or null: checked when present. Fields not named anywhere are let through"""


KINDS: dict[str, Kind] = {
    # a run's course
    "run_start": Kind("a run begins (a `dagger` run, a resumed one, a fleet or failure bench run): its settings",
                      may={"seed": INT, "robots": INT, "operators": INT, "task": TEXT, "policy": TEXT, "gate": TEXT,
                           "alpha": NUMBER, "control_period_ms": NUMBER, "resumed": FLAG, "allocator": TEXT,
                           "method": TEXT, "operator_kinds": LIST}),
    "run_end": Kind("a run ends: why (done, interrupted, failed with `error`), or a bench's wall time",
                    may={"reason": TEXT, "error": TEXT, "wall_s": NUMBER}),
    "policy_start": Kind("the first policy is in the learner: from demonstrations, `init_from`'s checkpoint or resumed",
                         has={"source": TEXT, "version": INT},
                         may={"path": TEXT, "demo_episodes": INT, "demo_steps": INT}),
    "placed": Kind("a Ray actor started: the node and address it runs on",
                   has={"role": TEXT, "node": TEXT, "ip": TEXT}, may={"robot": INT}),
    "fleet_step": Kind("one step of the simulated fleet bench (`dagger bench`): counts over its robots",
                       needs={"successes": NUMBER, "violations": NUMBER, "hard_resets": NUMBER,
                              "human_actions": NUMBER, "idle": NUMBER, "switches": NUMBER, "reward": NUMBER},
                       may={"reacting": NUMBER, "risk": NUMBER, "td_risk": NUMBER}),
    # a robot's steps and episodes
    "segment": Kind("a run of one controller's steps on one robot was closed and reported (stored by the buffer)",
                    needs={"robot": INT, "seq": INT, "controller": TEXT, "steps": INT, "t_start": NUMBER,
                           "t_end": NUMBER, "versions": LIST},
                    has={"episode": INT, "reason": TEXT}, may={"unrecorded": INT}),
    "stored": Kind("the buffer acknowledged an operator's segment: its steps are durable",
                   needs={"robot": INT, "seq": INT, "steps": INT}),
    "ship_failed": Kind("a robot's segments did not reach the buffer; human segments are kept and sent again",
                        has={"robot": INT, "error": TEXT, "segments": INT}),
    "steps_unrecorded": Kind("steps a robot took from a state it never saw (a late command), after its last segment",
                             needs={"steps": INT}, has={"robot": INT}),
    "episode_end": Kind("a robot's episode ended: success, its steps, the operators' share and the return",
                        needs={"robot": INT, "success": FLAG, "human_steps": INT},
                        has={"episode": INT, "steps": INT, "return": NUMBER}, may={"camera_ms": NUMBER}),
    "episode_marked": Kind("an operator labelled the robot's episode (`mark`: success or failure)",
                           has={"robot": INT, "operator": INT, "episode": INT, "mark": TEXT}),
    "weights_loaded": Kind("a robot loaded a new policy version", has={"robot": INT, "version": INT}),
    "render_failed": Kind("a robot cannot render camera frames (no GL): it runs on without",
                          has={"robot": INT, "error": TEXT}),
    "policy_late": Kind("the served policy missed a robot's deadline: the robot holds until it answers in time",
                        has={"robot": INT, "error": TEXT}),
    "policy_back": Kind("the served policy answers a robot in time again, after `held_steps` held periods",
                        has={"robot": INT, "held_steps": INT}),
    "robot_late": Kind("a robot (a robot agent) missed its deadline: the worker holds",
                       has={"robot": INT, "error": TEXT}),
    "robot_back": Kind("a robot answers in time again, after `held_steps` held periods",
                       has={"robot": INT, "held_steps": INT}),
    # help, operators and their devices
    "help_requested": Kind("a robot asks for an operator: why, and the gate's score against its threshold",
                           needs={"threshold": NUMBER},
                           has={"robot": INT, "reason": TEXT, "score": NUMBER},
                           may={"safety": NUMBER, "p_safe": NUMBER}),
    "operator_assigned": Kind("the supervisor gave a waiting robot an operator, after `queued_s` in the queue",
                              needs={"robot": INT, "operator": INT, "queued_s": NUMBER},
                              has={"strain": NUMBER, "switching": FLAG}),
    "assign_refused": Kind("a robot refused an operator it was not waiting for (its `state` then)",
                           has={"robot": INT, "operator": INT, "state": TEXT}),
    "takeover": Kind("the operator's first command on a robot: who asked (`gated`: robot or human), the waits, and "
                     "`mode`: takeover, or nudge (the policy acts on, the operator's residual added)",
                     needs={"gated": TEXT, "wait_s": NUMBER, "operator": INT},
                     has={"robot": INT, "reason": TEXT, "latency_s": NUMBER, "reaction_s": NUMBER},
                     may={"mode": TEXT}),
    "nudge_escalated": Kind("a nudge pushed beyond its bound for operator.nudge_to_takeover_s: a takeover now",
                            has={"robot": INT, "operator": INT}),
    "handback": Kind("an operator let go of a robot (released, a safety stop, the episode's end)",
                     needs={"robot": INT, "operator": INT}, has={"reason": TEXT}),
    "device_health": Kind("an operator's input device now and then: its report rate, reading age and deadman",
                          has={"operator": INT, "device": TEXT, "present": FLAG, "rate_hz": NUMBER, "deadman": FLAG},
                          may={"age_s": NUMBER}),
    "device_lost": Kind("an operator's input device went away: its robots are asked for again",
                        has={"operator": INT, "device": TEXT}),
    "device_back": Kind("an operator's lost device is there again (a browser tab reopened): robots are offered again",
                        has={"operator": INT, "device": TEXT}),
    # learner, buffer, evaluator, supervisor
    "learner": Kind("the learner's progress: updates so far and the latest loss (null before the first)",
                    needs={"updates": INT}, may={"loss": NUMBER}),
    "weights_published": Kind("the learner froze its weights as a new version for the robots",
                              needs={"version": INT}, has={"updates": INT}),
    "segment_trained": Kind("a stored segment was first sampled for training (`key`: robot:seq)", needs={"key": TEXT}),
    "checkpoint": Kind("the learner wrote a published version to the checkpoint directory",
                       has={"version": INT, "updates": INT, "path": TEXT, "trained_on_steps": INT}),
    "restored": Kind("the learner continued from a checkpoint (`trainer`: with its optimisers and update count)",
                     needs={"updates": INT}, has={"version": INT, "path": TEXT, "trainer": FLAG}),
    "restarted": Kind("a component's process started again in a running run (Ray restarted it)",
                      has={"component": TEXT, "version": INT}),
    "loop_failed": Kind("a robot's or the learner's loop died, or the buffer could not close: it stops there, says why",
                        has={"component": TEXT, "error": TEXT}, may={"robot": INT}),
    "buffer_unavailable": Kind("the learner found the buffer restarting: it waits instead of training",
                               has={"error": TEXT}),
    "log_problem": Kind("the buffer found a damaged record in its segment log on opening it, and skipped it",
                        has={"file": TEXT, "offset": INT, "what": TEXT}),
    "log_lost": Kind("a resumed run's segment log lacks segments its events report stored (a torn, damaged, cut or "
                     "removed file): `keys` (robot:seq) for the report to leave out; `frames`/`steps` the run counted "
                     "stored, of them `human_segments`/`human_steps` an operator's (`trained`: already trained on)",
                     has={"keys": LIST, "frames": INT, "human_steps": INT},
                     may={"steps": INT, "human_segments": INT, "trained": INT, "files": LIST, "what": TEXT}),
    "eval": Kind("one published version scored alone on held-out episodes: success rate with its 95 % interval",
                 needs={"version": INT, "success_rate": NUMBER, "ci95": LIST, "episodes": INT},
                 has={"seed_base": INT, "eval_s": NUMBER},
                 may={"successes": INT, "violation_rate": NUMBER, "mean_return": NUMBER, "mean_length": NUMBER}),
    "calibration": Kind("a scored version's conformal gate threshold (gate.calibrate=conformal): the "
                        "⌈(n+1)(1−alpha)⌉-th smallest `score` over the n steps of its successful calibration episodes "
                        "(null: too few; the robots keep theirs), and on the held-out episodes the share of successful "
                        "steps above it (false_alarm), of failures with a step above it (detected), and the first "
                        "alarm's lead before a detected failure's end (lead_steps, lead_s)",
                        has={"version": INT, "score": TEXT, "alpha": NUMBER, "calibration_episodes": INT,
                             "calibration_steps": INT, "held_out": INT},
                        may={"threshold": NUMBER, "false_alarm": NUMBER, "success_steps": INT, "failures": INT,
                             "detected": NUMBER, "lead_steps": NUMBER, "lead_s": NUMBER}),
    "eval_failed": Kind("a version could not be scored (the policy server went away): the run goes on",
                        has={"version": INT, "error": TEXT}),
    "clock_offset": Kind("a robot's clock against the supervisor's, measured on (re)start: its events are shifted",
                         has={"robot": INT, "offset_s": NUMBER, "rtt_s": NUMBER}),
    "robot_lost": Kind("a robot stopped answering: its operator and queue place are freed",
                       has={"robot": INT, "error": TEXT}),
    "robot_restarted": Kind("a lost robot was replaced by a new one", has={"robot": INT}),
    "component_unavailable": Kind("the learner or buffer did not answer a poll: once per outage",
                                  has={"component": TEXT, "error": TEXT}),
    "component_back": Kind("a component answers again after an outage or a hang", has={"component": TEXT}),
    "component_hung": Kind("a component (learner, buffer, evaluator, `group N`) left a poll unanswered past its "
                           "deadline: once per hang (after supervisor.HUNG_S it is handled as a dead one)",
                           has={"component": TEXT, "error": TEXT}),
    "storage_failed": Kind("the buffer cannot make an operator's correction durable: every robot holds, nobody is "
                           "asked to help", has={"error": TEXT}),
    "storage_back": Kind("corrections can be stored again: robots step and ask again"),
    "storage_hold": Kind("a robot holds because storage failed (its `state` then; an operator is released)",
                         has={"robot": INT, "state": TEXT, "error": TEXT}),
    "storage_resumed": Kind("a robot held for storage goes on", has={"robot": INT, "state": TEXT}),
    "unstored": Kind("an operator's segments the buffer never acknowledged by the run's end: taken, not stored",
                     has={"robot": INT, "keys": LIST, "steps": INT, "error": TEXT}),
    "policy_server_refused": Kind("the policy server did not take a version's weights: it serves on with its own",
                                  has={"version": INT, "error": TEXT}),
}
"""every kind of event the code writes; a new kind is added here, with what it means, before it is written"""
FIELDS: dict[str, dict[str, str]] = {name: kind.needs for name, kind in KINDS.items()}
"""kind -> {field: JSON type} checked when a log is read; every event also has "ev" (a string) and "t" (a number)"""
OPTIONAL_NUMBERS = ("latency_s", "reaction_s", "operators", "robots", "alpha", "control_period_ms")
"""checked when present; a learner's `loss` may be null, or NaN as logs before this check wrote it"""
STRICT = os.environ.get("DAGGER_STRICT_EVENTS", "") not in ("", "0")
"""Whether EventLog.write refuses an event that is not as KINDS says (an uncatalogued kind, a field missing or of the
wrong type). tests/conftest.py sets DAGGER_STRICT_EVENTS=1 for every test. Otherwise a run warns once per kind and
field and writes the event: a report does not read those fields. Either way an event that read_events would refuse
(a field FIELDS names, missing or mistyped) is an error, never written: it would make the whole log unreadable."""
log = logging.getLogger(__name__)
_warned: set[tuple[str, str]] = set()


def first_line(err: BaseException, limit: int = 300) -> str:
    """An error as one line for an event or a message: its first line, or its type when it has no message."""
    return (str(err).splitlines() or [type(err).__name__])[0][:limit]


def _is(value: Any, kind: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {NUMBER: number and value == value and abs(value) != float("inf"),
            INT: isinstance(value, int) and not isinstance(value, bool), TEXT: isinstance(value, str),
            FLAG: isinstance(value, bool), LIST: isinstance(value, list)}[kind]


def problem(event: Any) -> str | None:
    """What is wrong with one event for a reader (FIELDS), or None."""
    if not isinstance(event, dict) or not isinstance(event.get("ev"), str):
        return "an event must be an object with an 'ev' field"
    kind = event["ev"]
    wrong = _wrong_field(event, {"t": NUMBER, **FIELDS.get(kind, {})})
    if wrong is not None:
        return wrong[1]
    for name in OPTIONAL_NUMBERS:
        if event.get(name) is not None and not _is(event[name], NUMBER):
            return f"{kind} event: field {name!r} should be a finite number"
    if kind == "segment" and not all(isinstance(v, list) and len(v) == 2 and all(_is(x, INT) for x in v)
                                     for v in event["versions"]):
        return "segment event: field 'versions' should be a list of [version, steps] pairs"
    if kind == "eval" and not (len(event["ci95"]) == 2 and all(_is(x, NUMBER) for x in event["ci95"])):
        return "eval event: field 'ci95' should be [low, high]"
    return None


def off_catalogue(event: dict) -> tuple[str, str] | None:
    """What is wrong with an event that reads well (problem() found nothing) against KINDS: (the field, or "ev" for
    an uncatalogued kind; the message), or None."""
    kind = event["ev"]
    if kind not in KINDS:
        return "ev", (f"{kind!r} is not a kind of event dagger.events.KINDS catalogues (add it there, with what it "
                      "means and its fields, before writing it)")
    spec = KINDS[kind]
    return _wrong_field(event, spec.has) or _wrong_field(event, spec.may, optional=True)


def _wrong_field(event: dict, want: dict[str, str], optional: bool = False) -> tuple[str, str] | None:
    """The first field of `want` missing (unless optional: absent or null) or of another type: (field, message)."""
    for name, type_ in want.items():
        if name not in event or (optional and event[name] is None):
            if optional:
                continue
            return name, f"{event['ev']} event: field {name!r} is missing"
        if not _is(event[name], type_):
            return name, (f"{event['ev']} event: field {name!r} should be a finite {type_}, not "
                          f"{json.dumps(event[name], default=repr)[:40]}")
    return None


RESERVE_BYTES = 256 * 1024
"""disk space an event log keeps beside it (RUN_DIR/events.reserve) for a run's last events when the disk fills"""


class EventLog:
    """Appends events; opening a log whose last line was cut off (a killed run) drops that partial line first.

    A batch that cannot be written (disk full) is never written in part. The first time, the space reserved beside the
    log is given up for it and the run's last events, and write raises StorageError (the run stops, saying why); after
    that, batches that do not fit are kept and written first with the next one, and close() raises StorageError if
    some never could be."""

    def __init__(self, path: Path):
        self.path = path
        self.dropped = cut_torn_tail(path)
        self.file = path.open("ab", buffering=0)
        self.size = self.file.seek(0, os.SEEK_END)
        self.reserve = path.with_suffix(".reserve")
        with contextlib.suppress(OSError):  # no room even for that: the first full write fails as it would
            with self.reserve.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, RESERVE_BYTES)
        self.full: StorageError | None = None  # the first write that did not fit
        self.unwritten: list[dict] = []  # events that did not fit since, written first with the next batch
        self.listeners: list[Callable[[list[dict]], None]] = []  # e.g. the live scalars: each sees every event written

    def write(self, events: Iterable[dict]) -> None:
        """Appends the events, each checked first (see STRICT): an event refused is a ValueError naming its kind and
        field, and none of the batch is written."""
        events = list(events)
        for event in events:
            self.check(event)
        batch, self.unwritten = self.unwritten + events, []
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in batch).encode()
        try:
            self.append(data)
        except OSError as err:  # disk full, file too large: the batch is not written at all, the log stays whole
            first = self.full is None
            self.full = self.full or StorageError(self.path, err)
            try:
                if not self.reserve.exists():
                    raise
                self.reserve.unlink()  # the run stops: its last events go in the space kept for them
                self.append(data)
            except OSError:
                self.unwritten = batch
            if first:
                raise self.full from err
        for listener in self.listeners:
            listener(events)

    def append(self, data: bytes) -> None:
        """Writes all of data, or (OSError) none of it."""
        view = memoryview(data)
        try:
            while view:
                view = view[self.file.write(view) or 0:]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.file.fileno(), self.size)
            raise
        self.size += len(data)

    def check(self, event: Any) -> None:
        wrong = problem(event)
        if wrong is not None:
            raise ValueError(f"{self.path}: refused to write an event: {wrong}")
        off = off_catalogue(event)
        if off is None:
            return
        if STRICT:
            raise ValueError(f"{self.path}: refused to write an event: {off[1]}")
        if (event["ev"], off[0]) not in _warned:
            _warned.add((event["ev"], off[0]))
            log.warning("%s: an event not as dagger.events.KINDS says (written all the same): %s", self.path, off[1])

    def close(self) -> None:
        """Closes the log; StorageError if some events could never be written."""
        try:
            if self.unwritten:
                self.write([])
        finally:
            self.file.close()
            self.reserve.unlink(missing_ok=True)
        if self.unwritten:
            raise StorageError(self.path, OSError(self.full.errno if self.full else 0,
                                                  f"{self.full.reason if self.full else 'write failed'}; "
                                                  f"{len(self.unwritten)} events of the run's end are not in it"))


class StorageError(OSError):
    """A file of the run could not be written (disk full, file too large, an I/O error): one line naming the file and
    the system's reason."""

    def __init__(self, path: Path, err: OSError):
        self.reason = err.strerror or str(err)
        super().__init__(err.errno, f"cannot write {path}: {self.reason}")
        self.path = path


def cut_torn_tail(path: Path) -> int:
    """Truncates a partial last line (no newline: the writer died mid-line); returns the bytes dropped. A last
    line that is a whole event but lost only its newline is kept, as read_events keeps it."""
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        try:
            json.loads(data[keep:])
        except ValueError:
            f.truncate(keep)
            return len(data) - keep
        f.write(b"\n")
        return 0


def read_events(path: Path) -> list[dict]:
    """Every event in the file; a line that is not a JSON object is an error naming its line, except a last line
    cut off without its newline (a killed writer), which is left out."""
    events: list[dict] = []
    try:
        _read(path, events)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start} of a line after event {len(events)})") from err
    return events


def _read(path: Path, events: list[dict]) -> None:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as err:
                if not line.endswith("\n"):
                    break  # torn tail
                raise ValueError(f"{path}:{number}: not a JSON event ({err.msg})") from err
            except RecursionError as err:
                raise ValueError(f"{path}:{number}: nested too deeply to be an event") from err
            wrong = problem(event)
            if wrong is not None:
                raise ValueError(f"{path}:{number}: {wrong}")
            events.append(event)
