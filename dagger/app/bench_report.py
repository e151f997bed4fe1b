"""The report of a bench directory: Markdown and HTML with the plots, recomputed from the runs' events.

    summary = write_bench_report(Path("bench/fleet"))     # report.md, report.html; returns the table
    print_means(Path("bench/fleet"), summary)            # the same table in the terminal (rich)
    write_bench_scalars(Path("bench/fleet"), Path("tb"))  # TensorBoard scalars, one folder per run
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dagger.app.plots import plot_cumulative, plot_intervention, plot_rohe, write_scalars
from dagger.app.report import write_pages
from dagger.events import read_events
from dagger.fleet_metrics import cumulative, fleet_summary
from dagger.metrics import WINDOWS, window_edges, window_means

COLUMNS = ("successes", "violations", "hard_resets", "human_actions", "idle", "switches", "rohe", "rohe_ifl")
TENSORBOARD_POINTS = 1000
"""at most this many points per scalar and run (means over windows of fleet steps)"""


def load_runs(bench_dir: Path) -> dict[str, list[dict]]:
    """Run name (runs/<name>/) -> its events, in name order."""
    return {log.parent.name: read_events(log) for log in sorted((bench_dir / "runs").glob("*/events.jsonl"))}


def _start(events: list[dict]) -> dict:
    return next(e for e in events if e["ev"] == "run_start")


def _human_actions(events: list[dict]) -> list[float]:
    return [e["human_actions"] for e in events if e["ev"] == "fleet_step"]


def _by_allocator(runs: dict[str, list[dict]]) -> dict[str, list[list[dict]]]:
    """allocator -> its runs' events, allocators in the bench config's order."""
    per: dict[str, list[list[dict]]] = {}
    for events in runs.values():
        per.setdefault(_start(events)["allocator"], []).append(events)
    order = [name for events in runs.values() for name in _start(events).get("allocators", [])]
    return dict(sorted(per.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def mean_std(rows: list[dict], keys: tuple[str, ...]) -> dict[str, list[float]]:
    """metric -> [mean, std] over rows (one row per seed)."""
    return {k: [float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows]))] for k in keys}


def seed_rows(runs: dict[str, list[dict]]) -> dict[str, list[dict[str, float]]]:
    """allocator -> one row of fleet metrics per seed."""
    return {name: [{**fleet_summary(events), **fleet_summary(events, "ifl")} for events in seeds]
            for name, seeds in _by_allocator(runs).items()}


def intervention_by_window(events: list[dict], windows: int = WINDOWS) -> list[float]:
    """Human actions / robots in each window of the run's fleet steps."""
    return [m / _start(events)["robots"] for m in window_means(_human_actions(events), windows)]


def bench_title(runs: dict[str, list[dict]]) -> str:
    """What the bench's figures are titled: its fleet, from the first run's run_start."""
    start = _start(next(iter(runs.values())))
    return f"fleet benchmark · {start['robots']} robots, {start['humans']} operators, {start['steps']} steps"


def plot_bench(plots: Path, runs: dict[str, list[dict]], rows: dict[str, list[dict[str, float]]]) -> None:
    """cumulative.png, intervention.png and rohe.png (from `rows`, seed_rows(runs)): per allocator, the mean over
    its seeds and their spread."""
    per, title = _by_allocator(runs), bench_title(runs)
    panels = {f"cumulative {key.replace('_', ' ')}": {name: [cumulative(e, key) for e in seeds]
                                                      for name, seeds in per.items()}
              for key in ("successes", "human_actions")}
    plot_cumulative(plots / "cumulative.png", panels, title=title)
    rates = {name: (window_edges(len(_human_actions(seeds[0])), WINDOWS)[1:],
                    [intervention_by_window(events) for events in seeds]) for name, seeds in per.items()}
    plot_intervention(plots / "intervention.png", rates, title=title, ylabel="human actions / robots per window")
    plot_rohe(plots / "rohe.png", {name: [row["rohe"] for row in seeds] for name, seeds in rows.items()}, title=title)


def bench_scalars(events: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """One run's cumulative successes and human actions per fleet step, subsampled to TENSORBOARD_POINTS."""
    humans = _human_actions(events)
    windows = min(len(humans), TENSORBOARD_POINTS)
    ends = window_edges(len(humans), windows)[1:]
    successes = cumulative(events, "successes")
    return {"fleet/cumulative_successes": [(end, float(successes[end - 1])) for end in ends],
            "fleet/human_actions": list(zip(ends, window_means(humans, windows), strict=True))}


def write_bench_scalars(bench_dir: Path, log_dir: Path) -> None:
    """TensorBoard scalars of every run, in log_dir/<run name>/ (TensorBoard overlays the runs)."""
    for name, events in load_runs(bench_dir).items():
        write_scalars(log_dir / name, bench_scalars(events))


def write_bench_report(bench_dir: Path) -> dict[str, dict[str, list[float]]]:
    """report.md, report.html and plots/ from the runs' events; returns allocator -> metric -> [mean, std]."""
    runs = load_runs(bench_dir)
    if not runs:
        raise ValueError(f"{bench_dir}: no runs/*/events.jsonl to report on")
    per_seed = seed_rows(runs)
    summary = {name: mean_std(rows, COLUMNS) for name, rows in per_seed.items()}
    plot_bench(bench_dir / "plots", runs, per_seed)
    cfg = json.loads((bench_dir / "bench.json").read_text()) if (bench_dir / "bench.json").exists() else {}
    setting = ", ".join(f"{k}={cfg[k]}" for k in ("robots", "humans", "steps", "min_steps", "hard_reset_steps", "seeds")
                        if k in cfg)
    rohe = ("ROHE = 1000 · successes / (human_actions + 1); rohe_ifl = successes − 0.01 · human_actions "
            "(the IFL benchmark's plotting code). Mean ± std over seeds.")
    rows = [[name] + [f"{m[k][0]:.1f} ± {m[k][1]:.1f}" for k in COLUMNS] for name, m in summary.items()]
    write_pages(bench_dir, f"Fleet benchmark: {bench_dir.name}", [setting, rohe], ["allocator", *COLUMNS], rows,
                {"cumulative": "plots/cumulative.png", "ROHE": "plots/rohe.png",
                 "intervention rate over time": "plots/intervention.png"})
    return summary


def _mean_std_cell(value: list[float] | None) -> str:
    """[mean, std] as "mean ± std": whole numbers from 100 up, else 3 (the mean) and 2 (the std) significant digits."""
    if value is None:
        return ""
    cells = (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.{digits}g}" for x, digits in zip(value, (3, 2), strict=True))
    return " ± ".join(cells)


def print_means(bench_dir: Path, means: dict[str, dict[str, list[float]]], console: Console | None = None) -> None:
    """A bench's method -> metric -> [mean, std] (write_bench_report's or write_gate_report's) as a rich table, a
    metric per row and a method per column, then where the report and plots are."""
    console = console or Console()
    table = Table(title=f"{bench_dir.name}: mean ± std over seeds", title_justify="left")
    table.add_column("metric")
    for method in means:
        table.add_column(method, justify="right")
    for metric in dict.fromkeys(k for m in means.values() for k in m):
        table.add_row(metric.replace("_", " "), *(_mean_std_cell(m.get(metric)) for m in means.values()))
    console.print(table)
    console.print(f"report: {bench_dir / 'report.md'}  plots: {bench_dir / 'plots'}")
