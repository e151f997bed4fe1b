"""`dagger bench` over gates: the live loop in one process (no Ray) per run, gates × seeds on one task.

A bench config with a `gates:` list is a gate bench (configs/bench/gates.yaml); `run:` holds the
RunConfig settings every run shares, as key=value strings.

    rows = run_gate_bench(GateBenchConfig(gates=["ensemble", "lazy"]), Path("bench/gates"))
    means = write_gate_report(Path("bench/gates"))     # report.md/html, plots/ — from the runs' events alone
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagger.app.bench import run_grid
from dagger.app.bench_report import mean_std
from dagger.app.plots import plot_alpha_sweep, plot_intervention, plot_rohe
from dagger.app.report import write_pages
from dagger.config import RunConfig, load_config
from dagger.events import read_events
from dagger.fleet_metrics import rohe
from dagger.metrics import ALPHA_GATES, WINDOWS, achieved_rate, human_share_by_window, summarize, window_edges

COLUMNS = ("steps", "human_steps", "intervention_rate", "takeovers", "mean_steps_between_interventions",
           "episodes", "successes", "autonomous_successes", "rohe", "achieved_rate")


@dataclass
class GateBenchConfig:
    gates: list[str] = field(default_factory=lambda: ["ensemble", "auto", "thrifty", "safe", "lazy"])
    """gates to compare (dagger.gates.GATES)"""
    seeds: int = 3
    """seeds per gate"""
    run: list[str] = field(default_factory=lambda: ["task=point", "robots=4", "steps=4000", "demos=2",
                                                    "learner.batch_size=64"])
    """RunConfig settings shared by every run, key=value"""
    workers: int = 2
    """runs in parallel (processes)"""


def run_config(cfg: GateBenchConfig, gate: str, seed: int) -> RunConfig:
    return load_config(None, [*cfg.run, f"gate.name={gate}", f"seed={seed}"])


def gate_row(gate: str, seed: int, events: list[dict]) -> dict[str, Any]:
    """One run's metrics, from its events."""
    s = summarize(events)
    row = {k: s.get(k) for k in COLUMNS}
    row["rohe"] = rohe(s["successes"], s["human_steps"])
    row["achieved_rate"] = round(achieved_rate(events), 4) if gate in ALPHA_GATES else None
    return {"gate": gate, "seed": seed, **row}


def run_gate(cfg: GateBenchConfig, gate: str, seed: int, run_dir: Path) -> dict[str, Any]:
    from workers.launch import run_loop

    began = time.time()
    run_dir.mkdir(parents=True)
    run_loop(run_config(cfg, gate, seed), run_dir)
    return {**gate_row(gate, seed, read_events(run_dir / "events.jsonl")), "wall_s": round(time.time() - began, 1)}


def run_gate_bench(cfg: GateBenchConfig, out: Path, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Every gate × seed; writes bench.json, results.csv and runs/<gate>-<seed>/ (then see write_gate_report)."""
    return run_grid(cfg, out, cfg.gates, "gate", run_gate, progress)


def gate_runs(bench_dir: Path) -> dict[str, list[list[dict]]]:
    """gate -> its runs' events, gates in the config's order."""
    cfg = json.loads((bench_dir / "bench.json").read_text())
    per: dict[str, list[list[dict]]] = {gate: [] for gate in cfg["gates"]}
    for gate in cfg["gates"]:
        for log in sorted((bench_dir / "runs").glob(f"{gate}-*/events.jsonl")):
            per[gate].append(read_events(log))
    return {gate: runs for gate, runs in per.items() if runs}


def write_gate_report(bench_dir: Path) -> dict[str, dict[str, list[float]]]:
    """gate -> metric -> [mean, std] over seeds; report.md/html with the plots."""
    runs = gate_runs(bench_dir)
    if not runs:
        raise ValueError(f"{bench_dir}: no runs/*/events.jsonl to report on")
    rows = {gate: [gate_row(gate, i, events) for i, events in enumerate(seeds)] for gate, seeds in runs.items()}
    summary = {gate: mean_std(rs, tuple(k for k in COLUMNS if rs[0][k] is not None)) for gate, rs in rows.items()}
    plots = bench_dir / "plots"
    rates = {}
    for gate, seeds in runs.items():
        segments = [[e for e in events if e["ev"] == "segment"] for events in seeds]
        total = sum(s["steps"] for s in segments[0])
        rates[gate] = (window_edges(total, WINDOWS)[1:], [human_share_by_window(s, WINDOWS) for s in segments])
    plot_intervention(plots / "intervention.png", rates, title="human share of steps per window, by gate")
    plot_rohe(plots / "rohe.png", {gate: [float(r["rohe"]) for r in rs] for gate, rs in rows.items()})
    figures = {"intervention rate over time": "plots/intervention.png", "ROHE": "plots/rohe.png"}
    alphas = {gate: float(runs[gate][0][0]["alpha"]) for gate in runs if gate in ALPHA_GATES}
    if alphas:
        plot_alpha_sweep(plots / "alpha.png", {gate: [(alpha, summary[gate]["achieved_rate"][0])]
                                               for gate, alpha in alphas.items()}, title="achieved vs target α")
        figures["achieved vs target α"] = "plots/alpha.png"
    cfg = json.loads((bench_dir / "bench.json").read_text())
    intro = [f"seeds={cfg['seeds']}; every run: {' '.join(cfg['run'])}",
             "ROHE = 1000 · successes / (human_steps + 1); achieved_rate = help requests / (policy steps + "
             "requests) for gates with a target α. Mean ± std over seeds."]
    heads = sorted({k for m in summary.values() for k in m}, key=COLUMNS.index)
    table = [[gate] + [f"{_fmt(m[k][0])} ± {_fmt(m[k][1])}" if k in m else "" for k in heads]
             for gate, m in summary.items()]
    write_pages(bench_dir, f"Gate benchmark: {bench_dir.name}", intro, ["gate", *heads], table, figures)
    return summary


def _fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"
