"""Whether the run can keep an operator's correction: the buffer's own word on its storage, and each robot group's
shipper (a human segment refused, or not acknowledged in time). While it cannot, every robot holds and nobody is
asked to help; a run whose storage stays away for `storage_wait_s` stops, saying why.

    watch = StorageWatch(wait_s=60)
    changed = watch.update(now, buffer_status.get("storage", {}), robot_statuses)   # "" when storage came back
    if watch.expired(now): stop(watch.why)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class StorageWatch:
    def __init__(self, wait_s: float):
        self.wait_s = wait_s
        self.why = ""  # why corrections cannot be stored now ("": they can)
        self.since = 0.0  # since when (the supervisor's clock)

    def update(self, now: float, buffer: dict[str, Any], robots: Iterable[dict[str, Any]]) -> str | None:
        """The fleet-wide reason when it changed (a failure's text, or "" when storage is back); None when not."""
        why = "" if buffer.get("ok", True) else f"the buffer cannot store: {buffer.get('error') or 'unknown error'}"
        why = why or next((s["storage"] for s in robots if s.get("storage")), "")
        if bool(why) == bool(self.why):
            return None
        self.why, self.since = why, now
        return why

    def expired(self, now: float) -> bool:
        """Storage has been away for wait_s: the run stops."""
        return bool(self.why) and now - self.since >= self.wait_s

    def status(self, now: float) -> dict[str, Any]:
        """For the dashboard and console: whether corrections are kept, and if not why, for how long, and how long
        until the run stops."""
        if not self.why:
            return {"ok": True}
        away = now - self.since
        return {"ok": False, "error": self.why, "for_s": away, "stops_in_s": max(0.0, self.wait_s - away)}
