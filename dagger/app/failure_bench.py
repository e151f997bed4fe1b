"""`dagger bench` over failure modes: per experiment and seed, DAgger (the live loop, in-process) against behavior
cloning on as many labels, each policy then scored alone on held-out episodes under the experiment's conditions.

    rows = run_failure_bench(FailureBenchConfig(experiments=[{"name": "reach", "task": "point"}]), Path("bench/f"))
    summary = write_failure_report(Path("bench/f"))    # report.md/html, plots/ — from results.csv alone
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from dagger.app.bench import run_grid
from dagger.app.plots import plot_bars, plot_sweep
from dagger.app.report import write_pages
from dagger.checkpoint import resolve
from dagger.config import ConfigError, RunConfig, load_config, task_config
from dagger.evaluation import eval_seeds
from dagger.events import EventLog, read_events
from dagger.metrics import of_kind, summarize
from dagger.tasks import TaskConfig, make_task

METHODS = ("dagger", "bc")
COLUMNS = ("experiment", "task", "method", "seed", "condition", "labels", "updates", "episodes", "success_rate",
           "violation_rate", "mean_return", "wall_s")
AS_TRAINED = "as trained"
"""the condition of an empty eval override list: the task as the runs trained on it"""
MARGIN = 0.1
"""corrections fix a failure when DAgger's mean success is at least this far above BC's and its worst seed beats BC's
best seed"""


@dataclass
class Experiment:
    name: str = ""
    """names its runs: runs/<name>-<method>-<seed>/"""
    task: str = ""
    """the task both methods train on (dagger.tasks.TASKS)"""
    shows: str = ""
    """the failure it demonstrates, in a sentence (the report's column)"""
    run: list[str] = field(default_factory=list)
    """RunConfig settings on top of the bench's shared `run:`, key=value"""
    eval: list[list[str]] = field(default_factory=lambda: [[]])
    """task settings to evaluate under, one list per condition ([]: the task as trained)"""
    episodes: int = 0
    """held-out evaluation episodes per policy and condition (0: the bench's `episodes`)"""


KEYS = tuple(f.name for f in fields(Experiment))


@dataclass
class FailureBenchConfig:
    experiments: list[dict] = field(default_factory=list)
    """the experiments, each a mapping of Experiment's fields: name, task, shows, run, eval, episodes"""
    seeds: int = 3
    """seeds per experiment (each a DAgger run and a BC run)"""
    episodes: int = 50
    """held-out evaluation episodes per policy and condition"""
    run: list[str] = field(default_factory=lambda: ["robots=4", "steps=4000", "demos=2", "eval.every_versions=0",
                                                    "log.writers=[jsonl]"])
    """RunConfig settings every run shares, key=value"""
    workers: int = 2
    """experiment × seed jobs in parallel (processes)"""


def experiments(cfg: FailureBenchConfig) -> list[Experiment]:
    """The config's experiments, checked (names, keys, task, run and eval settings): a ConfigError names a wrong one."""
    out: list[Experiment] = []
    for i, entry in enumerate(cfg.experiments):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"bench config: experiment {name!r}" if isinstance(name, str) else f"bench config: experiments[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping of {', '.join(KEYS)}, got {entry!r}")
        unknown = [key for key in entry if key not in KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(KEYS)}")
        exp = Experiment(**entry)
        if not (isinstance(exp.name, str) and re.fullmatch(r"[\w.-]+", exp.name) and isinstance(exp.task, str)
                and exp.task and isinstance(exp.shows, str) and _texts(exp.run) and isinstance(exp.eval, list)
                and exp.eval and all(_texts(c) for c in exp.eval) and type(exp.episodes) is int and exp.episodes >= 0):
            raise ConfigError(f"{where}: needs a name (letters, digits, . _ -) and a task; shows is text, run a list "
                              "of key=value, eval a list of such lists and episodes a whole number")
        if exp.name in (e.name for e in out):
            raise ConfigError(f"{where}: a second experiment of that name")
        try:
            conditions(exp, run_config(cfg, exp, 0).task)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from err
        out.append(exp)
    return out


def _texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def run_config(cfg: FailureBenchConfig, exp: Experiment, seed: int) -> RunConfig:
    return load_config(None, [*cfg.run, f"task={exp.task}", *exp.run, f"seed={seed}"])


def condition_name(overrides: list[str]) -> str:
    """"camera_jitter=4" for ["task.camera_jitter=4"]: the task settings without their section."""
    return " ".join(o.removeprefix("task.") for o in overrides) or AS_TRAINED


def conditions(exp: Experiment, trained: TaskConfig) -> list[tuple[str, TaskConfig]]:
    """(name, task settings) of each condition the experiment evaluates under."""
    return [(condition_name(c), task_config(asdict(trained), c)) for c in exp.eval]


def trained_on(events: list[dict]) -> dict[str, Any]:
    """A run's labels (demonstration steps + operator steps), gradient updates and demonstrations' mean length, from
    its events."""
    start = of_kind(events, "policy_start")[0]
    summary = summarize(events)
    return {"labels": start["demo_steps"] + summary["human_steps"], "updates": summary["learner_updates"],
            "demo_length": start["demo_steps"] / start["demo_episodes"]}


def run_bc(cfg: RunConfig, run_dir: Path, wanted: dict[str, Any], source: str) -> None:
    """Behavior cloning from scripted demonstrations alone: ceil(labels / demo_length) episodes, `updates` gradient
    updates (`wanted`: trained_on of the DAgger run named `source`); events.jsonl and checkpoints/ in run_dir."""
    from workers.buffer import BufferWorker
    from workers.launch import collect_demos
    from workers.learner import Learner
    from workers.transport import LocalEndpoint

    cfg = replace(cfg, demos=math.ceil(wanted["labels"] / wanted["demo_length"]))
    task = make_task(cfg.task)
    run_dir.mkdir(parents=True)
    log = EventLog(run_dir / "events.jsonl")
    log.write([{"ev": "run_start", "t": time.time(), "method": "bc", "task": cfg.task.name, "seed": cfg.seed,
                "from": source, **wanted}])
    buffer = BufferWorker.for_run(run_dir / "segments", cfg)
    learner = Learner(cfg, task.obs_dim, task.act_dim, LocalEndpoint(buffer), checkpoints=run_dir / "checkpoints")
    demos = collect_demos(cfg, task)
    buffer.add(demos)
    log.write([{"ev": "policy_start", "t": time.time(), "source": "demos", "version": 0,
                "demo_episodes": len(demos), "demo_steps": sum(map(len, demos))}])
    learner.train(wanted["updates"])
    learner.publish()
    log.write(learner.stop()["events"] + buffer.poll()["events"])
    buffer.close()
    log.write([{"ev": "run_end", "t": time.time(), "reason": "done"}])
    log.close()


def evaluate_run(run_dir: Path, conds: list[tuple[str, TaskConfig]], episodes: int, train_s: float) -> list[dict]:
    """The run's final checkpoint alone on `episodes` held-out episodes per condition; writes run_dir/evals.json."""
    from dagger.app.evaluate import evaluate_checkpoint

    ckpt = resolve(run_dir)
    evals = [{"condition": name, "task_config": asdict(task),
              **evaluate_checkpoint(str(ckpt), task, eval_seeds(episodes))} for name, task in conds]
    result = {"checkpoint": str(ckpt.relative_to(run_dir)), "train_s": round(train_s, 1), "evals": evals}
    (run_dir / "evals.json").write_text(json.dumps(result, indent=2) + "\n")
    return evals


def run_dir_of(runs: Path, experiment: str, method: str, seed: int) -> Path:
    return runs / f"{experiment}-{method}-{seed}"


def run_pair(cfg: FailureBenchConfig, name: str, seed: int, job_dir: Path) -> dict[str, Any]:
    """One experiment and seed: the DAgger run, then BC on as many labels, both evaluated; their runs go beside
    job_dir (runs/<name>-<method>-<seed>/). Returns a line of progress (run_grid's row)."""
    from workers.launch import run_loop

    job_began = time.time()
    exp = next(e for e in experiments(cfg) if e.name == name)
    run_cfg = run_config(cfg, exp, seed)
    conds = conditions(exp, run_cfg.task)
    dagger_dir = run_dir_of(job_dir.parent, name, "dagger", seed)
    success: dict[str, float] = {}
    for method in METHODS:
        began, run_dir = time.time(), run_dir_of(job_dir.parent, name, method, seed)
        if method == "dagger":
            run_dir.mkdir(parents=True)
            run_loop(run_cfg, run_dir)
        else:
            run_bc(run_cfg, run_dir, trained_on(read_events(dagger_dir / "events.jsonl")), dagger_dir.name)
        evals = evaluate_run(run_dir, conds, exp.episodes or cfg.episodes, time.time() - began)
        success[method] = float(np.mean([e["success_rate"] for e in evals]))
    labels = trained_on(read_events(dagger_dir / "events.jsonl"))["labels"]
    return {"experiment": name, "seed": seed, "labels": labels, **success, "wall_s": round(time.time() - job_began, 1)}


def run_failure_bench(cfg: FailureBenchConfig, out: Path, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Every experiment × seed in cfg.workers processes; writes bench.json, runs/*/ and results.csv (then see
    write_failure_report)."""
    run_grid(cfg, out, [e.name for e in experiments(cfg)], "experiment", run_pair, progress)
    return write_results(out)


def write_results(out: Path) -> list[dict]:
    """results.csv, one row per experiment × method × seed × condition, read back from each run's events.jsonl
    (labels, updates) and evals.json (the scores) — in place of run_grid's one row per job."""
    cfg = json.loads((out / "bench.json").read_text())
    rows = []
    for exp in [Experiment(**entry) for entry in cfg["experiments"]]:
        for method in METHODS:
            for seed in range(cfg["seeds"]):
                run_dir = run_dir_of(out / "runs", exp.name, method, seed)
                events = read_events(run_dir / "events.jsonl")
                trained = trained_on(events)
                result = json.loads((run_dir / "evals.json").read_text())
                rows += [{"experiment": exp.name, "task": of_kind(events, "run_start")[0]["task"], "method": method,
                          "seed": seed, "condition": e["condition"], "labels": trained["labels"],
                          "updates": trained["updates"], "episodes": e["episodes"], "success_rate": e["success_rate"],
                          "violation_rate": e["violation_rate"], "mean_return": round(e["mean_return"], 4),
                          "wall_s": result["train_s"]} for e in result["evals"]]
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_results(out: Path) -> list[dict]:
    """results.csv's rows, numbers as numbers."""
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{out / 'results.csv'}: no rows to report on")
    numbers = {"seed", "labels", "updates", "episodes", "success_rate", "violation_rate", "mean_return", "wall_s"}
    return [{k: float(v) if k in numbers else v for k, v in row.items()} for row in rows]


def spread(values: list[float]) -> list[float]:
    """[mean, min, max]."""
    return [float(np.mean(values)), min(values), max(values)]


def verdict(dagger: list[float], bc: list[float]) -> str:
    """Whether corrections fix the failure, from the seeds' success rates (the rule of MARGIN)."""
    if np.mean(dagger) - np.mean(bc) < MARGIN:
        return "no"
    return "yes" if min(dagger) > max(bc) else "unclear"


def method_stats(seeds: list[dict]) -> dict[str, Any]:
    """One method's rows of one experiment and condition (a row per seed): seeds, mean labels and updates, and the
    success and violation rates as [mean, min, max]."""
    return {"seeds": len(seeds), "labels": float(np.mean([r["labels"] for r in seeds])),
            "updates": float(np.mean([r["updates"] for r in seeds])),
            **{k: spread([r[k] for r in seeds]) for k in ("success_rate", "violation_rate")}}


def summarize_results(rows: list[dict]) -> dict[str, dict[str, dict[str, Any]]]:
    """experiment -> condition -> method -> method_stats, and "corrections fix it?" (verdict) per condition; in
    results.csv's order."""
    grouped: dict[str, dict[str, dict[str, list[dict]]]] = {}
    for row in rows:
        grouped.setdefault(row["experiment"], {}).setdefault(row["condition"], {}).setdefault(row["method"], [])
        grouped[row["experiment"]][row["condition"]][row["method"]].append(row)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for name, per_condition in grouped.items():
        for condition, per_method in per_condition.items():
            stats: dict[str, Any] = {m: method_stats(seeds) for m, seeds in per_method.items()}
            success = [[r["success_rate"] for r in per_method.get(m, [])] for m in METHODS]
            stats["corrections fix it?"] = verdict(*success) if all(success) else ""
            summary.setdefault(name, {})[condition] = stats
    return summary


def _cell(value: list[float]) -> str:
    mean, lo, hi = value
    return f"{mean:.2f} ({lo:.2f}–{hi:.2f})"


def failure_table(summary: dict, shows: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """The report's table: one row per experiment × condition × method; the failure on an experiment's first row,
    the verdict on DAgger's rows."""
    head = ["experiment", "failure it shows", "condition", "method", "labels", "success rate", "violation rate",
            "corrections fix it?"]
    rows = [[name, "", condition, method, f"{m['labels']:.0f}", _cell(m["success_rate"]),
             _cell(m["violation_rate"]), per_method["corrections fix it?"] if method == "dagger" else ""]
            for name, per_condition in summary.items() for condition, per_method in per_condition.items()
            for method, m in per_method.items() if method in METHODS]
    for i, row in enumerate(rows):
        if i == 0 or rows[i - 1][0] != row[0]:
            row[1] = shows.get(row[0], "")
    return head, rows


def sweep(exp: Experiment) -> tuple[str, list[float]] | None:
    """The setting an experiment's conditions sweep and its values, when each condition sets that one setting to a
    number (a curve to draw); else None."""
    settings = [c[0].split("=", 1)[0] if len(c) == 1 else "" for c in exp.eval]
    if len(exp.eval) < 2 or not settings[0] or len(set(settings)) > 1:
        return None
    values = [yaml.safe_load(c[0].split("=", 1)[1]) for c in exp.eval]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return settings[0].removeprefix("task."), [float(v) for v in values]


def plot_failures(out: Path, rows: list[dict], exps: list[Experiment]) -> dict[str, str]:
    """plots/success.png (every experiment × condition) and plots/<experiment>.png for each sweep; returns alt text ->
    path from the bench dir."""
    def seeds(exp: str, condition: str, method: str) -> list[float]:
        return [r["success_rate"] for r in rows if (r["experiment"], r["condition"], r["method"]) == (exp, condition,
                                                                                                       method)]

    groups = list(dict.fromkeys((r["experiment"], r["condition"]) for r in rows))
    labels = [exp if condition == AS_TRAINED else f"{exp}: {condition}" for exp, condition in groups]
    plot_bars(out / "plots" / "success.png", labels, {m: [seeds(*g, m) for g in groups] for m in METHODS},
              "policy-alone success (held-out seeds)", title="success by experiment and method", ylim=(0, 1.05))
    images = {"success by experiment and method": "plots/success.png"}
    for exp in exps:
        swept = sweep(exp)
        if swept is None:
            continue
        setting, x = swept
        names = [condition_name(c) for c in exp.eval]
        lines = {m: np.array([seeds(exp.name, c, m) for c in names]).T for m in METHODS}
        plot_sweep(out / "plots" / f"{exp.name}.png", x, lines, setting, "policy-alone success (held-out seeds)",
                   title=f"{exp.name}: success against {setting}", ylim=(-0.02, 1.02))
        images[f"{exp.name}: success against {setting}"] = f"plots/{exp.name}.png"
    return images


def write_failure_report(out: Path) -> dict:
    """report.md, report.html and plots/ from results.csv (and bench.json for the experiments); returns the summary."""
    rows = read_results(out)
    cfg = json.loads((out / "bench.json").read_text())
    exps = [Experiment(**entry) for entry in cfg["experiments"]]
    summary = summarize_results(rows)
    images = plot_failures(out, rows, exps)
    intro = [f"seeds={cfg['seeds']}; every run: {' '.join(cfg['run'])}; per experiment: "
             + "; ".join(f"{e.name}: {' '.join([f'task={e.task}', *e.run])}, {e.episodes or cfg['episodes']} held-out "
                         "episodes per policy and condition" for e in exps),
             "dagger: the live loop (scripted operator), its final checkpoint. bc: behavior cloning on scripted "
             "demonstrations alone, ceil(labels / the dagger run's mean demonstration length) episodes, with the "
             "dagger run's gradient updates. labels = demonstration steps + operator steps (each run's events.jsonl).",
             f"Success and violation rate of the policy alone: mean (min–max) over seeds. Corrections fix it? yes when "
             f"dagger's mean success is at least {MARGIN:.2f} above bc's and dagger's worst seed beats bc's best; "
             "unclear when the means differ by that much but the seeds overlap; no otherwise."]
    head, table = failure_table(summary, {e.name: e.shows for e in exps})
    write_pages(out, f"Failure modes: {out.name}", intro, head, table, images)
    return summary


def print_failure_table(out: Path, summary: dict, console: Console | None = None) -> None:
    """The report's table in the terminal (the failures each experiment shows listed under it), then where the
    report and plots are."""
    console = console or Console()
    shows = {e["name"]: e.get("shows", "") for e in json.loads((out / "bench.json").read_text())["experiments"]}
    head, rows = failure_table(summary, shows)
    table = Table(title=f"{out.name}: mean (min–max) over seeds", title_justify="left")
    for column in head[:1] + head[2:]:
        table.add_column(column, no_wrap=column in ("method", "labels", "success rate", "violation rate"))
    for row in rows:
        table.add_row(*row[:1], *row[2:])
    console.print(table)
    for name, text in shows.items():
        console.print(f"{name}: {text}" if text else name)
    console.print(f"report: {out / 'report.md'}  plots: {out / 'plots'}")
