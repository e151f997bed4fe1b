"""Does the `auto` gate hold its target rate? Achieved vs target α on one robot (in-process).

The auto gate asks when the ensemble's spread is above the (1−α) quantile of the spread over recent
robot-controlled states, so on those states it should ask at about rate α. Achieved rate =
help requests / steps the policy controlled, recomputed from each run's events.jsonl.

    python benchmarks/gate_alpha.py [--task point] [--steps 6000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dagger.config import load_config
from dagger.events import read_events
from dagger.report import achieved_rate
from workers.launch import run_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="point")
    parser.add_argument("--steps", type=int, default=6000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gate-alpha-"))
    print(f"task {args.task}, 1 robot, {args.steps} steps, gate auto, quantile over the last 500 robot states")
    print(f"{'target alpha':>12} {'achieved':>9} {'takeovers':>10} {'intervention rate':>18}")
    for alpha in (0.01, 0.05, 0.1):
        run_dir = root / f"alpha-{alpha}"
        run_dir.mkdir()
        cfg = load_config(None, [f"task={args.task}", "robots=1", f"steps={args.steps}", "gate.name=auto",
                                 f"gate.alpha={alpha}", "gate.window=500", "learner.batch_size=64"])
        summary = run_loop(cfg, run_dir)
        rate = achieved_rate(read_events(run_dir / "events.jsonl"))
        print(f"{alpha:12.2f} {rate:9.3f} {summary['takeovers']:10d} {summary['intervention_rate']:18.3f}")


if __name__ == "__main__":
    main()
