"""The end-of-run summary table (the same numbers as `dagger report --json`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def _fmt(value: object) -> str:
    if isinstance(value, list):
        return "  ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "—" if value is None else str(value)


def print_summary(summary: dict, run_dir: Path, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="run summary (recomputed from events.jsonl)", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, _fmt(value))
    console.print(table)
    console.print(f"run dir: {run_dir}")
