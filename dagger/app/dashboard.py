"""The operator's live console: a rich panel that fits the terminal, plain status lines otherwise.

    board = Dashboard(cfg, stats); board.start(); board.update(status); board.stop()

Whatever the fleet's size the panel keeps to the terminal: budget and ETA, the gate's rule, one row per robot
(when they do not fit: counts per state, then the robots waiting for help or with an operator), autonomous and
eval success over time, and the fleet, learner and buffer lines.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dagger.allocators import READS_RISK
from dagger.app.live import EPISODES_PER_WINDOW, LiveStats
from dagger.app.words import storage_text, with_operator
from dagger.config import RunConfig

STATE_STYLE = {"waiting": "bold yellow", "operator": "bold cyan", "autonomous": "green", "resetting": "dim",
               "starting": "dim"}
BARS = "▁▂▃▄▅▆▇█"
RULES = {"never": "never asks", "random": "asks at random, {rate:.0%} of steps",
         "human": "operators step in when they see fit", "ensemble": "asks when uncertainty > {bar:.4f}",
         "auto": "asks when uncertainty > {bar:.4f} (tuned for {alpha:.0%} help)",
         "ensembledagger": "asks when uncertainty > {bar:.4f} or it strays from the expert",
         "thrifty": "asks when uncertainty > {bar:.4f} or success odds < {risk}",
         "safe": "asks when its classifier expects a wrong action",
         "lazy": "asks when its classifier expects a wrong action"}
PACE_S = 30.0  # the ETA assumes the pace of this many seconds past (start-up is slow, a crowded queue slows it)
LINES = 8  # besides robot rows: header, gate, table head, autonomy, eval, fleet, learner, buffer


def state_label(robot: dict, waited_s: float | None, assigned: int | None) -> str:
    """'waiting 2.5s' (in the queue), 'offered to operator 1' (assigned, not yet taken over), 'operator 1 in
    control', or the state."""
    state = robot["state"]
    if robot.get("held"):  # its policy server or robot agent does not answer: it holds, whatever its state
        return f"held: {robot['held']} late"
    if robot.get("storage_hold"):  # a correction could not be stored: it holds, whatever its state
        return "held: storage failed"
    if state == "operator":
        return with_operator(robot, robot["operator"])
    if state == "waiting" and waited_s is not None:
        return f"waiting {waited_s:.1f}s" if waited_s < 10 else f"waiting {waited_s:.0f}s"
    if state == "waiting" and assigned is not None:
        return with_operator({}, assigned)
    return str(state)


def sparkline(values: list[float], width: int) -> str:
    """One bar per value in [0, 1], the latest `width` values."""
    return "".join(BARS[round(v * (len(BARS) - 1))] for v in values[len(values) - width:])


def line(label: str, text: str) -> Text:
    """One line of the panel: a bold label, then text cut at the terminal's edge rather than wrapped."""
    return Text.assemble((label, "bold"), text, no_wrap=True, overflow="ellipsis")


def clock_text(seconds: float) -> str:
    """0:30, 12:05, 1:02:03."""
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


class Dashboard:
    def __init__(self, cfg: RunConfig, stats: LiveStats, console: Console | None = None,
                 plain_every_s: float = 5.0, clock: Callable[[], float] = time.time):
        self.cfg, self.stats, self.clock = cfg, stats, clock
        self.console = console or Console()
        self.live: Live | None = None
        self.plain_every_s = plain_every_s
        self.last_plain = self.last_drawn = 0.0
        self.started = clock()
        self.pace: deque[tuple[float, float]] = deque()  # (wall time, budget done) once a second, the last PACE_S
        self.status: dict[str, Any] | None = None

    def start(self) -> None:
        if self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            if self.status is not None:
                self.live.update(self.render(self.status))
            self.live.stop()

    def update(self, status: dict[str, Any]) -> None:
        now, self.status = self.clock(), status
        if not self.pace or now - self.pace[-1][0] >= 1.0:
            self.pace.append((now, self._progress(status)[0]))
            while now - self.pace[0][0] > PACE_S:
                self.pace.popleft()
        if self.live is not None:
            if now - self.last_drawn >= 0.25:  # in-process runs send a status every tick; draw at the refresh rate
                self.last_drawn = now
                self.live.update(self.render(status))
        elif now - self.last_plain >= self.plain_every_s:
            self.last_plain = now
            print(self.plain(status), file=sys.stdout, flush=True)

    def _progress(self, status: dict[str, Any]) -> tuple[float, float, str]:
        """(done, total, in words) of the budget: fleet steps, or fleet-clock seconds when cfg.minutes is set."""
        if self.cfg.minutes > 0:
            done, total = self.stats.fleet_seconds(), self.cfg.minutes * 60
            return done, total, f"{clock_text(done)}/{clock_text(total)}"
        steps = status.get("steps", sum(r["steps"] for r in status["robots"].values()))  # replaced robots' too
        return steps, self.cfg.steps, f"{steps:,}/{self.cfg.steps:,} steps"

    def _budget(self, status: dict[str, Any]) -> str:
        """The budget spent and the wall time left at the pace of the last PACE_S seconds."""
        done, total, words = self._progress(status)
        now = self.clock()
        t0, done0 = self.pace[0] if self.pace else (now, done)
        eta = clock_text(max(0.0, total - done) * (now - t0) / (done - done0)) if done > done0 and now > t0 else "…"
        return f"{words} ({min(1.0, done / total):.0%}) · ETA {eta}"

    def _staleness(self, status: dict[str, Any]) -> int:
        versions = [r["version"] for r in status["robots"].values()]
        return max(0, self.stats.version - min(versions)) if versions else 0

    def _gate(self, status: dict[str, Any]) -> str:
        """The gate's rule with its bars now: as the supervisor last tuned them, else the threshold the latest help
        request carried, else the config's (a tuned risk bar has no stand-in: the prior would mislead)."""
        g, tuned = self.cfg.gate, status.get("thresholds", {})
        bar = tuned.get("threshold", g.threshold if self.stats.threshold is None else self.stats.threshold)
        risk = f"{tuned['risk_threshold']:.3f}" if "risk_threshold" in tuned else "a tuned bar"
        return RULES.get(g.name, "threshold {bar:.4f}").format(bar=bar, risk=risk, rate=g.rate, alpha=g.alpha)

    def _robots(self, status: dict[str, Any], room: int) -> tuple[list[Text], Table]:
        """The robot table within `room` rows; when the fleet is bigger, a line of counts per state first and
        the rows of the robots with an operator, then those waiting longest, then the lowest ids."""
        robots, waited = status["robots"], {q["robot"]: q["waiting_s"] for q in status.get("queue", [])}
        assigned = {rid: op for op, served in status.get("serving", {}).items() for rid in served}
        shown, counts = sorted(robots), []
        if len(robots) > room:
            order = {"operator": 0, "waiting": 1}
            shown = sorted(sorted(robots, key=lambda i: (order.get(robots[i]["state"], 2), -waited.get(i, 0), i))
                           [:max(0, room - 1)])
            per_state = {s: sum(r["state"] == s for r in robots.values()) for s in STATE_STYLE}
            counts = [line(f"{len(shown)}/{len(robots)} robots shown",
                           "".join(f" · {n} {'with an operator' if s == 'operator' else s}"
                                   for s, n in per_state.items() if n))]
        table = Table(box=None, pad_edge=False, header_style="bold")
        risk = self.cfg.allocator in READS_RISK  # the hazard critic is trained (and worth a column) only then
        columns = (("#", "right", 2), ("state", "left", 21), ("asked because", "left", 0), ("spread", "right", 6),
                   *([("risk", "right", 4)] if risk else []), ("weights", "right", 7), ("solved", "right", 6))
        reason = self.console.width - sum(w for _, _, w in columns) - 2 * (len(columns) - 1)  # gives way when short
        for name, justify, width in columns:
            table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis",  # type: ignore[arg-type]
                             max_width=width or max(reason, 13))
        for rid in shown:
            r = robots[rid]
            held = r.get("held", "")
            label = Text(state_label(r, waited.get(rid), assigned.get(rid)),
                         style="bold red" if held else STATE_STYLE[r["state"]])
            cause = r.get("held_why", "").rpartition(": ")[2]  # the error's last part (its address is long)
            asked = cause or (self.stats.asked.get(rid, "") if r["state"] in ("waiting", "operator") else "")
            table.add_row(str(rid), label, asked, f"{r['uncertainty']:.4f}",
                          *([f"{r.get('risk', 0.0):.2f}"] if risk else []), f"v{r['version']}",
                          f"{r['successes']}/{r['episode']}")
        return counts, table

    @staticmethod
    def _camera(status: dict[str, Any]) -> list[Text]:
        """On an image task, a line with what the policy's camera costs the robots per step (their mean)."""
        costs = [r["camera_ms"] for r in status["robots"].values() if r.get("camera_ms")]
        return [line("camera   ", f"{sum(costs) / len(costs):.1f} ms per step to render the policy's image")] \
            if costs else []

    def _success(self) -> tuple[str, str]:
        s, evals = self.stats, self.stats.evals
        if s.autonomy:
            autonomy = (f"{sparkline(s.autonomy, 30)} {s.autonomy[-1]:.0%} unaided"
                        f" in the last {EPISODES_PER_WINDOW} episodes")
        else:
            autonomy = f"first bar after {EPISODES_PER_WINDOW} episodes ({s.episodes} so far)"
        if evals:
            e = evals[-1]
            low, high = e["ci95"]
            scored = (f"{sparkline([x['success_rate'] for x in evals], 16)} v{e['version']}: "
                      f"{e['success_rate']:.0%} success (95% CI {low:.0%}–{high:.0%}, {e['episodes']} episodes)")
        else:
            every = self.cfg.eval.every_versions
            scored = f"every {every} weight versions, none yet" if every else "off (eval.every_versions=0)"
        return autonomy, scored

    def render(self, status: dict[str, Any]) -> Group:
        s, buffer = self.stats, status.get("buffer", {})
        camera = self._camera(status)
        counts, table = self._robots(status, self.console.height - LINES - len(camera))
        autonomy, scored = self._success()
        top = [line("dagger ", f"{self.cfg.task.name} · {len(status['robots'])} robots · {self._budget(status)}"),
               line("gate     ", f"{self.cfg.gate.name} {self._gate(status)}")]
        bottom = [line("autonomy ", autonomy), line("eval     ", scored),
                  line("fleet    ", f"intervention rate (last {s.window_s:.0f}s) {s.intervention_rate():.2f}"
                                    f" · takeovers {s.takeovers} · human steps {s.human_steps}"),
                  line("learner  ", f"{s.updates} updates ({s.updates_per_s:.0f}/s) · loss {s.loss:.4f}"
                                    f" · weights v{s.version} · staleness {self._staleness(status)}"),
                  line("buffer   ", f"{buffer.get('steps', 0)} steps · {buffer.get('labelled_steps', 0)} labelled"
                                    f" · episodes {s.episodes} · successes {s.successes}")]
        storage = storage_text(status.get("storage", {}))
        alarm = [Text(f"STORAGE  {storage}", style="bold red")] if storage else []
        return Group(*top, *alarm, *counts, table, *bottom, *camera)

    def plain(self, status: dict[str, Any]) -> str:
        s = self.stats
        states = " ".join(f"{rid}:{'held' if r.get('held') or r.get('storage_hold') else r['state'][:4]}"
                          for rid, r in sorted(status["robots"].items()))
        held = next((f"{r['held']} late: {r['held_why']}" for r in status["robots"].values() if r.get("held")), "")
        return (f"[{self.clock() - self.started:5.0f}s] {self._budget(status)} | ir {s.intervention_rate():.2f} "
                f"takeovers {s.takeovers} human {s.human_steps} | learner {s.updates} ({s.updates_per_s:.0f}/s) "
                f"loss {s.loss:.4f} v{s.version} | robots {states}" + (f" | held: {held}" if held else "")
                + (f" | {storage}" if (storage := storage_text(status.get("storage", {}))) else ""))
