"""Label efficiency (issue 25): policy-alone success against labels (operator + demonstration steps) for the dagger
loop and two baselines trained by the same learner (policy family, config, batch, lr, normaliser):

- dagger:<variant>  the real loop in-process (run_loop, `dagger start`'s config plus the variant's overrides), a
                    checkpoint per version, about --points of them scored;
- bc                scripted demonstrations only, n episodes for n in --ladder, each trained from scratch;
- classic           classic DAgger as `imitation` runs it: rounds of beta-mixture rollouts (beta 1 - i/rampdown),
                    every visited state labelled by the same simulated person as the loop's operator (the expert
                    with `operator.noise`), aggregated, trained on warm;
- classic-exact     the same, labelled with the expert's noiseless action (a labeller no person is).

Every score is the policy alone on --episodes held-out episodes (the same seeds for every method). One JSON per cell
(task x method x seed) in --out/cells, so a run resumes; --report-only rebuilds points.csv, label_efficiency.png and
the Markdown table (stdout) from them. Progress goes to stderr.

    python benchmarks/label_efficiency.py --out /tmp/labels --jobs 2
    python benchmarks/label_efficiency.py --tasks reach --seeds 0 --variants "fast:learner.publish_every=100"
    python benchmarks/label_efficiency.py --out /tmp/labels --report-only
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

STEPS = {"reacher": 12000, "reach": 12000, "push": 30000, "pick-place": 30000, "drawer-open": 20000}
"""the dagger loop's fleet steps per task"""
PER_VERSION = ["learner.checkpoint_every=1", "learner.checkpoint_keep=1000000"]
"""what the dagger runs add to measure: a checkpoint of every published version"""
METHODS = ("dagger", "bc", "classic", "classic-exact")
ORDER = {"dagger:default": 0, "bc": 2, "classic": 3, "classic-exact": 4}
"""methods in table and legend order (other dagger variants: 1)"""
LEVELS = (0.8, 0.95)
GOAL = 5.0
"""issue 25: classic DAgger needs at least this many times dagger's labels to reach 0.95"""


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    """dagger:<variant>, bc, classic or classic-exact"""
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}_{self.method.replace(':', '-')}_s{self.seed}"


def cost(cell: Cell) -> tuple[bool, int]:
    """Which cells to start first, so that the longest do not run alone at the end: classic DAgger's (a score every
    round), then by the task's fleet steps."""
    return cell.method.startswith("classic"), STEPS.get(cell.task, 0)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_pairs(text: str, sep: str = ",") -> dict[str, str]:
    """"a=1,b=2" -> {"a": "1", "b": "2"}."""
    pairs = [part.split("=", 1) for part in text.split(sep) if part.strip()]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"label_efficiency: expected name=value pairs, got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def parse_variants(text: str) -> dict[str, list[str]]:
    """"name:key=value,key=value;name2:..." -> {"default": [], "name": ["key=value", ...], ...}."""
    variants: dict[str, list[str]] = {"default": []}
    for part in filter(str.strip, text.split(";")):
        name, _, overrides = part.partition(":")
        variants[name.strip()] = [f"{k}={v}" for k, v in parse_pairs(overrides).items()]
    return variants


def run_cell(cell: Cell, args: argparse.Namespace, variants: dict[str, list[str]]) -> dict[str, Any]:
    """Runs one cell from scratch and writes its JSON."""
    import torch

    from dagger.app.label_bench import ClassicConfig, run_bc, run_classic, run_dagger
    from dagger.config import load_config
    from dagger.tasks import make_task

    torch.set_num_threads(1)
    work = args.out / "runs" / cell.name
    shutil.rmtree(work, ignore_errors=True)  # a cell killed half-way starts again

    def progress(line: str) -> None:
        say(f"[{cell.name}] {line}")

    began, base = time.perf_counter(), [f"task.name={cell.task}", f"seed={cell.seed}"]
    record: dict[str, Any] = {"task": cell.task, "method": cell.method, "seed": cell.seed}
    if cell.method.startswith("dagger:"):
        overrides, steps = variants[cell.method.split(":", 1)[1]], args.steps[cell.task]
        record.update(overrides=overrides, steps=steps)
        cfg = load_config(None, [*base, f"steps={steps}", *overrides, *PER_VERSION])
        points = run_dagger(cfg, work, args.episodes, args.points, progress)
    elif cell.method == "bc":  # the baselines train `dagger start`'s learner and policy for the task
        record["updates_rule"] = args.updates or "max(2000, learner.pretrain_updates + 4 per label)"
        cfg = load_config(None, base)
        points = run_bc(cfg, make_task(cfg.task), work, args.ladder, args.episodes, args.updates, progress)
    else:
        cfg = load_config(None, base)
        noise = cfg.operator.noise if cell.method == "classic" else 0.0
        classic = ClassicConfig(args.round_episodes, args.rampdown, args.max_labels, noise=noise)
        record.update(round_episodes=classic.round_episodes, rampdown=classic.rampdown,
                      max_labels=classic.max_labels, label_noise=noise)
        points = run_classic(cfg, make_task(cfg.task), work, classic, args.episodes, progress)
    record.update(episodes=args.episodes, points=points, wall_s=round(time.perf_counter() - began, 1))
    path = args.out / "cells" / f"{cell.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(record, indent=1))
    path.with_suffix(".tmp").replace(path)
    progress(f"done in {record['wall_s']:.0f} s")
    return record


def read_cells(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]


def curves_by(cells: list[dict[str, Any]]) -> dict[str, dict[str, list[list[dict]]]]:
    """task -> method -> one curve (points in label order) per seed, methods in table order."""
    out: dict[str, dict[str, list[list[dict]]]] = {}
    for c in sorted(cells, key=lambda c: (c["task"], ORDER.get(c["method"], 1), c["method"], c["seed"])):
        out.setdefault(c["task"], {}).setdefault(c["method"], []).append(sorted(c["points"], key=lambda p: p["labels"]))
    return out


def write_points(out: Path, cells: list[dict[str, Any]]) -> None:
    fields = ["task", "method", "seed", "labels", "trained_on_steps", "updates", "success", "ci95_low", "ci95_high"]
    with (out / "points.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for c in cells:
            for p in sorted(c["points"], key=lambda p: p["labels"]):
                writer.writerow([c["task"], c["method"], c["seed"], p["labels"], p["trained_on_steps"], p["updates"],
                                 p["success"], *p["ci95"]])


def plot(path: Path, curves: dict[str, dict[str, list[list[dict]]]]) -> None:
    """One panel per task: success against labels (log x), the median over seeds with their min-max band; each seed
    holds its last score past its last point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), sharey=True, squeeze=False)
    names = sorted({m for methods in curves.values() for m in methods}, key=lambda m: (ORDER.get(m, 1), m))
    colours = {m: f"C{i}" for i, m in enumerate(names)}  # one colour per method in every panel
    for ax, (task, methods) in zip(axes[0], curves.items(), strict=True):
        for method, seeds in methods.items():
            grid = np.unique([p["labels"] for c in seeds for p in c]).astype(float)
            ys = np.array([np.interp(np.log(grid), np.log([p["labels"] for p in c]), [p["success"] for p in c],
                                     left=np.nan, right=c[-1]["success"]) for c in seeds])
            ax.plot(grid, np.nanmedian(ys, axis=0), marker="o", markersize=3, color=colours[method])
            ax.fill_between(grid, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), color=colours[method], alpha=0.2,
                            linewidth=0)
        for level in LEVELS:
            ax.axhline(level, color="grey", linestyle="--", linewidth=0.8)
        ax.set(xscale="log", title=task, xlabel="labels (operator + demonstration steps)", ylim=(-0.02, 1.02))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels of a short log axis overlap
        ax.grid(alpha=0.3)
    axes[0][0].set(ylabel="policy-alone success (held-out)")
    handles = [matplotlib.lines.Line2D([], [], color=colours[m], marker="o", markersize=3) for m in names]
    axes[0][-1].legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def needed_text(seeds: list[list[dict]], level: float) -> str:
    """Median labels to `level` over seeds and their range, or what was reached instead."""
    from dagger.app.label_bench import best_point, needed_per_seed

    needed = needed_per_seed(seeds, level)
    median = float(np.median(needed))
    if median == np.inf:
        best = best_point(seeds)
        return f"not reached (best {best['success']:.2f} at {best['labels']:,})"
    hi = "not reached" if max(needed) == np.inf else f"{max(needed):,.0f}"
    return f"{median:,.0f}" + (f" ({min(needed):,.0f}–{hi})" if len(seeds) > 1 else "")


def ratio_text(classic: list[list[dict]] | None, dagger: list[list[dict]]) -> str:
    """classic's median labels to 0.95 over dagger's, against the goal; a lower bound (>) where classic never
    reached it (its labels spent instead)."""
    from dagger.app.label_bench import needed_per_seed

    ours = float(np.median(needed_per_seed(dagger, LEVELS[1])))
    if classic is None:
        return "—"
    if ours == np.inf:
        return "dagger never reached 0.95 (short)"
    theirs = float(np.median(needed_per_seed(classic, LEVELS[1])))
    bound = theirs == np.inf
    if bound:
        theirs = float(np.median([c[-1]["labels"] for c in classic]))
    ratio = theirs / ours
    verdict = "met" if ratio >= GOAL else "short"
    return f"{'>' if bound else ''}{ratio:.1f}x ({verdict})"


def best_variant(methods: dict[str, list[list[dict]]]) -> str:
    """The dagger variant with the fewest median labels to 0.95, then to 0.8."""
    from dagger.app.label_bench import needed_per_seed

    dagger = [m for m in methods if m.startswith("dagger:")]
    return min(dagger, key=lambda m: tuple(float(np.median(needed_per_seed(methods[m], lv))) for lv in LEVELS[::-1]))


def table(curves: dict[str, dict[str, list[list[dict]]]]) -> list[str]:
    lines = ["| task | method | seeds | labels to 0.8 | labels to 0.95 | final success "
             "| classic / dagger labels at 0.95 | classic-exact / dagger |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for task, methods in curves.items():
        best = best_variant(methods) if any(m.startswith("dagger:") for m in methods) else None
        for method, seeds in methods.items():
            final = [c[-1]["success"] for c in seeds]
            final_text = f"{np.median(final):.2f}" + (f" ({min(final):.2f}–{max(final):.2f})" if len(seeds) > 1 else "")
            shown = method + (" (best)" if method == best and method != "dagger:default" else "")
            ratios = [ratio_text(methods.get(c), seeds) if method in ("dagger:default", best) else ""
                      for c in ("classic", "classic-exact")]
            lines.append(f"| {task} | {shown} | {len(seeds)} | {needed_text(seeds, LEVELS[0])} | "
                         f"{needed_text(seeds, LEVELS[1])} | {final_text} | {' | '.join(ratios)} |")
    return lines


def report(out: Path) -> None:
    cells = read_cells(out)
    if not cells:
        raise SystemExit(f"label_efficiency: no finished cells in {out / 'cells'}")
    curves = curves_by(cells)
    write_points(out, cells)
    plot(out / "label_efficiency.png", curves)
    print("\n".join(table(curves)))
    walls = ", ".join(f"{c['task']} {c['method']} s{c['seed']} {c['wall_s']:.0f} s" for c in cells)
    say(f"wall time per cell: {walls}\npoints: {out / 'points.csv'}\nplot: {out / 'label_efficiency.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="cells, points.csv and the plot (default: a temp dir)")
    parser.add_argument("--tasks", default=",".join(STEPS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default="dagger,bc,classic,classic-exact", help="dagger runs every variant")
    parser.add_argument("--variants", default="",
                        help="name:key=value,key=value;name2:... beside `default` (values without commas)")
    parser.add_argument("--steps", default="", help="the dagger loop's fleet steps, task=N,... (else STEPS)")
    parser.add_argument("--episodes", type=int, default=100, help="held-out episodes per score")
    parser.add_argument("--points", type=int, default=8, help="dagger checkpoints scored per run (the last always)")
    parser.add_argument("--ladder", default="3,6,12,24,48", help="bc: demonstration episodes")
    parser.add_argument("--updates", type=int, default=0,
                        help="bc: updates per policy (0: learner.pretrain_updates + 4 per label, at least 2000)")
    parser.add_argument("--round-episodes", type=int, default=4, help="classic: episodes per round")
    parser.add_argument("--rampdown", type=int, default=15, help="classic: rounds until beta is 0")
    parser.add_argument("--max-labels", type=int, default=20000, help="classic: label cap")
    parser.add_argument("--jobs", type=int, default=1, help="cells in parallel processes")
    parser.add_argument("--report-only", action="store_true", help="rebuild the table and plot from the cells")
    args = parser.parse_args()
    args.out = args.out or Path(tempfile.mkdtemp(prefix="label-efficiency-"))
    if args.report_only:
        report(args.out)
        return
    args.steps = STEPS | {task: int(n) for task, n in parse_pairs(args.steps).items()}
    args.ladder = [int(n) for n in args.ladder.split(",")]
    variants = parse_variants(args.variants)
    chosen = args.methods.split(",")
    if unknown := set(chosen) - set(METHODS):
        raise SystemExit(f"label_efficiency: unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    methods = ([f"dagger:{v}" for v in variants] if "dagger" in chosen else []) + [m for m in chosen if m != "dagger"]
    cells = [Cell(task, method, int(seed)) for task in args.tasks.split(",") for method in methods
             for seed in args.seeds.split(",")]
    todo = sorted((c for c in cells if not (args.out / "cells" / f"{c.name}.json").exists()), key=cost, reverse=True)
    say(f"label efficiency -> {args.out}: {len(cells)} cells, {len(cells) - len(todo)} done already")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for future in as_completed([pool.submit(run_cell, c, args, variants) for c in todo]):
            future.result()
    report(args.out)


if __name__ == "__main__":
    main()
