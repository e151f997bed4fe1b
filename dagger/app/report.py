"""A run's report: report.md, report.html, plots and TensorBoard scalars, from events.jsonl alone.

    summary = write_run_report(run_dir, read_events(run_dir / "events.jsonl"))
"""

from __future__ import annotations

import html
from pathlib import Path

from dagger.app.plots import plot_alpha, plot_intervention, plot_learning_curve
from dagger.metrics import learning_curve, of_kind, run_series, summarize


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
    start = next(iter(of_kind(events, "run_start")), {})
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
    curve = learning_curve(events)
    if curve:
        plot_learning_curve(run_dir / "plots" / "learning_curve.png", curve,
                            title=f"{run_dir.name}: the policy alone, {curve[0]['episodes']} held-out episodes each")
        images["policy-alone success against human labels and wall time"] = "plots/learning_curve.png"
    intro = [", ".join(f"{k}={v}" for k, v in setting.items()),
             f"Over time = {len(series['step'])} consecutive windows of the fleet's steps (segments in end-time "
             "order). Intervention rate = human steps / steps; achieved rate = help requests / (policy steps + "
             "help requests). All recomputed from events.jsonl."]
    if curve:
        intro.append(f"Learning curve: each published version scored alone (no gate, no operator) on the same "
                     f"{curve[0]['episodes']} held-out episodes, with its 95 % Wilson interval, against the operator "
                     f"steps logged before that version was published; final version v{curve[-1]['version']}: "
                     f"{curve[-1]['success_rate']:.2f}.")
    write_pages(run_dir, f"Run report: {run_dir.name}", intro, ["metric", "value"],
                [[k, _cell(v)] for k, v in summary.items()], images)
    return summary
