"""Live fleet numbers for the dashboard, folded from the event stream as it is written.

    stats = LiveStats(window_s=30); stats.add(events); stats.intervention_rate()
"""

from __future__ import annotations

import time
from collections import deque


class LiveStats:
    def __init__(self, window_s: float = 30.0):
        self.window_s = window_s
        self.recent: deque[tuple[float, int, bool]] = deque()  # (t_end, steps, human)
        self.steps = self.human_steps = self.takeovers = self.episodes = self.successes = 0
        self.updates = 0
        self.loss = float("nan")
        self.updates_per_s = 0.0
        self.version = 0
        self._last_learner: tuple[float, int] | None = None

    def add(self, events: list[dict]) -> None:
        for e in events:
            kind = e["ev"]
            if kind == "segment":
                human = e["controller"] != "policy"
                self.recent.append((e["t_end"], e["steps"], human))
                self.steps += e["steps"]
                self.human_steps += e["steps"] if human else 0
            elif kind == "takeover":
                self.takeovers += 1
            elif kind == "episode_end":
                self.episodes += 1
                self.successes += bool(e["success"])
            elif kind == "learner":
                if self._last_learner and e["t"] > self._last_learner[0] + 0.5:
                    t0, u0 = self._last_learner
                    self.updates_per_s = (e["updates"] - u0) / (e["t"] - t0)
                    self._last_learner = (e["t"], e["updates"])
                elif self._last_learner is None:
                    self._last_learner = (e["t"], e["updates"])
                self.updates = e["updates"]
                self.loss = float("nan") if e.get("loss") is None else e["loss"]
            elif kind == "weights_published":
                self.version = max(self.version, e["version"])

    def intervention_rate(self, now: float | None = None) -> float:
        """Human share of the steps in segments that ended within the window."""
        now = time.time() if now is None else now
        while self.recent and self.recent[0][0] < now - self.window_s:
            self.recent.popleft()
        total = sum(n for _, n, _ in self.recent)
        return sum(n for _, n, h in self.recent if h) / total if total else 0.0
