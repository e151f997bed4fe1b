"""Fleet benchmark metrics, recomputed from a run's `fleet_step` events.

Return on human effort, as dagger pins it:

    ROHE = 1000 · successes / (human_actions + 1)     # successes per thousand human actions

(the IFL benchmark's ASA fork uses successes / (human_actions + 1); ours is that, per thousand).

`ifl` mode reproduces the Fleet-DAgger benchmark code's definitions (plotting/process_logs.py):
successes, constraint violations, hard resets (robot-steps with an operator assigned while in a
constraint state), human actions (robot-steps with an operator assigned), idle time (robot-steps
blocked in a constraint state), context switches, reward, and its ROHE variant
`successes − 0.01 · human_actions`.
"""

from __future__ import annotations

import numpy as np

TOTALS = ("successes", "violations", "hard_resets", "human_actions", "idle", "switches", "reward")


def rohe(successes: float, human_actions: float) -> float:
    return 1000.0 * successes / (human_actions + 1.0)


def fleet_summary(events: list[dict], mode: str = "dagger") -> dict[str, float]:
    steps = [e for e in events if e["ev"] == "fleet_step"]
    totals = {k: float(sum(e[k] for e in steps)) for k in TOTALS}
    if mode == "ifl":
        return {**totals, "rohe_ifl": totals["successes"] - 0.01 * totals["human_actions"]}
    robots = next((e["robots"] for e in events if e["ev"] == "run_start"), 1)
    return {**totals, "steps": float(len(steps)), "rohe": rohe(totals["successes"], totals["human_actions"]),
            "intervention_rate": totals["human_actions"] / max(1, len(steps) * robots)}


def cumulative(events: list[dict], key: str) -> np.ndarray:
    return np.cumsum([e[key] for e in events if e["ev"] == "fleet_step"])
