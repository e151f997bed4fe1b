"""Do the `auto` and `thrifty` gates hold their target rate? Achieved vs target α on one robot (in-process).

Both ask when the ensemble's spread is above a quantile of the spread over recent robot-controlled
states, its level corrected by the rate achieved (gate.adapt; "auto, adapt=0" is the plain (1−α)
quantile, which lags a falling spread); thrifty also asks when the goal critic's safety is below its α
quantile, so it should land between α and 2α. Achieved rate = help requests / (policy steps + requests),
recomputed from each run's events.jsonl, over the whole run and over its second half.

    python benchmarks/gate_alpha.py [--task point] [--steps 6000] [--plot examples/gate_alpha.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dagger.app.plots import plot_alpha_sweep
from dagger.config import load_config
from dagger.events import read_events
from dagger.metrics import achieved_rate, achieved_rate_by_window
from workers.launch import run_loop

GATES, ALPHAS = (("auto", None), ("auto", 0.0), ("thrifty", None)), (0.01, 0.05, 0.1)
"""(gate, gate.adapt: None for its default)"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="point")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--plot", type=Path, help="also save achieved vs target α as this PNG")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gate-alpha-"))
    print(f"task {args.task}, 1 robot, {args.steps} steps, quantiles over the last 500 robot states")
    print(f"{'gate':15} {'target alpha':>12} {'achieved':>9} {'2nd half':>9} {'takeovers':>10} "
          f"{'intervention rate':>18}")
    points: dict[str, list[tuple[float, float]]] = {}
    for gate, adapt in GATES:
        label = gate if adapt is None else f"{gate}, adapt={adapt:g}"
        for alpha in ALPHAS:
            run_dir = root / f"{gate}-{adapt}-{alpha}"
            run_dir.mkdir()
            cfg = load_config(None, [f"task={args.task}", "robots=1", f"steps={args.steps}", f"gate.name={gate}",
                                     f"gate.alpha={alpha}", "gate.window=500", "learner.batch_size=64",
                                     *([] if adapt is None else [f"gate.adapt={adapt}"])])
            summary = run_loop(cfg, run_dir)
            events = read_events(run_dir / "events.jsonl")
            rate, late = achieved_rate(events), achieved_rate_by_window(events, 2)[1]
            points.setdefault(label, []).append((alpha, late))
            print(f"{label:15} {alpha:12.2f} {rate:9.3f} {late:9.3f} {summary['takeovers']:10d} "
                  f"{summary['intervention_rate']:18.3f}")
    if args.plot:
        plot_alpha_sweep(args.plot, points, title=f"{args.task}, 1 robot: second half of each run")
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
