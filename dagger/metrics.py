"""Metrics recomputed from a run's events.jsonl alone (the library's math; dagger.app.report writes pages).

    summary = summarize(read_events(run_dir / "events.jsonl"))
    summary["intervention_rate_by_quarter"]      # four numbers, quarters of the fleet's steps
    series = run_series(events)                  # per window of the fleet's steps, for plots and TensorBoard

Every count of steps is of what the buffer kept (see `kept_segments`): an operator's segment counts once the buffer
acknowledged it durable, and never when the segment log later lost it; the summary says what was taken and lost.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from buffers.schema import is_nudge

QUARTERS = 4
WINDOWS = 20
"""windows of the fleet's steps in the report's plots and TensorBoard scalars"""
ALPHA_GATES = ("auto", "thrifty")
"""gates that hold a target intervention rate α (gate.alpha)"""
LOST_SHOWN = 20
"""lost segments the summary names (robot:seq); the rest are counted"""
ACKED_OTHERWISE = ("policy", "demo")
"""controllers whose segments need no `stored` event: policy steps are shipped in batches without one, and
demonstrations are added by the driver itself before the run"""


def of_kind(events: Iterable[dict], kind: str) -> list[dict]:
    """The events of one kind, in log order."""
    return [e for e in events if e["ev"] == kind]


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _percentile(values: list[float], q: float, scale: float = 1.0) -> float | None:
    return _round(float(np.percentile(values, q)) * scale, 3) if values else None


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def _finite(x: object, digits: int) -> float | None:
    """x rounded, or None when it is not a finite number (a loss before any training)."""
    return round(float(x), digits) if isinstance(x, int | float) and np.isfinite(x) else None


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


def ask_rate(asks: float, policy_steps: float) -> float:
    return asks / max(1, policy_steps + asks)


def segment_key(event: dict) -> str:
    """robot:seq, how the buffer, `segment_trained` and `log_lost` name a segment."""
    return f"{event['robot']}:{event['seq']}"


def kept_segments(events: list[dict]) -> tuple[list[dict], list[dict]]:
    """The `segment` events whose steps the buffer kept, and the operators' segments it did not (taken, but lost).

    An operator's segment is kept when the buffer acknowledged it durable (a `stored` event), sampled it for training
    (`segment_trained`) or read it back from its log (a `recovered` segment event), unless a later `log_lost` names it
    (its log was found torn or damaged) or an `unstored` one (never acknowledged by the run's end). A policy segment
    is kept unless `log_lost` names it. A run that logged nothing of acknowledgements (no `stored`, `ship_failed` or
    `unstored`: logs from before robots reported them) is taken at its word, as those logs were read.
    """
    lost_from_log = {key for e in events if e["ev"] in ("log_lost", "unstored") for key in e.get("keys", [])}
    proven = ({segment_key(e) for e in of_kind(events, "stored")}
              | {e["key"] for e in of_kind(events, "segment_trained")})
    kept: list[dict] = []
    lost: list[dict] = []
    for run in runs(events):
        acks = any(e["ev"] in ("stored", "ship_failed", "unstored") for e in run)
        for seg in of_kind(run, "segment"):
            key, human = segment_key(seg), seg["controller"] not in ACKED_OTHERWISE
            if key not in lost_from_log and (not human or not acks or seg.get("recovered") or key in proven):
                kept.append(seg)
            elif human:
                lost.append(seg)
    return kept, lost


def kept_keys(events: list[dict]) -> set[str]:
    """robot:seq of the segments `kept_segments` keeps."""
    return {segment_key(s) for s in kept_segments(events)[0]}


def achieved_rate(events: list[dict]) -> float:
    """A gate's achieved intervention rate: help requests / (policy-controlled steps + help requests)."""
    policy_steps = sum(e["steps"] for e in kept_segments(events)[0] if e["controller"] == "policy")
    return ask_rate(len(of_kind(events, "help_requested")), policy_steps)


def achieved_rate_by_window(events: list[dict], windows: int) -> list[float]:
    segments = kept_segments(events)[0]
    asks = events_by_window(segments, of_kind(events, "help_requested"), windows)
    policy_steps = steps_by_window(segments, windows, human=False)
    return [ask_rate(a, p) for a, p in zip(asks, policy_steps, strict=True)]


def run_series(events: list[dict], windows: int = WINDOWS) -> dict[str, Any]:
    """The run over time: per window of the fleet's steps (`step` is the fleet's steps at its end) and per episode.

    `achieved_rate` and `alpha` only where the run's gate holds a target rate α (ALPHA_GATES).
    """
    segments = kept_segments(events)[0]
    start = next(iter(of_kind(events, "run_start")), {})
    series = {"step": window_edges(sum(s["steps"] for s in segments), windows)[1:],
              "intervention_rate": human_share_by_window(segments, windows),
              "takeovers": events_by_window(segments, of_kind(events, "takeover"), windows),
              "episode_success": [float(bool(e["success"])) for e in _episode_order(of_kind(events, "episode_end"))]}
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


def runs(events: list[dict]) -> list[list[dict]]:
    """The log cut at each run_start, in log order: one list per run (a resumed run dir holds several)."""
    out: list[list[dict]] = []
    for e in events:
        if e["ev"] == "run_start" or not out:
            out.append([])
        out[-1].append(e)
    return out


def run_span(run: list[dict]) -> float | None:
    """Seconds from a run's run_start to its run_end, or to its last event when it was killed."""
    start = next((e["t"] for e in run if e["ev"] == "run_start"), None)
    if start is None:
        return None
    end = next((e["t"] for e in reversed(run) if e["ev"] == "run_end"), max(e["t"] for e in run))
    return end - start


def active_seconds(events: list[dict]) -> tuple[float | None, float | None]:
    """The runs' spans added up, without the gaps between a killed run and its resumption; and operator-seconds
    (each run's operators times its span). None without a run_start."""
    spans: list[tuple[float, int]] = []
    for run in runs(events):
        span = run_span(run)
        if span is not None:
            spans.append((span, run[0].get("operators", 1)))
    if not spans:
        return None, None
    return sum(s for s, _ in spans), sum(s * ops for s, ops in spans)


def updates_trained(events: list[dict]) -> int:
    """Gradient updates the learners made, over all runs and every learner process: each counts from where it began
    (0, or a checkpoint's count when it restored one with its trainer: `--resume`, or Ray restarting a crashed
    learner, which logs `restored` then `restarted`) to the last count it logged. A learner restarted without a
    checkpoint (`restarted` with no `restored` before it) begins again at 0. Updates made after a learner's last
    logged count are not known and not counted."""
    total = 0
    for run in runs(events):
        base, last, restored = 0, None, False  # where this learner began, its last count, restored since it counted
        for e in run:
            if e["ev"] in ("learner", "weights_published", "checkpoint") and isinstance(e.get("updates"), int):
                last, restored = max(e["updates"], last or 0), False
            elif (e["ev"] == "restored" and e.get("trainer")) or (
                    e["ev"] == "restarted" and e.get("component") == "learner" and not restored):
                total += max(0, last - base) if last is not None else 0  # the learner before it ends here
                base, last = (e["updates"], None) if e["ev"] == "restored" else (0, None)
                restored = e["ev"] == "restored"
        total += max(0, last - base) if last is not None else 0
    return total


def run_staleness(events: list[dict]) -> list[int]:
    """`staleness` within each run: versions published by an earlier run do not count against a later one."""
    return [x for run in runs(events)
            for x in staleness(of_kind(run, "segment"), of_kind(run, "weights_published"))]


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


def learning_curve(events: list[dict]) -> list[dict]:
    """Each `eval` event (the policy alone on held-out episodes) with the human labels the run had gathered
    when that version was published (operator-controlled steps in kept segments ended by then) and the wall time
    since the run began."""
    published = {e["version"]: e["t"] for e in of_kind(events, "weights_published")}
    human = sorted((s["t_end"], s["steps"]) for s in kept_segments(events)[0] if s["controller"] != "policy")
    human_ends = [t for t, _ in human]
    cumulative = np.cumsum([n for _, n in human])
    start = next((e["t"] for e in of_kind(events, "run_start")), 0.0)
    points = []
    for e in of_kind(events, "eval"):
        t = published.get(e["version"], e["t"])
        done = bisect.bisect_right(human_ends, t)
        points.append({"version": e["version"], "success_rate": e["success_rate"], "ci95": e["ci95"],
                       "episodes": e["episodes"], "human_labels": int(cumulative[done - 1]) if done else 0,
                       "wall_s": round(t - start, 3)})
    return points


def lost_labels(lost: list[dict]) -> dict[str, Any]:
    """The summary's account of operators' segments taken but not kept: how many, their steps, the first
    LOST_SHOWN of them by robot:seq (in time order) and how many more."""
    ordered = [segment_key(s) for s in _time_order(lost)]
    shown = ordered[:LOST_SHOWN] + ([f"... {len(ordered) - LOST_SHOWN} more"] if len(ordered) > LOST_SHOWN else [])
    return {"human_steps_lost": sum(s["steps"] for s in lost), "human_segments_lost": len(lost),
            "lost_segments": shown}


def latency_by_device(takeovers: list[dict], starts: list[dict]) -> dict[str, float | None]:
    """Takeover latency (the operator's input → the first human action applied at the robot) for each kind of human
    device the run's operators used (run_start's operator_kinds), e.g. takeover_latency_ms_p50_browser."""
    kinds = starts[-1].get("operator_kinds", []) if starts else []
    out: dict[str, float | None] = {}
    for kind in dict.fromkeys(k for k in kinds if k != "scripted"):
        latencies = [t.get("latency_s", 0.0) for t in takeovers if kinds[t["operator"] % len(kinds)] == kind]
        out[f"takeover_latency_ms_p50_{kind}"] = _percentile(latencies, 50, 1000)
        out[f"takeover_latency_ms_p99_{kind}"] = _percentile(latencies, 99, 1000)
    return out


def calibration_summary(calibrations: list[dict]) -> dict[str, float | None]:
    """gate.calibrate=conformal: the stated false-alarm rate, and the one achieved on the evaluator's held-out
    successful steps pooled over every calibrated version (a version's steps weigh as many); none without one."""
    if not calibrations:
        return {}
    measured = [c for c in calibrations if c.get("false_alarm") is not None and c.get("threshold") is not None
                and isinstance(c.get("success_steps"), int)]  # a damaged log's event may lack any of them
    steps = sum(c["success_steps"] for c in measured)
    return {"false_alarm_target": calibrations[-1].get("alpha"),
            "false_alarm_held_out": _round(sum(c["false_alarm"] * c["success_steps"] for c in measured) / steps, 4)
            if steps else None}


def summarize(events: list[dict]) -> dict:
    """The run's numbers. `steps`, `human_steps` and every rate built on them count what the buffer kept
    (kept_segments); `human_steps_taken` is what the operators did, `human_steps_lost` the difference, and
    `lost_segments` names the lost segments (robot:seq)."""
    segments, lost = kept_segments(events)
    episodes = of_kind(events, "episode_end")
    takeovers = of_kind(events, "takeover")
    learner = of_kind(events, "learner")
    segment_t = {segment_key(s): s["t"] for s in segments}
    lags = [e["t"] - segment_t[e["key"]] for e in of_kind(events, "segment_trained") if e["key"] in segment_t]
    starts = of_kind(events, "run_start")
    duration, operator_s = active_seconds(events)
    queued = [e["queued_s"] for e in of_kind(events, "operator_assigned")]
    steps = sum(s["steps"] for s in segments)
    human_steps = sum(s["steps"] for s in segments if s["controller"] != "policy")
    evals = of_kind(events, "eval")
    unrecorded = (sum(s.get("unrecorded", 0) for s in segments)
                  + sum(e["steps"] for e in of_kind(events, "steps_unrecorded")))
    return {
        "steps": steps,
        "unrecorded_steps": unrecorded,  # taken from a state the worker never saw (a robot agent's late command)
        "human_steps": human_steps,  # stored: the operators' steps the buffer kept
        "nudged_steps": sum(s["steps"] for s in segments if is_nudge(s["controller"])),  # of those, nudged ones
        "human_steps_taken": human_steps + sum(s["steps"] for s in lost),
        **lost_labels(lost),
        "intervention_rate": _round(human_steps / steps if steps else 0.0),
        "takeovers": len(takeovers),  # nudges too: an operator's first command on a robot
        "nudges": sum(t.get("mode") == "nudge" for t in takeovers),
        "nudge_escalations": len(of_kind(events, "nudge_escalated")),
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
        "learner_updates": updates_trained(events),
        "final_loss": _finite(learner[-1].get("loss"), 5) if learner else None,
        "weights_published": len(of_kind(events, "weights_published")),
        "weights_staleness_p50": _median([float(x) for x in run_staleness(events)]),
        "segment_to_train_lag_p50_s": _round(_median(lags), 3),
        "mean_wait_for_help_s": _round(float(np.mean([t["wait_s"] for t in takeovers])) if takeovers else None, 3),
        "takeover_latency_ms_p50": _percentile([t.get("latency_s", 0.0) for t in takeovers], 50, 1000),
        "takeover_latency_ms_p99": _percentile([t.get("latency_s", 0.0) for t in takeovers], 99, 1000),
        **latency_by_device(takeovers, starts),
        "reaction_time_s_p50": _percentile([t["reaction_s"] for t in takeovers if "reaction_s" in t], 50),
        "reaction_time_s_p99": _percentile([t["reaction_s"] for t in takeovers if "reaction_s" in t], 99),
        "queue_wait_s_p50": _percentile(queued, 50),
        "queue_wait_s_p99": _percentile(queued, 99),
        "control_period_ms": _round(starts[0].get("control_period_ms"), 3) if starts else None,
        "eval_version_last": evals[-1]["version"] if evals else None,
        "eval_success_last": _round(evals[-1]["success_rate"], 3) if evals else None,
        **calibration_summary(of_kind(events, "calibration")),
        "duration_s": _round(duration, 1),
    }
