"""Live fleet numbers for the dashboard, folded from the event stream as it is written.

    stats = LiveStats(window_s=30); stats.add(events); stats.intervention_rate()
"""

from __future__ import annotations

from collections import deque

from dagger.app.words import REASONS, reason_text

EPISODES_PER_WINDOW = 10
"""autonomous success is averaged over this many episodes, in the order they end"""

def why(request: dict) -> str:
    """Why a robot asked for help, in words, from its help_requested event."""
    reason, score, bar = request["reason"], request["score"], request["threshold"]
    if reason in ("safe", "lazy"):
        return f"{reason_text(reason)} (p {request['p_safe']:.2f})"
    if reason in REASONS:
        return reason_text(reason)
    if score > bar:
        return f"novel state {score:.4f} > {bar:.4f}"
    if reason == "thrifty":
        return f"risky: success odds {request['safety']:.3f}"
    return reason_text(reason)


class LiveStats:
    def __init__(self, window_s: float = 30.0):
        self.window_s = window_s
        self.recent: deque[tuple[float, int, bool]] = deque()  # (t_end, steps, human)
        self.human_steps = self.takeovers = self.episodes = self.successes = 0
        self.updates = 0
        self.loss = float("nan")
        self.updates_per_s = 0.0
        self.version = 0
        self._last_learner: tuple[float, int] | None = None
        self.autonomy: list[float] = []  # share of successes with no human step, per full window of episodes
        self._window: list[bool] = []  # the episodes of the window not yet full
        self.evals: list[dict] = []  # every `eval` event, oldest first
        self.asked: dict[int, str] = {}  # robot -> why it asked for help last, in words
        self.threshold: float | None = None  # the gate's threshold when a robot last asked
        self.first_t: float | None = None  # fleet clock of the first and latest events: the run's time so far
        self.last_t = 0.0

    def add(self, events: list[dict]) -> None:
        for e in events:
            kind = e["ev"]
            self.first_t = e["t"] if self.first_t is None else self.first_t
            self.last_t = max(self.last_t, e["t"])
            if kind == "segment":
                human = e["controller"] != "policy"
                self.recent.append((e["t_end"], e["steps"], human))
                self.human_steps += e["steps"] if human else 0
            elif kind == "takeover":
                self.takeovers += 1
            elif kind == "episode_end":
                self.episodes += 1
                self.successes += bool(e["success"])
                self._episode(bool(e["success"]) and e["human_steps"] == 0)
            elif kind == "learner":
                self._learner(e)
            elif kind == "weights_published":
                self.version = max(self.version, e["version"])
            elif kind == "eval":
                self.evals.append(e)
            elif kind == "help_requested":
                self.asked[e["robot"]] = why(e)
                self.threshold = e["threshold"]

    def _episode(self, autonomous_success: bool) -> None:
        self._window.append(autonomous_success)
        if len(self._window) == EPISODES_PER_WINDOW:
            self.autonomy.append(sum(self._window) / EPISODES_PER_WINDOW)
            self._window = []

    def _learner(self, e: dict) -> None:
        if self._last_learner and e["t"] > self._last_learner[0] + 0.5:
            t0, u0 = self._last_learner
            self.updates_per_s = (e["updates"] - u0) / (e["t"] - t0)
            self._last_learner = (e["t"], e["updates"])
        elif self._last_learner is None:
            self._last_learner = (e["t"], e["updates"])
        self.updates = e["updates"]
        self.loss = float("nan") if e.get("loss") is None else e["loss"]

    def fleet_seconds(self) -> float:
        """Fleet-clock time between the first and the latest event (simulated time in-process)."""
        return 0.0 if self.first_t is None else self.last_t - self.first_t

    def intervention_rate(self, now: float | None = None) -> float:
        """Human share of the steps in segments that ended within the window (before `now`, by default the
        latest event: the fleet's clock, which in-process runs behind the wall's)."""
        now = self.last_t if now is None else now
        while self.recent and self.recent[0][0] < now - self.window_s:
            self.recent.popleft()
        total = sum(n for _, n, _ in self.recent)
        return sum(n for _, n, h in self.recent if h) / total if total else 0.0
