"""A run's report: report.md, report.html, plots and TensorBoard scalars, from events.jsonl alone.

    summary = write_run_report(run_dir, read_events(run_dir / "events.jsonl"))
    print_run_report(run_dir, summary)     # the terminal's view: a rich table and where the plots are
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from rich.console import Console

from dagger.app.plots import plot_alpha, plot_intervention, plot_learning_curve, plot_loss
from dagger.app.summary import print_summary
from dagger.metrics import ALPHA_GATES, WINDOWS, learning_curve, of_kind, run_series, summarize

NOTHING_TO_DRAW = "Nothing to draw: the run logged no fleet steps, so it has no plots."


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


def run_title(start: dict, fallback: str) -> str:
    """What a run's figures are titled: task · gate · robots and operators, from its run_start event."""
    counts = ", ".join(f"{start[k]} {k[:-1] if start[k] == 1 else k}" for k in ("robots", "operators") if k in start)
    parts = [str(start.get("task", "")), f"gate {start['gate']}" if "gate" in start else "", counts]
    return " · ".join(p for p in parts if p) or fallback


def loss_curve(events: list[dict]) -> list[dict]:
    """The learner's loss at each `learner` event that has one: updates, seconds since the run began, loss."""
    start = next((e["t"] for e in of_kind(events, "run_start")), 0.0)
    return [{"updates": e["updates"], "wall_s": e["t"] - start, "loss": float(e["loss"])}
            for e in of_kind(events, "learner") if isinstance(e.get("loss"), int | float) and np.isfinite(e["loss"])]


def plot_run(plots: Path, events: list[dict], curve: list[dict], windows: int, title: str) -> dict[str, str]:
    """The run's figures in `plots`, each only when the run has its data (`curve`: its learning curve); returns
    alt text -> path from the run dir."""
    series = run_series(events, windows)
    plot_intervention(plots / "intervention.png", {"fleet": (series["step"], series["intervention_rate"])},
                      (series["step"], series["takeovers"]), title=title)
    images = {"intervention rate and takeovers over time": "plots/intervention.png"}
    if "alpha" in series:
        plot_alpha(plots / "alpha.png", series["step"], series["achieved_rate"], series["alpha"], title=title)
        images["achieved vs target α"] = "plots/alpha.png"
    if curve:
        plot_learning_curve(plots / "learning_curve.png", curve,
                            title=f"{title}: the policy alone, {curve[0]['episodes']} held-out episodes each")
        images["policy-alone success against human labels and wall time"] = "plots/learning_curve.png"
    losses = loss_curve(events)
    if losses:
        plot_loss(plots / "loss.png", losses, title=f"{title}: the learner's loss")
        images["learner loss against updates and wall time"] = "plots/loss.png"
    return images


def write_run_report(run_dir: Path, events: list[dict]) -> dict:
    """run_dir/report.md, report.html and plots/*.png, from the events alone; returns the summary."""
    summary = summarize(events)
    start = next(iter(of_kind(events, "run_start")), {})
    setting = {k: start[k] for k in ("task", "robots", "operators", "gate", "alpha", "seed") if k in start}
    if start.get("gate") not in ALPHA_GATES or start.get("alpha") is None:
        setting.pop("alpha", None)
    intro = [", ".join(f"{k}={v}" for k, v in setting.items())]
    if summary["human_steps_lost"]:
        intro.append(lost_words(summary))
    images: dict[str, str] = {}
    if not summary["steps"]:
        intro.append(NOTHING_TO_DRAW)
    else:
        windows, curve = min(WINDOWS, summary["steps"]), learning_curve(events)
        images = plot_run(run_dir / "plots", events, curve, windows, run_title(start, run_dir.name))
        intro.append(f"Over time = {windows} consecutive windows of the fleet's steps (segments in end-time "
                     "order). Intervention rate = human steps / steps; achieved rate = help requests / (policy "
                     "steps + help requests). All recomputed from events.jsonl.")
        if curve:
            intro.append(f"Learning curve: each published version scored alone (no gate, no operator) on the same "
                         f"{curve[0]['episodes']} held-out episodes, with its 95 % Wilson interval, against the "
                         f"operator steps logged before that version was published; final version "
                         f"v{curve[-1]['version']}: {curve[-1]['success_rate']:.2f}.")
    write_pages(run_dir, f"Run report: {run_dir.name}", intro, ["metric", "value"],
                [[k, _cell(v)] for k, v in summary.items()], images)
    return summary


def lost_words(summary: dict) -> str:
    """What the operators did that the buffer did not keep, in a sentence."""
    return (f"Human steps taken {summary['human_steps_taken']}, stored {summary['human_steps']}, lost "
            f"{summary['human_steps_lost']} in {summary['human_segments_lost']} segments the buffer never made "
            f"durable or its log lost (robot:seq): {', '.join(summary['lost_segments'])}. Every count of steps "
            "here is of what was stored.")


def print_run_report(run_dir: Path, summary: dict, console: Console | None = None) -> None:
    """The summary as a rich table, then where the report and plots are, or that there was nothing to draw."""
    console = console or Console()
    print_summary(summary, run_dir, console)
    if summary["human_steps_lost"]:
        console.print(lost_words(summary), markup=False)
    plots = f"plots: {run_dir / 'plots'}" if summary["steps"] else NOTHING_TO_DRAW
    console.print(f"report: {run_dir / 'report.md'}  {plots}")
