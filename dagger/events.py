"""The run's event log: one JSON object per line in RUN_DIR/events.jsonl.

    log = EventLog(run_dir / "events.jsonl"); log.write([{"ev": "run_start", "t": time.time()}])
    events = read_events(run_dir / "events.jsonl")
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


class EventLog:
    """Appends events; opening a log whose last line was cut off (a killed run) drops that partial line first."""

    def __init__(self, path: Path):
        self.path = path
        self.dropped = cut_torn_tail(path)
        self.file = path.open("a", encoding="utf-8")

    def write(self, events: Iterable[dict]) -> None:
        for event in events:
            self.file.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.file.flush()

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
    events = []
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
            if not isinstance(event, dict) or "ev" not in event:
                raise ValueError(f"{path}:{number}: an event must be an object with an 'ev' field")
            events.append(event)
    return events
