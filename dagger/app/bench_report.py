"""The report of a bench directory: Markdown and HTML with the plots, recomputed from the runs' events.

    summary = write_bench_report(Path("bench/fleet"))     # report.md, report.html; returns the table
    write_bench_scalars(Path("bench/fleet"), Path("tb"))  # TensorBoard scalars, one folder per run
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dagger.app.plots import plot_intervention, write_scalars
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


def bench_summary(runs: dict[str, list[dict]]) -> dict[str, dict[str, list[float]]]:
    """allocator -> metric -> [mean, std] over seeds."""
    return {name: mean_std([{**fleet_summary(events), **fleet_summary(events, "ifl")} for events in seeds], COLUMNS)
            for name, seeds in _by_allocator(runs).items()}


def intervention_by_window(events: list[dict], windows: int = WINDOWS) -> list[float]:
    """Human actions / robots in each window of the run's fleet steps."""
    return [m / _start(events)["robots"] for m in window_means(_human_actions(events), windows)]


def plot_bench_intervention(path: Path, runs: dict[str, list[dict]]) -> None:
    """Intervention rate per window of fleet steps, one line per allocator (mean over seeds)."""
    rates = {}
    for name, seeds in _by_allocator(runs).items():
        steps = window_edges(len(_human_actions(seeds[0])), WINDOWS)[1:]
        rates[name] = (steps, list(np.mean([intervention_by_window(events) for events in seeds], axis=0)))
    plot_intervention(path, rates, title="human actions / robots per window, mean over seeds")


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
    runs = load_runs(bench_dir)
    if not runs:
        raise ValueError(f"{bench_dir}: no runs/*/events.jsonl to report on")
    summary = bench_summary(runs)
    plot_bench_intervention(bench_dir / "plots" / "intervention.png", runs)
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
