"""Nudges against takeovers (issue 29): the real loop in-process (`dagger start --in-process`'s defaults for the task)
with scripted operators that either take over (operator.mode=takeover: the noisy expert drives) or nudge
(operator.mode=nudge: the policy keeps acting, the operator adds clip(expert + noise - policy) within
operator.nudge_bound; a push held beyond the bound for operator.nudge_to_takeover_s becomes a takeover). Same fleet,
gate, operators and fleet steps for both; per cell:

- human effort: human steps (taken over + nudged) and human time (those steps times the control period, task time);
- ROHE: 1000 x successes during the run / (human steps + 1) (dagger.fleet_metrics);
- policy-alone success on --episodes held-out episodes at about --points checkpoints, so the two modes compare at the
  same human-effort budget (the most human steps both modes reached on that seed; each mode's success there is
  linear between its scored checkpoints around it), and at the run's end.

One JSON per cell (task x mode x seed) in --out/cells, so a run resumes; --report-only rebuilds nudge_bench.png and
the Markdown table (stdout) from them. Progress goes to stderr.

    python benchmarks/nudge_bench.py --out /tmp/nudge --tasks reacher,reach --seeds 0,1 --jobs 2
    python benchmarks/nudge_bench.py --out /tmp/nudge --report-only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("takeover", "nudge")
PER_VERSION = ["learner.checkpoint_every=1", "learner.checkpoint_keep=1000000"]
"""what the runs add to measure: a checkpoint of every published version"""


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_cell(task: str, mode: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Runs one cell from scratch and writes its JSON."""
    import torch

    from dagger.app.label_bench import dagger_points, score, spread_over
    from dagger.checkpoint import policy_from, read_checkpoint
    from dagger.config import load_config
    from dagger.events import read_events
    from dagger.fleet_metrics import rohe
    from dagger.metrics import summarize
    from dagger.tasks import make_task
    from workers.launch import run_loop

    torch.set_num_threads(1)
    name = f"{task}_{mode}_s{seed}"
    work = args.out / "runs" / name
    shutil.rmtree(work, ignore_errors=True)  # a cell killed half-way starts again
    began = time.perf_counter()
    overrides = [f"task.name={task}", f"seed={seed}", f"steps={args.steps}", f"operator.mode={mode}",
                 f"operator.nudge_to_takeover_s={args.to_takeover_s}", *args.overrides]
    cfg = load_config(None, [*overrides, *PER_VERSION])
    run_loop(cfg, work)
    events = read_events(work / "events.jsonl")
    summary = summarize(events)
    demo_steps = sum(e.get("demo_steps", 0) for e in events if e["ev"] == "policy_start")
    tsk = make_task(cfg.task)
    points = dagger_points(events)
    chosen = [points[i] for i in spread_over([p["labels"] for p in points], args.points)]
    for p in chosen:
        p.update(score(policy_from(read_checkpoint(p["path"]), tsk), tsk, args.episodes))
        p["human_steps"] = p["labels"] - demo_steps
        say(f"[{name}] v{p['version']}: {p['human_steps']} human steps -> {p['success']:.2f}")
    human = summary["human_steps"]
    record = {"task": task, "mode": mode, "seed": seed, "overrides": overrides, "episodes": args.episodes,
              "human_steps": human, "nudged_steps": summary["nudged_steps"], "human_s": round(human * tsk.dt, 2),
              "helps": summary["takeovers"], "escalations": summary["nudge_escalations"],
              "run_successes": summary["successes"], "run_episodes": summary["episodes"],
              "rohe": round(rohe(summary["successes"], human), 2), "points": chosen,
              "wall_s": round(time.perf_counter() - began, 1)}
    path = args.out / "cells" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(record, indent=1))
    path.with_suffix(".tmp").replace(path)
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    say(f"[{name}] done in {record['wall_s']:.0f} s")
    return record


def at_budget(points: list[dict[str, Any]], budget: float) -> float:
    """Success at `budget` human steps, linear between the scored checkpoints around it."""
    pts = sorted(points, key=lambda p: p["human_steps"])
    return float(np.interp(budget, [p["human_steps"] for p in pts], [p["success"] for p in pts]))


def summarise(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per task and mode: medians over seeds, success compared at each seed's shared human-step budget."""
    rows = []
    by = {(c["task"], c["mode"], c["seed"]): c for c in cells}
    for task in sorted({c["task"] for c in cells}):
        seeds = sorted({s for t, _, s in by if t == task and all((task, m, s) in by for m in MODES)})
        budget = {s: min(max(p["human_steps"] for p in by[task, m, s]["points"]) for m in MODES) for s in seeds}
        for mode in MODES:
            mine = [by[task, mode, s] for s in seeds]
            if not mine:
                continue
            last = [max(c["points"], key=lambda p: p["human_steps"])["success"] for c in mine]
            rows.append({"task": task, "mode": mode, "seeds": len(mine),
                         "human_steps": np.median([c["human_steps"] for c in mine]),
                         "nudged_steps": np.median([c["nudged_steps"] for c in mine]),
                         "human_s": np.median([c["human_s"] for c in mine]),
                         "helps": np.median([c["helps"] for c in mine]),
                         "escalations": np.median([c["escalations"] for c in mine]),
                         "rohe": np.median([c["rohe"] for c in mine]),
                         "budget": np.median([budget[s] for s in seeds]),
                         "at_budget": np.median([at_budget(c["points"], budget[c["seed"]]) for c in mine]),
                         "final": np.median(last), "final_lo": min(last), "final_hi": max(last)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| task | mode | seeds | human steps (nudged) | human time (s) | helps (escalated) | ROHE | "
            "success at equal budget (human steps) | success after the run |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in rows:
        spread = f" ({r['final_lo']:.2f}–{r['final_hi']:.2f})" if r["seeds"] > 1 else ""
        lines.append(f"| {r['task']} | {r['mode']} | {r['seeds']} | {r['human_steps']:,.0f} ({r['nudged_steps']:,.0f}) "
                     f"| {r['human_s']:.1f} | {r['helps']:.0f} ({r['escalations']:.0f}) | {r['rohe']:.1f} | "
                     f"{r['at_budget']:.2f} ({r['budget']:,.0f}) | {r['final']:.2f}{spread} |")
    return "\n".join(lines)


def plot(path: Path, cells: list[dict[str, Any]]) -> None:
    """One panel per task: policy-alone success against human steps, each seed a thin line, the two modes coloured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({c["task"] for c in cells})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.4 * len(tasks), 3.6), sharey=True, squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for i, mode in enumerate(MODES):
            for c in (c for c in cells if c["task"] == task and c["mode"] == mode):
                pts = sorted(c["points"], key=lambda p: p["human_steps"])
                ax.plot([p["human_steps"] for p in pts], [p["success"] for p in pts], marker="o", markersize=3,
                        color=f"C{i}", alpha=0.8, label=mode if c["seed"] == min(
                            d["seed"] for d in cells if d["task"] == task and d["mode"] == mode) else None)
        ax.set(title=task, xlabel="human steps (taken over or nudged)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, loc="lower right")
    axes[0][0].set(ylabel="policy-alone success (held-out)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/nudge-bench"))
    p.add_argument("--tasks", default="reacher,reach")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=4000, help="fleet steps per run")
    p.add_argument("--episodes", type=int, default=50, help="held-out episodes per scored checkpoint")
    p.add_argument("--points", type=int, default=5, help="checkpoints scored per run (spread over its labels)")
    p.add_argument("--to-takeover-s", type=float, default=0.1, help="operator.nudge_to_takeover_s")
    p.add_argument("--overrides", default="", help="more config overrides, comma separated (key=value)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    args.overrides = [o.strip() for o in args.overrides.split(",") if o.strip()]
    if not args.report_only:
        done = {path.stem for path in (args.out / "cells").glob("*.json")}
        todo = [(t, m, int(s)) for t in args.tasks.split(",") for s in args.seeds.split(",") for m in MODES
                if f"{t}_{m}_s{s}" not in done]
        with ProcessPoolExecutor(args.jobs) as pool:
            for future in as_completed([pool.submit(run_cell, *cell, args) for cell in todo]):
                future.result()
    cells = [json.loads(path.read_text()) for path in sorted((args.out / "cells").glob("*.json"))]
    if not cells:
        raise SystemExit(f"nudge_bench: no cells in {args.out / 'cells'}")
    plot(args.out / "nudge_bench.png", cells)
    print(table(summarise(cells)))


if __name__ == "__main__":
    main()
