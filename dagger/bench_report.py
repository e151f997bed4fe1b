"""The report of a bench directory: Markdown and HTML with the plots, recomputed from the runs' events.

    summary = write_bench_report(Path("bench/fleet"))     # report.md, report.html; returns the table
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from dagger.events import read_events
from dagger.fleet_metrics import fleet_summary

COLUMNS = ("successes", "violations", "hard_resets", "human_actions", "idle", "switches", "rohe", "rohe_ifl")


def bench_summary(bench_dir: Path) -> dict[str, dict[str, list[float]]]:
    """allocator -> metric -> [mean, std] over seeds, from every run's events.jsonl."""
    per: dict[str, list[dict[str, float]]] = {}
    for log in sorted((bench_dir / "runs").glob("*/events.jsonl")):
        events = read_events(log)
        start = next(e for e in events if e["ev"] == "run_start")
        per.setdefault(start["allocator"], []).append({**fleet_summary(events), **fleet_summary(events, "ifl")})
    return {name: {k: [float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs]))] for k in COLUMNS}
            for name, runs in per.items()}


def _rows(summary: dict[str, dict[str, list[float]]]) -> list[list[str]]:
    return [[name] + [f"{m[k][0]:.1f} ± {m[k][1]:.1f}" for k in COLUMNS] for name, m in summary.items()]


def write_bench_report(bench_dir: Path) -> dict[str, dict[str, list[float]]]:
    summary = bench_summary(bench_dir)
    if not summary:
        raise ValueError(f"{bench_dir}: no runs/*/events.jsonl to report on")
    cfg = json.loads((bench_dir / "bench.json").read_text()) if (bench_dir / "bench.json").exists() else {}
    setting = ", ".join(f"{k}={cfg[k]}" for k in ("robots", "humans", "steps", "min_steps", "hard_reset_steps", "seeds")
                        if k in cfg)
    head = ["allocator", *COLUMNS]
    md = [f"# Fleet benchmark: {bench_dir.name}", "", setting, "",
          "ROHE = 1000 · successes / (human_actions + 1); rohe_ifl = successes − 0.01 · human_actions "
          "(the IFL benchmark's plotting code). Mean ± std over seeds.", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(row) + " |" for row in _rows(summary)]
    md += ["", "![cumulative](plots/cumulative.png)", "", "![ROHE](plots/rohe.png)", ""]
    (bench_dir / "report.md").write_text("\n".join(md))
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in _rows(summary))
    (bench_dir / "report.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(bench_dir.name)}</title>"
        f"<h1>Fleet benchmark: {html.escape(bench_dir.name)}</h1><p>{html.escape(setting)}</p>"
        "<table border=1 cellpadding=4><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{cells}</table>"
        "<p><img src='plots/cumulative.png'><p><img src='plots/rohe.png'>")
    return summary
