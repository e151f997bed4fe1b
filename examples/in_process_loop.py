"""The loop as a library, without Ray: compare three gate families on the numpy point task.

    python examples/in_process_loop.py

ensemble: a fixed spread threshold; thrifty: novelty or risk, tuned to a target rate α; lazy: a learned
discrepancy classifier with hysteresis. The operator keeps control until the gate hands back (ensemble
has no rule of its own: it hands back after the policy agreed with the operator 3 steps in a row).
Each run writes its own run dir (events.jsonl, segment log, config) under a temp folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dagger.config import load_config
from workers.launch import run_loop

COMMON = ["task=point", "robots=4", "steps=4000", "demos=2", "learner.batch_size=64", "gate.threshold=0.01",
          "gate.alpha=0.05", "operator.style=until_done", "gate.agree_steps=3"]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dagger-example-"))
    print(f"{'gate':9} {'interventions':>13} {'by quarter':>24} {'takeovers':>9} {'mean length':>11} "
          f"{'autonomous successes':>20}")
    for gate in ("ensemble", "thrifty", "lazy"):
        run_dir = root / gate
        run_dir.mkdir()
        s = run_loop(load_config(None, [*COMMON, f"gate.name={gate}"]), run_dir)
        quarters = " ".join(f"{x:.2f}" for x in s["intervention_rate_by_quarter"])
        length = s["human_steps"] / max(1, s["takeovers"])
        print(f"{gate:9} {s['intervention_rate']:13.3f} {quarters:>24} {s['takeovers']:9d} {length:11.1f} "
              f"{s['autonomous_successes']:>14}/{s['episodes']}")
    print(f"runs in {root}")


if __name__ == "__main__":
    main()
