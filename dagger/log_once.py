"""A message that repeats is logged once, then counted: a loop that hits the same state thousands of times writes
a line a minute, not thousands.

    holds = LogOnce(log)
    holds.warning("robot %s: holding", 0)     # logged
    holds.warning("robot %s: holding", 0)     # counted
    holds.warning("robot %s: moving", 0)      # "robot 0: holding (repeated 1 time in 0 s)", then this one
    holds.flush()                             # at the end: says the repeats still counted

The count is also said once `every_s` has passed since the line before (at the next repeat, or at a loop's
`flush(due=True)`), and a message that comes back after a quiet `every_s` is logged again in full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class LogOnce:
    """One stream of messages (say, one robot's holds): a message with the key of the one before is counted, not
    logged. The key is the formatted text unless the caller gives one (e.g. a refusal's reason, whoever the peer)."""

    def __init__(self, logger: logging.Logger, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.logger, self.every_s, self.clock = logger, every_s, clock
        self.lock = threading.Lock()
        self.key: Hashable = None
        self.level = logging.NOTSET
        self.text = ""  # the newest message under this key, formatted
        self.count = 0  # repeats not said yet
        self.said = 0.0  # when the last line of this stream was written

    def log(self, level: int, msg: str, *args: Any, key: Hashable = None, exc_info: Any = None) -> bool:
        """Logs the message, or counts it when it repeats the one before; True when logged."""
        text = msg % args if args else msg
        key = text if key is None else key
        with self.lock:
            now = self.clock()
            quiet = now - self.said >= self.every_s
            if key == self.key and not (quiet and not self.count):
                self.text, self.level = text, level
                self.count += 1
                if quiet:
                    self._say(now)
                return False
            self._say(now)
            self.key, self.level, self.text, self.said = key, level, text, now
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, msg: str, *args: Any, key: Hashable = None) -> bool:
        return self.log(logging.WARNING, msg, *args, key=key)

    def flush(self, due: bool = False) -> None:
        """Says the repeats counted so far (with due=True: only once every_s has passed since the line before)."""
        if not self.count:  # read without the lock: a control loop calls this each period
            return
        with self.lock:
            now = self.clock()
            if not due or now - self.said >= self.every_s:
                self._say(now)

    def _say(self, now: float) -> None:
        if self.count:
            self.logger.log(self.level, "%s (repeated %d %s in %.0f s)", self.text, self.count,
                            "time" if self.count == 1 else "times", now - self.said)
            self.count, self.said = 0, now
