"""The operator's live console: a rich table on a terminal, plain status lines otherwise.

    board = Dashboard(cfg, stats); board.start(); board.update(status); board.stop()
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dagger.app.live import LiveStats
from dagger.config import RunConfig

STATE_STYLE = {"autonomous": "green", "waiting": "bold yellow", "operator": "bold cyan",
               "resetting": "dim", "starting": "dim"}
STATE_LABEL = {"autonomous": "autonomous", "waiting": "waiting for help", "operator": "operator {op}",
               "resetting": "resetting", "starting": "starting"}


class Dashboard:
    def __init__(self, cfg: RunConfig, stats: LiveStats, console: Console | None = None,
                 plain_every_s: float = 5.0):
        self.cfg, self.stats = cfg, stats
        self.console = console or Console()
        self.live: Live | None = None
        self.plain_every_s = plain_every_s
        self.last_plain = 0.0
        self.started = time.time()

    def start(self) -> None:
        if self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()

    def update(self, status: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.update(self.render(status))
        elif time.time() - self.last_plain >= self.plain_every_s:
            self.last_plain = time.time()
            print(self.plain(status), file=sys.stdout, flush=True)

    def _budget(self) -> str:
        if self.cfg.minutes > 0:
            return f"{time.time() - self.started:.0f}/{self.cfg.minutes * 60:.0f} s"
        return f"{self.stats.steps}/{self.cfg.steps} steps"

    def _staleness(self, status: dict[str, Any]) -> int:
        versions = [r["version"] for r in status["robots"].values()]
        return max(0, self.stats.version - min(versions)) if versions else 0

    def render(self, status: dict[str, Any]) -> Group:
        s = self.stats
        table = Table(title=f"dagger · {self.cfg.task} · gate {self.cfg.gate.name} · {self._budget()}",
                      expand=False, title_justify="left")
        for name, justify in (("robot", "right"), ("state", "left"), ("uncert.", "right"),
                              ("weights", "right"), ("episode", "right"), ("success", "right")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for rid, r in sorted(status["robots"].items()):
            label = STATE_LABEL[r["state"]].format(op=r["operator"])
            table.add_row(str(rid), Text(label, style=STATE_STYLE[r["state"]]), f"{r['uncertainty']:.4f}",
                          f"v{r['version']}", str(r["episode"]), str(r["successes"]))
        buffer = status.get("buffer", {})
        lines = Text.assemble(
            ("fleet   ", "bold"), f"intervention rate (last {s.window_s:.0f}s) {s.intervention_rate():.2f}",
            f" · takeovers {s.takeovers} · human steps {s.human_steps}\n",
            ("learner ", "bold"), f"{s.updates} updates ({s.updates_per_s:.0f}/s) · loss {s.loss:.4f}",
            f" · weights v{s.version} · staleness {self._staleness(status)}\n",
            ("buffer  ", "bold"), f"{buffer.get('steps', 0)} steps · {buffer.get('labelled_steps', 0)} labelled",
            f" · episodes {s.episodes} · successes {s.successes}",
        )
        return Group(table, lines)

    def plain(self, status: dict[str, Any]) -> str:
        s = self.stats
        states = " ".join(f"{rid}:{r['state'][:4]}" for rid, r in sorted(status["robots"].items()))
        return (f"[{time.time() - self.started:5.0f}s] {self._budget()} | ir {s.intervention_rate():.2f} "
                f"takeovers {s.takeovers} human {s.human_steps} | learner {s.updates} ({s.updates_per_s:.0f}/s) "
                f"loss {s.loss:.4f} v{s.version} | robots {states}")
