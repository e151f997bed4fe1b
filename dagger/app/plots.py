"""The reports' figures (PNG, matplotlib's Agg backend) and TensorBoard scalars (tensorboardX).

    plot_intervention(run_dir / "plots" / "intervention.png", {"fleet": (steps, rates)}, takeovers)
    plot_intervention(Path("bench.png"), {"cur": (steps, [seed_0_rates, seed_1_rates])})  # mean, min–max band
    plot_alpha(run_dir / "plots" / "alpha.png", steps, achieved, alpha=0.05)
    plot_learning_curve(run_dir / "plots" / "learning_curve.png", learning_curve(events))
    plot_loss(run_dir / "plots" / "loss.png", [{"updates": 200, "wall_s": 3.0, "loss": 0.07}])
    plot_cumulative(Path("cumulative.png"), {"cumulative successes": {"cur": [seed_0, seed_1]}})
    plot_alpha_sweep(Path("alpha.png"), {"auto": [(0.01, 0.012), (0.05, 0.04)]})
    plot_bars(Path("success.png"), ["reach", "avoid"], {"bc": [[0.4, 0.5], [0.1, 0.2]]}, "success rate")
    plot_sweep(Path("jitter.png"), [0, 4, 8], {"bc": [[0.9, 0.5, 0.2], [0.8, 0.4, 0.1]]}, "camera jitter", "success")
    write_scalars(Path("tb"), {"fleet/intervention_rate": [(500, 0.12), (1000, 0.08)]})

Curves over seeds are drawn as their mean with the seeds' min–max shaded; legends sit outside the axes.
matplotlib and tensorboardX are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

Series = tuple[Sequence[float], Sequence[float]]
"""x values, y values"""
SeedSeries = tuple[ArrayLike, ArrayLike]
"""x values, then the y values of one run, or one row of them per seed"""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight" keeps the legends outside the axes in the image
    _pyplot().close(fig)


def _mean_band(ax: Any, x: ArrayLike, ys: ArrayLike, label: str) -> int:
    """The mean of ys's rows (one run, or one row per seed) against x, their min–max shaded when there are two or
    more; returns the rows."""
    rows = np.atleast_2d(np.asarray(ys, float))
    marker = "o" if rows.shape[1] <= 40 else None
    (line,) = ax.plot(x, rows.mean(axis=0), marker=marker, markersize=3, label=label)
    if len(rows) > 1:
        ax.fill_between(x, rows.min(axis=0), rows.max(axis=0), color=line.get_color(), alpha=0.2, linewidth=0)
    return len(rows)


def _legend(ax: Any, seeds: int = 1) -> None:
    """The axes' legend to their right, clear of the data; names the band when the curves are over seeds."""
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    if seeds > 1:
        handles.append(Patch(color="grey", alpha=0.3, linewidth=0))
        labels.append(f"min–max over {seeds} seeds")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, frameon=False)


def _elapsed(seconds: Sequence[float]) -> tuple[np.ndarray, str]:
    """Wall time in minutes, or in seconds for runs shorter than two minutes, and its axis label."""
    s = np.asarray(seconds, float)
    if s.size and s.max() >= 120:
        return s / 60.0, "time since the run began (min)"
    return s, "time since the run began (s)"


def _two_panels(title: str, ylabel: str, xlabels: tuple[str, str]) -> tuple[Any, Any]:
    """A figure of two side-by-side axes sharing y: one quantity against work done and against wall time."""
    fig, axes = _pyplot().subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, xlabel in zip(axes, xlabels, strict=True):
        ax.set(xlabel=xlabel)
        ax.grid(alpha=0.3)
    axes[0].set(ylabel=ylabel)
    fig.suptitle(title)
    return fig, axes


def plot_learning_curve(path: Path, points: Sequence[Mapping[str, Any]], title: str = "") -> None:
    """Policy-alone success (95 % interval as error bars) against cumulative human labels and wall time."""
    rate = np.array([p["success_rate"] for p in points])
    ci = np.array([p["ci95"] for p in points]).reshape(-1, 2)
    err = np.abs(np.stack([rate - ci[:, 0], ci[:, 1] - rate]))
    wall, wall_label = _elapsed([p["wall_s"] for p in points])
    fig, axes = _two_panels(title, "policy-alone success (held-out seeds)",
                            ("cumulative human labels (operator steps)", wall_label))
    for ax, x in zip(axes, ([p["human_labels"] for p in points], wall), strict=True):
        ax.errorbar(x, rate, yerr=err, marker="o", markersize=4, capsize=3)
        ax.set(ylim=(-0.02, 1.02))
    _save(fig, path)


def plot_loss(path: Path, points: Sequence[Mapping[str, float]], title: str = "") -> None:
    """The learner's loss against its gradient updates and wall time (log scale when it spans a factor of 10)."""
    loss = [p["loss"] for p in points]
    wall, wall_label = _elapsed([p["wall_s"] for p in points])
    fig, axes = _two_panels(title, "learner loss (behaviour cloning)", ("gradient updates", wall_label))
    for ax, x in zip(axes, ([p["updates"] for p in points], wall), strict=True):
        ax.plot(x, loss, marker="o", markersize=3)
    if min(loss) > 0 and max(loss) >= 10 * min(loss):
        axes[0].set(yscale="log")
        for ax in axes:
            ax.grid(alpha=0.3, which="both")
    _save(fig, path)


def plot_intervention(path: Path, rates: Mapping[str, SeedSeries], takeovers: Series | None = None,
                      title: str = "", ylabel: str = "intervention rate (human share of steps)") -> None:
    """Intervention rate per window of the fleet's steps, one line per label; takeovers per window below it."""
    plt = _pyplot()
    fig, axes = plt.subplots(2 if takeovers else 1, 1, figsize=(7, 5.5 if takeovers else 3.5), sharex=True,
                             squeeze=False)
    ax = axes[0][0]
    seeds = max(_mean_band(ax, x, ys, label) for label, (x, ys) in rates.items())
    ax.set(ylabel=ylabel, title=title, ylim=(0, None))
    if len(rates) > 1 or seeds > 1:
        _legend(ax, seeds)
    if takeovers:
        x, counts = takeovers
        width = (x[1] - x[0]) * 0.8 if len(x) > 1 else 1.0
        axes[1][0].bar(x, counts, width=width, color="tab:orange")
        axes[1][0].set(ylabel="takeovers per window")
        axes[1][0].yaxis.get_major_locator().set_params(integer=True)
    axes[-1][0].set(xlabel="fleet steps")
    _save(fig, path)


def plot_cumulative(path: Path, panels: Mapping[str, Mapping[str, ArrayLike]],
                    title: str = "") -> None:
    """One panel per quantity (its y label) against fleet steps; in each, one line per method over its seeds."""
    fig, axes = _pyplot().subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    seeds = 1
    for ax, (ylabel, curves) in zip(axes[0], panels.items(), strict=True):
        for label, rows in curves.items():
            seeds = max(seeds, _mean_band(ax, np.arange(1, np.shape(rows)[-1] + 1), rows, label))
        ax.set(xlabel="fleet steps", ylabel=ylabel)
        ax.grid(alpha=0.3)
    _legend(axes[0][-1], seeds)
    fig.suptitle(title)
    _save(fig, path)


def plot_alpha(path: Path, steps: Sequence[float], achieved: Sequence[float], alpha: float, title: str = "") -> None:
    """The gate's achieved help-request rate per window against its target α (a horizontal line)."""
    fig, ax = _pyplot().subplots(figsize=(7, 3.5))
    ax.plot(steps, achieved, marker="o", markersize=3, label="achieved")
    ax.axhline(alpha, color="black", linestyle="--", label=f"target α = {alpha:g}")
    ax.set(xlabel="fleet steps", ylabel="help requests / (policy steps + requests)", title=title, ylim=(0, None))
    _legend(ax)
    _save(fig, path)


def plot_alpha_sweep(path: Path, achieved: Mapping[str, Sequence[tuple[float, float]]], title: str = "") -> None:
    """Achieved against target α, one line per gate, with the line achieved = α."""
    fig, ax = _pyplot().subplots(figsize=(5, 4))
    top = max(max(a, r) for points in achieved.values() for a, r in points)
    ax.plot([0, top], [0, top], color="black", linestyle="--", label="achieved = α")
    for label, points in achieved.items():
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set(xlabel="target α", ylabel="achieved rate", title=title)
    _legend(ax)
    _save(fig, path)


def plot_rohe(path: Path, rohes: Mapping[str, Sequence[float]], title: str = "") -> None:
    """ROHE per method: mean with a std error bar over its seeds, each seed a dot."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.5))
    names = list(rohes)
    ax.bar(names, [np.mean(rohes[n]) for n in names], yerr=[np.std(rohes[n]) for n in names], capsize=4, alpha=0.8)
    for i, name in enumerate(names):
        ax.plot([i] * len(rohes[name]), rohes[name], "k.", markersize=4)
    seeds = max(len(v) for v in rohes.values())
    ax.set(ylabel="ROHE (successes per 1000 human actions)",
           title=f"{title}\nmean ± std over {seeds} seeds" if title else f"mean ± std over {seeds} seeds")
    _save(fig, path)


def plot_bars(path: Path, groups: Sequence[str], values: Mapping[str, Sequence[Sequence[float]]], ylabel: str,
              title: str = "", ylim: tuple[float, float] | None = None) -> None:
    """Grouped bars: in each group one bar per label, at the mean of its values (one per seed), with their min–max as
    an error bar and each value a dot."""
    fig, ax = _pyplot().subplots(figsize=(max(6.0, 0.5 * len(groups) * len(values) + 2), 4))
    width, x = 0.8 / len(values), np.arange(len(groups))
    for i, (label, per_group) in enumerate(values.items()):
        at = x - 0.4 + width * (i + 0.5)
        means = np.array([np.mean(v) for v in per_group])
        spread = [means - [min(v) for v in per_group], [max(v) for v in per_group] - means]
        ax.bar(at, means, width, yerr=spread, capsize=3, alpha=0.8, label=label)
        for where, points in zip(at, per_group, strict=True):
            ax.plot([where] * len(points), points, "k.", markersize=4)
    seeds = max(len(v) for per_group in values.values() for v in per_group)
    crowded = sum(map(len, groups)) > 50  # the labels would run into each other
    ax.set_xticks(x, groups, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    note = f"mean, min–max over {seeds} seeds"
    ax.set(ylabel=ylabel, ylim=ylim, title=f"{title}\n{note}" if title else note)
    _legend(ax)
    _save(fig, path)


def plot_sweep(path: Path, x: Sequence[float], lines: Mapping[str, ArrayLike], xlabel: str, ylabel: str,
               title: str = "", ylim: tuple[float, float] | None = None) -> None:
    """One line per label against a setting's values: the mean of its rows (one per seed), their min–max shaded."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.8))
    seeds = max(_mean_band(ax, x, ys, label) for label, ys in lines.items())
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=ylim)
    ax.grid(alpha=0.3)
    _legend(ax, seeds)
    _save(fig, path)


def write_scalars(log_dir: Path, scalars: Mapping[str, Sequence[tuple[float, float]]]) -> None:
    """One TensorBoard event file in log_dir: every tag's (step, value) points."""
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for tag, points in scalars.items():
            for step, value in points:
                writer.add_scalar(tag, float(value), int(step))
