"""The demo on several seeds, as the README's table: the intervention rate and the share of episodes solved
without a human step in each quarter of the run, the final policy alone on 100 held-out episodes
(`dagger eval`, with its 95 % Wilson interval) and the wall time. Each seed is a real `dagger start --robots 4`, with
each policy family asked for.

    python benchmarks/demo_seeds.py [--seeds 3] [--policies mlp-ensemble,diffusion] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def dagger(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dagger.app.cli", *args], check=True, stdout=subprocess.DEVNULL)


def row(policy: str, seed: int, out: Path) -> str:
    run = out / f"{policy}-seed{seed}"
    began = time.time()
    dagger("start", "--robots", "4", "--policy", policy, "--seed", str(seed), "--run-dir", str(run))
    wall = time.time() - began
    dagger("eval", str(run), "--episodes", "100")
    summary, ev = json.loads((run / "summary.json").read_text()), json.loads((run / "eval.json").read_text())
    low, high = ev["ci95"]
    arrow = " → ".join
    return (f"| {policy} | {seed} | {arrow(f'{x:.2f}' for x in summary['intervention_rate_by_quarter'])} | "
            f"{arrow(f'{x:.2f}' for x in summary['autonomous_success_by_quarter'])} | "
            f"{ev['successes']}/{ev['episodes']} (95 %: {low:.2f}–{high:.2f}) | {wall:.0f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--policies", default="mlp-ensemble", help="policy families, comma-separated")
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="demo-seeds-"))
    print("| policy | seed | intervention rate by quarter | autonomous success by quarter | policy alone at the end "
          "(100 held-out episodes) | wall time |")
    print("|---|---|---|---|---|---|")
    for policy in args.policies.split(","):
        for seed in range(args.seeds):
            print(row(policy, seed, out), flush=True)


if __name__ == "__main__":
    main()
