"""The run's event log: one JSON object per line in RUN_DIR/events.jsonl.

    log = EventLog(run_dir / "events.jsonl"); log.write([{"ev": "run_start", "t": time.time()}])
    events = read_events(run_dir / "events.jsonl")   # every event checked against FIELDS

FIELDS lists, for each kind of event that metrics are computed from, the fields it must carry and
their JSON types, so a damaged or hand-edited log is an error naming its line and field, never a
crash deep in a report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

NUMBER, INT, TEXT, FLAG, LIST = "number", "integer", "string", "boolean", "list"
FIELDS: dict[str, dict[str, str]] = {
    "run_start": {},
    "run_end": {},
    "segment": {"robot": INT, "seq": INT, "controller": TEXT, "steps": INT, "t_start": NUMBER, "t_end": NUMBER,
                "versions": LIST},
    "takeover": {"gated": TEXT, "wait_s": NUMBER, "operator": INT},
    "help_requested": {"threshold": NUMBER},
    "stored": {"robot": INT, "seq": INT, "steps": INT},
    "episode_end": {"robot": INT, "success": FLAG, "human_steps": INT},
    "learner": {"updates": INT},
    "weights_published": {"version": INT},
    "segment_trained": {"key": TEXT},
    "operator_assigned": {"robot": INT, "operator": INT, "queued_s": NUMBER},
    "handback": {"robot": INT, "operator": INT},
    "eval": {"version": INT, "success_rate": NUMBER, "ci95": LIST, "episodes": INT},
    "restored": {"updates": INT},
    "fleet_step": {"successes": NUMBER, "violations": NUMBER, "hard_resets": NUMBER, "human_actions": NUMBER,
                   "idle": NUMBER, "switches": NUMBER, "reward": NUMBER},
}
"""kind -> {field: JSON type}; every event also has "ev" (a string) and "t" (a number)"""
OPTIONAL_NUMBERS = ("latency_s", "reaction_s", "operators", "robots", "alpha", "control_period_ms")
"""checked when present; a learner's `loss` may be null, or NaN as logs before this check wrote it"""


def first_line(err: BaseException, limit: int = 300) -> str:
    """An error as one line for an event or a message: its first line, or its type when it has no message."""
    return (str(err).splitlines() or [type(err).__name__])[0][:limit]


def _is(value: Any, kind: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {NUMBER: number and value == value and abs(value) != float("inf"),
            INT: isinstance(value, int) and not isinstance(value, bool), TEXT: isinstance(value, str),
            FLAG: isinstance(value, bool), LIST: isinstance(value, list)}[kind]


def problem(event: Any) -> str | None:
    """What is wrong with one event, or None."""
    if not isinstance(event, dict) or not isinstance(event.get("ev"), str):
        return "an event must be an object with an 'ev' field"
    kind = event["ev"]
    for field, want in {"t": NUMBER, **FIELDS.get(kind, {})}.items():
        if field not in event:
            return f"{kind} event: field {field!r} is missing"
        if not _is(event[field], want):
            return f"{kind} event: field {field!r} should be a finite {want}, not {json.dumps(event[field])[:40]}"
    for field in OPTIONAL_NUMBERS:
        if event.get(field) is not None and not _is(event[field], NUMBER):
            return f"{kind} event: field {field!r} should be a finite number"
    if kind == "segment" and not all(isinstance(v, list) and len(v) == 2 and all(_is(x, INT) for x in v)
                                     for v in event["versions"]):
        return "segment event: field 'versions' should be a list of [version, steps] pairs"
    if kind == "eval" and not (len(event["ci95"]) == 2 and all(_is(x, NUMBER) for x in event["ci95"])):
        return "eval event: field 'ci95' should be [low, high]"
    return None


class EventLog:
    """Appends events; opening a log whose last line was cut off (a killed run) drops that partial line first."""

    def __init__(self, path: Path):
        self.path = path
        self.dropped = cut_torn_tail(path)
        self.file = path.open("a", encoding="utf-8")
        self.listeners: list[Callable[[list[dict]], None]] = []  # e.g. the live scalars: each sees every event written

    def write(self, events: Iterable[dict]) -> None:
        events = list(events)
        for event in events:
            self.file.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.file.flush()
        for listener in self.listeners:
            listener(events)

    def close(self) -> None:
        self.file.close()


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
