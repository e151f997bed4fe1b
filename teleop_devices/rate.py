"""How often a device reports something new.

    fresh = FreshReadings(); fresh.add(reading_time); fresh.rate_hz()
"""

from __future__ import annotations

import time
from collections import deque


class FreshReadings:
    """Readings per second with new input behind them, over the last window_s: a device's report rate.

    A pad's state and a keyboard's keys are new each time SDL's events are read (not each time a key
    moves), so a held key reports as often as the window is pumped, and a stalled window reads lower.
    """

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self.times: deque[float] = deque()

    def add(self, t: float) -> None:
        """t: when the reading's input was current; a reading no newer than the last is not a new report."""
        if not self.times or t > self.times[-1]:
            self.times.append(t)

    def rate_hz(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        while self.times and self.times[0] < now - self.window_s:
            self.times.popleft()
        if len(self.times) < 2 or now <= self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (now - self.times[0])  # up to now: reads lower as soon as reports stop
