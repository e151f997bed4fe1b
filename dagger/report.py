"""Metrics recomputed from a run's events.jsonl alone.

    summary = summarize(read_events(run_dir / "events.jsonl"))
    summary["intervention_rate_by_quarter"]      # four numbers, quarters of the fleet's steps
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np

QUARTERS = 4


def _by(events: Iterable[dict], kind: str) -> list[dict]:
    return [e for e in events if e["ev"] == kind]


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _percentile(values: list[float], q: float, scale: float = 1.0) -> float | None:
    return _round(float(np.percentile(values, q)) * scale, 3) if values else None


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def human_share_by_quarter(segments: list[dict]) -> list[float]:
    """Human share of steps in each quarter of the fleet's steps, in time order."""
    ordered = sorted(segments, key=lambda s: (s["t_end"], s["robot"], s["seq"]))
    total = sum(s["steps"] for s in ordered)
    edges = [round(q * total / QUARTERS) for q in range(QUARTERS + 1)]
    human = [0.0] * QUARTERS
    start = 0
    for seg in ordered:
        end = start + seg["steps"]
        if seg["controller"] != "policy":
            for q in range(QUARTERS):
                human[q] += max(0, min(end, edges[q + 1]) - max(start, edges[q]))
        start = end
    return [human[q] / (edges[q + 1] - edges[q]) if edges[q + 1] > edges[q] else 0.0 for q in range(QUARTERS)]


def autonomous_success_by_quarter(episodes: list[dict]) -> list[float]:
    """Share of episodes that succeeded with no human step, per quarter of episodes in time order."""
    ordered = sorted(episodes, key=lambda e: (e["t"], e["robot"]))
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
    return {
        "steps": steps,
        "human_steps": human_steps,
        "intervention_rate": _round(human_steps / steps if steps else 0.0),
        "takeovers": len(takeovers),
        "robot_gated_takeovers": sum(t["gated"] == "robot" for t in takeovers),
        "human_gated_takeovers": sum(t["gated"] == "human" for t in takeovers),
        "takeovers_per_hour": _round(3600 * len(takeovers) / duration if duration else None, 1),
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
