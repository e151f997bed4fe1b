"""The loop as a library, without Ray: compare three gates on the numpy point task.

    python examples/in_process_loop.py

Each run writes its own run dir (events.jsonl, segment log, config) under a temp folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dagger.config import load_config
from workers.launch import run_loop

COMMON = ["task=point", "robots=4", "steps=4000", "demos=2", "learner.batch_size=64", "gate.threshold=0.01",
          "gate.rate=0.05"]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dagger-example-"))
    print(f"{'gate':10} {'interventions':>14} {'by quarter':>28} {'autonomous successes':>22}")
    for gate in ("never", "random", "ensemble"):
        run_dir = root / gate
        run_dir.mkdir()
        summary = run_loop(load_config(None, [*COMMON, f"gate.name={gate}"]), run_dir)
        quarters = " ".join(f"{x:.2f}" for x in summary["intervention_rate_by_quarter"])
        print(f"{gate:10} {summary['intervention_rate']:14.3f} {quarters:>28} "
              f"{summary['autonomous_successes']:>10}/{summary['episodes']}")
    print(f"runs in {root}")


if __name__ == "__main__":
    main()
