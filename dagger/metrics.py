"""Metrics recomputed from a run's events.jsonl alone.

    summary = summarize(read_events(run_dir / "events.jsonl"))
    summary["intervention_rate_by_quarter"]      # four numbers, quarters of the fleet's steps
    series = run_series(events)                  # per window of the fleet's steps, for plots and TensorBoard
"""

from __future__ import annotations

import bisect
import html
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from dagger.plots import plot_alpha, plot_intervention

QUARTERS = 4
WINDOWS = 20
"""windows of the fleet's steps in the report's plots and TensorBoard scalars"""
ALPHA_GATES = ("auto", "thrifty")
"""gates that hold a target intervention rate α (gate.alpha)"""


def _by(events: Iterable[dict], kind: str) -> list[dict]:
    return [e for e in events if e["ev"] == kind]


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _percentile(values: list[float], q: float, scale: float = 1.0) -> float | None:
    return _round(float(np.percentile(values, q)) * scale, 3) if values else None


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def window_edges(total: int, windows: int) -> list[int]:
    """Boundaries of `windows` consecutive, near-equal windows over `total` steps (windows + 1 numbers)."""
    return [round(w * total / windows) for w in range(windows + 1)]


def window_means(values: Sequence[float], windows: int) -> list[float]:
    """Mean of `values` over each window (0 for an empty one)."""
    edges = window_edges(len(values), windows)
    return [float(np.mean(values[a:b])) if b > a else 0.0 for a, b in pairwise(edges)]


def _time_order(segments: list[dict]) -> list[dict]:
    return sorted(segments, key=lambda s: (s["t_end"], s["robot"], s["seq"]))


def steps_by_window(segments: list[dict], windows: int, human: bool) -> list[float]:
    """Human (or policy) steps in each window of the fleet's steps, segments in end-time order."""
    ordered = _time_order(segments)
    edges = window_edges(sum(s["steps"] for s in ordered), windows)
    counts = [0.0] * windows
    start = 0
    for seg in ordered:
        end = start + seg["steps"]
        if (seg["controller"] != "policy") == human:
            for w in range(windows):
                counts[w] += max(0, min(end, edges[w + 1]) - max(start, edges[w]))
        start = end
    return counts


def events_by_window(segments: list[dict], events: list[dict], windows: int) -> list[int]:
    """How many `events` fall in each window: an event belongs where the fleet's step count stood at its time."""
    ordered = _time_order(segments)
    ends = [s["t_end"] for s in ordered]
    done = np.cumsum([0] + [s["steps"] for s in ordered])
    edges = window_edges(int(done[-1]), windows)
    counts = [0] * windows
    for event in events:
        position = int(done[bisect.bisect_right(ends, event["t"])])
        counts[min(bisect.bisect_right(edges, position) - 1, windows - 1)] += 1
    return counts


def human_share_by_window(segments: list[dict], windows: int) -> list[float]:
    """Human share of steps in each window of the fleet's steps, in time order."""
    edges = window_edges(sum(s["steps"] for s in segments), windows)
    human = steps_by_window(segments, windows, human=True)
    return [h / (b - a) if b > a else 0.0 for h, (a, b) in zip(human, pairwise(edges), strict=True)]


def human_share_by_quarter(segments: list[dict]) -> list[float]:
    return human_share_by_window(segments, QUARTERS)


def _ask_rate(asks: float, policy_steps: float) -> float:
    return asks / max(1, policy_steps + asks)


def achieved_rate(events: list[dict]) -> float:
    """A gate's achieved intervention rate: help requests / (policy-controlled steps + help requests)."""
    policy_steps = sum(e["steps"] for e in _by(events, "segment") if e["controller"] == "policy")
    return _ask_rate(len(_by(events, "help_requested")), policy_steps)


def achieved_rate_by_window(events: list[dict], windows: int) -> list[float]:
    segments = _by(events, "segment")
    asks = events_by_window(segments, _by(events, "help_requested"), windows)
    policy_steps = steps_by_window(segments, windows, human=False)
    return [_ask_rate(a, p) for a, p in zip(asks, policy_steps, strict=True)]


def run_series(events: list[dict], windows: int = WINDOWS) -> dict[str, Any]:
    """The run over time: per window of the fleet's steps (`step` is the fleet's steps at its end) and per episode.

    `achieved_rate` and `alpha` only where the run's gate holds a target rate α (ALPHA_GATES).
    """
    segments = _by(events, "segment")
    start = next(iter(_by(events, "run_start")), {})
    series = {"step": window_edges(sum(s["steps"] for s in segments), windows)[1:],
              "intervention_rate": human_share_by_window(segments, windows),
              "takeovers": events_by_window(segments, _by(events, "takeover"), windows),
              "episode_success": [float(bool(e["success"])) for e in _episode_order(_by(events, "episode_end"))]}
    if start.get("gate") in ALPHA_GATES and start.get("alpha") is not None:
        series.update(achieved_rate=achieved_rate_by_window(events, windows), alpha=float(start["alpha"]))
    return series


def _episode_order(episodes: list[dict]) -> list[dict]:
    return sorted(episodes, key=lambda e: (e["t"], e["robot"]))


def autonomous_success_by_quarter(episodes: list[dict]) -> list[float]:
    """Share of episodes that succeeded with no human step, per quarter of episodes in time order."""
    ordered = _episode_order(episodes)
    parts = np.array_split(np.array([e["success"] and e["human_steps"] == 0 for e in ordered], bool), QUARTERS)
    return [float(p.mean()) if len(p) else 0.0 for p in parts]


def staleness(segments: list[dict], published: list[dict]) -> list[int]:
    """Per step: how many versions the robot's weights were behind the newest published ones."""
    pubs = sorted((p["t"], p["version"]) for p in published)
    times = [t for t, _ in pubs]
    newest = np.maximum.accumulate([v for _, v in pubs]) if pubs else np.zeros(0, int)
    out: list[int] = []
    for seg in segments:
        i = bisect.bisect_right(times, seg["t_start"]) - 1
        latest = int(newest[i]) if i >= 0 else 0
        for version, count in seg["versions"]:
            out.extend([max(0, latest - version)] * count)
    return out


def operator_busy_s(events: list[dict]) -> float:
    """Operator-seconds spent on robots: each assignment until the robot's hand-back to that operator."""
    open_at: dict[tuple[int, int], float] = {}
    busy = 0.0
    for e in events:
        if e["ev"] == "operator_assigned":
            open_at[(e["robot"], e["operator"])] = e["t"]
        elif e["ev"] == "handback" and (e["robot"], e["operator"]) in open_at:
            busy += e["t"] - open_at.pop((e["robot"], e["operator"]))
    return busy


def summarize(events: list[dict]) -> dict:
    segments = _by(events, "segment")
    episodes = _by(events, "episode_end")
    takeovers = _by(events, "takeover")
    learner = _by(events, "learner")
    segment_t = {f"{s['robot']}:{s['seq']}": s["t"] for s in segments}
    lags = [e["t"] - segment_t[e["key"]] for e in _by(events, "segment_trained") if e["key"] in segment_t]
    starts, ends = _by(events, "run_start"), _by(events, "run_end")
    duration = (ends[-1]["t"] - starts[0]["t"]) if starts and ends else None
    queued = [e["queued_s"] for e in _by(events, "operator_assigned")]
    steps = sum(s["steps"] for s in segments)
    human_steps = sum(s["steps"] for s in segments if s["controller"] != "policy")
    operator_s = starts[0].get("operators", 1) * duration if starts and duration else None
    return {
        "steps": steps,
        "human_steps": human_steps,
        "intervention_rate": _round(human_steps / steps if steps else 0.0),
        "takeovers": len(takeovers),
        "robot_gated_takeovers": sum(t["gated"] == "robot" for t in takeovers),
        "human_gated_takeovers": sum(t["gated"] == "human" for t in takeovers),
        "takeovers_per_hour": _round(3600 * len(takeovers) / duration if duration else None, 1),
        "mean_steps_between_interventions": _round((steps - human_steps) / len(takeovers) if takeovers else None, 1),
        "robot_waiting_s": _round(sum(t["wait_s"] for t in takeovers), 2),
        "human_idle_share": _round(1 - operator_busy_s(events) / operator_s if operator_s else None, 3),
        "episodes": len(episodes),
        "successes": sum(bool(e["success"]) for e in episodes),
        "autonomous_successes": sum(bool(e["success"]) and e["human_steps"] == 0 for e in episodes),
        "intervention_rate_by_quarter": [_round(x) for x in human_share_by_quarter(segments)],
        "autonomous_success_by_quarter": [_round(x) for x in autonomous_success_by_quarter(episodes)],
        "learner_updates": max((e["updates"] for e in learner), default=0),
        "final_loss": _round(learner[-1]["loss"], 5) if learner else None,
        "weights_published": len(_by(events, "weights_published")),
        "weights_staleness_p50": _median([float(x) for x in staleness(segments, _by(events, "weights_published"))]),
        "segment_to_train_lag_p50_s": _round(_median(lags), 3),
        "mean_wait_for_help_s": _round(float(np.mean([t["wait_s"] for t in takeovers])) if takeovers else None, 3),
        "takeover_latency_ms_p50": _percentile([t.get("latency_s", 0.0) for t in takeovers], 50, 1000),
        "takeover_latency_ms_p99": _percentile([t.get("latency_s", 0.0) for t in takeovers], 99, 1000),
        "reaction_time_s_p50": _percentile([t["reaction_s"] for t in takeovers if "reaction_s" in t], 50),
        "reaction_time_s_p99": _percentile([t["reaction_s"] for t in takeovers if "reaction_s" in t], 99),
        "queue_wait_s_p50": _percentile(queued, 50),
        "queue_wait_s_p99": _percentile(queued, 99),
        "control_period_ms": _round(starts[0].get("control_period_ms"), 3) if starts else None,
        "duration_s": _round(duration, 1),
    }


def run_scalars(events: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """TensorBoard scalars of a run: per window of the fleet's steps, and episode success per episode."""
    series = run_series(events)
    steps = series["step"]
    scalars = {"fleet/intervention_rate": list(zip(steps, series["intervention_rate"], strict=True)),
               "fleet/takeovers": list(zip(steps, series["takeovers"], strict=True)),
               "episode/success": list(enumerate(series["episode_success"], 1))}
    if "alpha" in series:
        scalars["gate/achieved_rate"] = list(zip(steps, series["achieved_rate"], strict=True))
        scalars["gate/target_alpha"] = [(step, series["alpha"]) for step in steps]
    return scalars


def write_pages(directory: Path, title: str, intro: list[str], head: list[str], rows: list[list[str]],
                images: dict[str, str]) -> None:
    """directory/report.md and report.html: a title, paragraphs, one table, then the images (alt text: path)."""
    md = [f"# {title}", ""] + [line for paragraph in intro for line in (paragraph, "")]
    md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    md += [line for alt, src in images.items() for line in ("", f"![{alt}]({src})")] + [""]
    (directory / "report.md").write_text("\n".join(md))
    esc = html.escape
    table = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    (directory / "report.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>{esc(title)}</title><h1>{esc(title)}</h1>"
        + "".join(f"<p>{esc(p)}" for p in intro)
        + "<table border=1 cellpadding=4><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + f"</tr>{table}</table>"
        + "".join(f"<p><img src='{esc(src)}' alt='{esc(alt)}'>" for alt, src in images.items()) + "\n")


def _cell(value: object) -> str:
    if isinstance(value, list):
        return "  ".join(map(str, value))
    return "—" if value is None else str(value)


def write_run_report(run_dir: Path, events: list[dict]) -> dict:
    """run_dir/report.md, report.html and plots/*.png, from the events alone; returns the summary."""
    summary, series = summarize(events), run_series(events)
    start = next(iter(_by(events, "run_start")), {})
    setting = {k: start[k] for k in ("task", "robots", "operators", "gate", "alpha", "seed") if k in start}
    plot_intervention(run_dir / "plots" / "intervention.png", {"fleet": (series["step"], series["intervention_rate"])},
                      (series["step"], series["takeovers"]), title=f"{run_dir.name}: human share of steps per window")
    images = {"intervention rate and takeovers over time": "plots/intervention.png"}
    if "alpha" in series:
        plot_alpha(run_dir / "plots" / "alpha.png", series["step"], series["achieved_rate"], series["alpha"],
                   title=f"gate {start['gate']}: achieved vs target rate")
        images["achieved vs target α"] = "plots/alpha.png"
    else:
        setting.pop("alpha", None)
    intro = [", ".join(f"{k}={v}" for k, v in setting.items()),
             f"Over time = {len(series['step'])} consecutive windows of the fleet's steps (segments in end-time "
             "order). Intervention rate = human steps / steps; achieved rate = help requests / (policy steps + "
             "help requests). All recomputed from events.jsonl."]
    write_pages(run_dir, f"Run report: {run_dir.name}", intro, ["metric", "value"],
                [[k, _cell(v)] for k, v in summary.items()], images)
    return summary
