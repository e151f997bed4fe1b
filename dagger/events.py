"""The run's event log: one JSON object per line in RUN_DIR/events.jsonl.

    log = EventLog(run_dir / "events.jsonl"); log.write([{"ev": "run_start", "t": time.time()}])
    events = read_events(run_dir / "events.jsonl")
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


class EventLog:
    def __init__(self, path: Path):
        self.path = path
        self.file = path.open("a", encoding="utf-8")

    def write(self, events: Iterable[dict]) -> None:
        for event in events:
            self.file.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_events(path: Path) -> list[dict]:
    """Every event in the file; a line that is not a JSON object is an error naming its line."""
    events = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON event ({err.msg})") from err
            if not isinstance(event, dict) or "ev" not in event:
                raise ValueError(f"{path}:{number}: an event must be an object with an 'ev' field")
            events.append(event)
    return events
