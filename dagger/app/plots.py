"""The reports' figures (PNG, matplotlib's Agg backend) and TensorBoard scalars (tensorboardX).

    plot_intervention(run_dir / "plots" / "intervention.png", {"run": (steps, rates)}, takeovers)
    plot_alpha(run_dir / "plots" / "alpha.png", steps, achieved, alpha=0.05)
    plot_learning_curve(run_dir / "plots" / "learning_curve.png", learning_curve(events))
    plot_alpha_sweep(Path("alpha.png"), {"auto": [(0.01, 0.012), (0.05, 0.04)]})
    write_scalars(Path("tb"), {"fleet/intervention_rate": [(500, 0.12), (1000, 0.08)]})

matplotlib and tensorboardX are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Series = tuple[Sequence[float], Sequence[float]]
"""x values, y values"""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def plot_learning_curve(path: Path, points: Sequence[Mapping[str, Any]], title: str = "") -> None:
    """Policy-alone success (95 % interval as error bars) against cumulative human labels and wall time."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    rate = np.array([p["success_rate"] for p in points])
    ci = np.array([p["ci95"] for p in points]).reshape(-1, 2)
    err = np.abs(np.stack([rate - ci[:, 0], ci[:, 1] - rate]))
    for ax, key, label in ((axes[0], "human_labels", "cumulative human labels (operator steps)"),
                           (axes[1], "wall_s", "time since the run began (min)")):
        x = np.array([p[key] for p in points], float) / (60.0 if key == "wall_s" else 1.0)
        ax.errorbar(x, rate, yerr=err, marker="o", markersize=4, capsize=3)
        ax.set(xlabel=label, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].set(ylabel="policy-alone success (held-out seeds)")
    fig.suptitle(title)
    _save(fig, path)


def plot_intervention(path: Path, rates: Mapping[str, Series], takeovers: Series | None = None,
                      title: str = "") -> None:
    """Intervention rate per window of the fleet's steps, one line per label; takeovers per window below it."""
    plt = _pyplot()
    fig, axes = plt.subplots(2 if takeovers else 1, 1, figsize=(7, 5.5 if takeovers else 3.5), sharex=True,
                             squeeze=False)
    ax = axes[0][0]
    for label, (x, y) in rates.items():
        ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set(ylabel="intervention rate (human share of steps)", title=title, ylim=(0, None))
    if len(rates) > 1:
        ax.legend()
    if takeovers:
        x, counts = takeovers
        width = (x[1] - x[0]) * 0.8 if len(x) > 1 else 1.0
        axes[1][0].bar(x, counts, width=width, color="tab:orange")
        axes[1][0].set(ylabel="takeovers per window")
        axes[1][0].yaxis.get_major_locator().set_params(integer=True)
    axes[-1][0].set(xlabel="fleet steps")
    _save(fig, path)


def plot_alpha(path: Path, steps: Sequence[float], achieved: Sequence[float], alpha: float, title: str = "") -> None:
    """The gate's achieved intervention rate per window against its target α (a horizontal line)."""
    fig, ax = _pyplot().subplots(figsize=(7, 3.5))
    ax.plot(steps, achieved, marker="o", markersize=3, label="achieved: help requests / (policy steps + requests)")
    ax.axhline(alpha, color="black", linestyle="--", label=f"target α = {alpha:g}")
    ax.set(xlabel="fleet steps", ylabel="rate", title=title, ylim=(0, None))
    ax.legend()
    _save(fig, path)


def plot_alpha_sweep(path: Path, achieved: Mapping[str, Sequence[tuple[float, float]]], title: str = "") -> None:
    """Achieved against target α, one line per gate, with the line achieved = α."""
    fig, ax = _pyplot().subplots(figsize=(5, 4))
    top = max(max(a, r) for points in achieved.values() for a, r in points)
    ax.plot([0, top], [0, top], color="black", linestyle="--", label="achieved = α")
    for label, points in achieved.items():
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set(xlabel="target α", ylabel="achieved rate", title=title)
    ax.legend()
    _save(fig, path)


def plot_rohe(path: Path, rohes: Mapping[str, Sequence[float]]) -> None:
    """ROHE per method: mean with a std error bar over its seeds."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.5))
    names = list(rohes)
    ax.bar(names, [np.mean(rohes[n]) for n in names], yerr=[np.std(rohes[n]) for n in names], capsize=4)
    seeds = max(len(v) for v in rohes.values())
    ax.set(ylabel="ROHE (successes / 1000 human actions)", title=f"mean ± std over {seeds} seeds")
    _save(fig, path)


def write_scalars(log_dir: Path, scalars: Mapping[str, Sequence[tuple[float, float]]]) -> None:
    """One TensorBoard event file in log_dir: every tag's (step, value) points."""
    from tensorboardX import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for tag, points in scalars.items():
            for step, value in points:
                writer.add_scalar(tag, float(value), int(step))
