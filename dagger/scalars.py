"""Live scalars: SB3-style namespaced numbers computed from the event stream while a run goes, handed every
`every_s` seconds (of event time) to pluggable writers: scalars.jsonl, TensorBoard, stdout, Weights & Biases.

    logger = ScalarLogger(make_writers(["jsonl", "tensorboard"], run_dir), every_s=5.0)
    logger.add(events)          # as they are logged; writes when event time passes the next multiple of every_s
    logger.close()              # the last values, then closes the writers

The keys: fleet/… (steps and human steps the buffer kept, human steps taken, intervention rate, takeovers, help
requests, episodes, success rates over the last WINDOW episodes), gate/threshold, learner/… (updates, loss,
version), buffer/human_steps_stored, eval/… (success rate and its interval, version), gate/target_alpha and
gate/achieved_rate for gates tuned to a rate, robot/<i>/… and operator/<j>/…. The step axis is fleet
steps. Everything is also recomputable from events.jsonl: `dagger report --tensorboard` replays it here.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dagger.metrics import ALPHA_GATES, ask_rate, kept_keys, segment_key

WINDOW = 20
"""episodes the fleet's success rates are averaged over"""
WRITERS = ("jsonl", "tensorboard", "stdout", "wandb")


class Writer(Protocol):
    def write(self, step: int, t: float, scalars: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class ScalarLogger:
    """fleet/steps and fleet/human_steps count what the buffer kept, as dagger.metrics.summarize does: live, an
    operator's segment counts when its `stored` event arrives (fleet/human_steps_taken counts it when it closes) and
    is taken back when a `log_lost` names it; a replay passes `kept` (metrics.kept_keys), the segments to count."""

    def __init__(self, writers: list[Writer], every_s: float = 5.0, kept: set[str] | None = None):
        self.writers, self.every_s, self.kept = writers, every_s, kept
        self.waiting: dict[str, dict] = {}  # operators' segments closed, not yet acknowledged durable
        # the earlier runs' segments counted (absorb), by robot:seq, for the log_lost a resumed run logs to take back
        self.counted: dict[str, dict] = {}
        self.absorbing = False
        self.values: dict[str, float] = {}
        self.step, self.t = 0, 0.0
        self.next_t: float | None = None  # when the next write is due (set by the first event)
        self.episodes: deque[tuple[bool, bool]] = deque(maxlen=WINDOW)  # (success, autonomous success)
        self.dirty = False

    def _count(self, key: str, by: float = 1.0) -> None:
        self.values[key] = self.values.get(key, 0.0) + by

    def add(self, events: list[dict]) -> None:
        for e in events:
            self._take(e)
            self.t = max(self.t, float(e.get("t", self.t)))
            self.dirty = True
        if self.next_t is None and self.dirty:
            self.next_t = self.t + self.every_s
        if self.next_t is not None and self.t >= self.next_t:
            self.flush()
            self.next_t = self.t + self.every_s

    def absorb(self, events: list[dict]) -> None:
        """Counts what a resumed run's earlier runs logged, writing nothing (their scalars are written already)."""
        self.absorbing = True
        for e in events:
            self._take(e)
            self.t = max(self.t, float(e.get("t", self.t)))
        self.absorbing = False

    def _take(self, e: dict) -> None:
        kind, v = e["ev"], self.values
        robot = f"robot/{e['robot']}/" if isinstance(e.get("robot"), int) and e["robot"] >= 0 else None
        if kind == "run_start" and e.get("gate") in ALPHA_GATES and isinstance(e.get("alpha"), float):
            v["gate/target_alpha"] = e["alpha"]  # a gate tuned to ask on a fraction α of steps
        elif kind == "segment" and e["controller"] != "demo":
            key, human = segment_key(e), e["controller"] != "policy"
            self._count("fleet/human_steps_taken", e["steps"] * human)
            if self.kept is not None:
                if key in self.kept:
                    self._segment(e)
            elif human and not e.get("recovered"):
                self.waiting[key] = e
            else:
                self._segment(e)
        elif kind == "log_lost":
            for key in e.get("keys", []):
                if key in self.counted:
                    self._segment(self.counted.pop(key), -1)
        elif kind == "episode_end":
            self.episodes.append((bool(e["success"]), bool(e["success"]) and e["human_steps"] == 0))
            self._count("fleet/episodes")
            v["fleet/success_rate"] = sum(s for s, _ in self.episodes) / len(self.episodes)
            v["fleet/autonomous_success_rate"] = sum(a for _, a in self.episodes) / len(self.episodes)
            if robot:
                self._count(robot + "episodes")
                self._count(robot + "successes", bool(e["success"]))
        elif kind == "takeover":
            self._count("fleet/takeovers")
            self._count(f"operator/{e['operator']}/takeovers")
        elif kind == "help_requested":
            self._count("fleet/help_requests")
            v["gate/threshold"] = float(e["threshold"])
        elif kind == "operator_assigned":
            v[f"operator/{e['operator']}/queued_s"] = float(e["queued_s"])
        elif kind == "learner":
            v["learner/updates"] = float(e["updates"])
            if e.get("loss") is not None:
                v["learner/loss"] = float(e["loss"])
        elif kind == "weights_published":
            v["learner/version"] = float(e["version"])
        elif kind == "stored":
            self._count("buffer/human_steps_stored", e["steps"])
            if segment_key(e) in self.waiting:
                self._segment(self.waiting.pop(segment_key(e)))
        if "gate/target_alpha" in v and kind in ("segment", "stored", "log_lost", "help_requested"):
            asks = v.get("fleet/help_requests", 0.0)
            policy = v.get("fleet/steps", 0.0) - v.get("fleet/human_steps", 0.0)
            v["gate/achieved_rate"] = ask_rate(asks, policy)
        if kind == "eval":
            v.update({"eval/success_rate": float(e["success_rate"]), "eval/version": float(e["version"]),
                      "eval/ci95_low": float(e["ci95"][0]), "eval/ci95_high": float(e["ci95"][1])})

    def _segment(self, e: dict, sign: int = 1) -> None:
        """Counts a kept segment's steps (sign -1: takes them back)."""
        human, steps = e["controller"] != "policy", sign * e["steps"]
        self.step += steps
        self._count("fleet/steps", steps)
        self._count("fleet/human_steps", steps * human)
        self.values["fleet/intervention_rate"] = self.values["fleet/human_steps"] / max(1.0, self.values["fleet/steps"])
        if isinstance(e.get("robot"), int) and e["robot"] >= 0:
            self._count(f"robot/{e['robot']}/steps", steps)
            self._count(f"robot/{e['robot']}/human_steps", steps * human)
        if sign > 0 and self.absorbing:  # a log_lost names only segments of runs before the one that logs it
            self.counted[segment_key(e)] = {k: e[k] for k in ("robot", "controller", "steps")}

    def flush(self) -> None:
        if self.dirty:
            for writer in self.writers:
                writer.write(self.step, self.t, dict(self.values))
            self.dirty = False

    def close(self) -> None:
        self.flush()
        for writer in self.writers:
            writer.close()


class JsonlWriter:
    """One line per write: {"step", "t", key: value, ...}."""

    def __init__(self, path: Path):
        self.file = path.open("a", encoding="utf-8")

    def write(self, step: int, t: float, scalars: dict[str, float]) -> None:
        self.file.write(json.dumps({"step": step, "t": t, **scalars}, separators=(",", ":")) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class TensorBoardWriter:
    def __init__(self, log_dir: Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def write(self, step: int, t: float, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step, walltime=t)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class StdoutWriter:
    """A line of the fleet's and learner's numbers (robot/ and operator/ keys stay in the files)."""

    def write(self, step: int, t: float, scalars: dict[str, float]) -> None:
        shown = {k: v for k, v in scalars.items() if not k.startswith(("robot/", "operator/"))}
        print(f"step {step}: " + "  ".join(f"{k} {v:.4g}" for k, v in sorted(shown.items())), flush=True)

    def close(self) -> None:
        pass


class WandbWriter:
    """Weights & Biases, when installed (pip install wandb) and asked for; offline unless WANDB_MODE says else."""

    def __init__(self, run_dir: Path, project: str, config: dict[str, Any]):
        import wandb

        self.run = wandb.init(project=project, dir=str(run_dir), name=run_dir.name, config=config)

    def write(self, step: int, t: float, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


def make_writers(names: list[str], run_dir: Path, project: str = "dagger",
                 config: dict[str, Any] | None = None) -> list[Writer]:
    """The writers named (see WRITERS): scalars.jsonl and tb/ in run_dir, stdout, or a wandb run."""
    makers: dict[str, Callable[[], Writer]] = {
        "jsonl": lambda: JsonlWriter(run_dir / "scalars.jsonl"),
        "tensorboard": lambda: TensorBoardWriter(run_dir / "tb"),
        "stdout": StdoutWriter,
        "wandb": lambda: WandbWriter(run_dir, project, config or {})}
    return [makers[name]() for name in names]


def replay(events: list[dict], writers: list[Writer], every_s: float = 5.0) -> None:
    """Writes a finished run's scalars from its events, as the live logger would have."""
    logger = ScalarLogger(writers, every_s, kept=kept_keys(events))
    for event in events:
        logger.add([event])
    logger.close()
