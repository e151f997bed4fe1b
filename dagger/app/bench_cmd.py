"""`dagger bench`: a bench config's methods x seeds under a progress bar, then its table; bare, the plan of the
default fleet bench.

    dagger bench configs/bench/gates.yaml --seeds 3
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dagger.app.errors import UserError
from dagger.app.start import check_run_dir


def bench_plan(cfg: Any) -> str:
    """What the default fleet bench runs, and roughly how long on this machine's cores."""
    runs = len(cfg.allocators) * cfg.seeds
    minutes = runs * cfg.steps * cfg.robots / BENCH_STEPS_PER_S / max(1, min(cfg.workers, os.cpu_count() or 1)) / 60
    return (f"the default fleet bench: {len(cfg.allocators)} allocators ({', '.join(cfg.allocators)}) x {cfg.seeds} "
            f"seeds = {runs} runs of {cfg.robots} robots, {cfg.humans} operators, {cfg.steps} fleet steps each; "
            f"about {minutes:.0f} min")


BENCH_STEPS_PER_S = 25_000
"""robot steps per second one bench process takes (100 robots, batched), so that the default bench's 15 runs take
the 5 minutes it took on this project's 2-core machines"""


def cmd_bench(args: argparse.Namespace) -> int:

    from dagger.allocators import ALLOCATORS
    from dagger.app.bench import BenchConfig, run_bench
    from dagger.app.bench_report import print_means, write_bench_report
    from dagger.config import apply_settings

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config:  # no file given: the first key=value landed in the file's place
        config, overrides = None, [config, *overrides]
    kind = (read_yaml(config) or {}) if config else {}
    if "gates" in kind:
        return cmd_gate_bench(args, config, overrides)
    if "experiments" in kind:
        return cmd_failure_bench(args, config, overrides)
    cfg = BenchConfig()
    apply_settings(cfg, config, overrides + ([f"seeds={args.seeds}"] if args.seeds else []))
    if not (config or overrides or args.yes):
        print(f"{bench_plan(cfg)}.\nRun it with `dagger bench --yes`, or give a config: "
              f"{', '.join(str(p) for p in sorted(Path('configs/bench').glob('*.yaml'))) or 'see configs/bench/'}")
        return 0
    unknown = [a for a in cfg.allocators if a not in ALLOCATORS]
    if unknown or cfg.seeds < 1 or cfg.humans < 1 or cfg.robots < cfg.humans:
        raise UserError(f"bench config: unknown allocators {unknown}" if unknown else
                        "bench config: need seeds >= 1 and 1 <= humans <= robots")
    out = _bench_out(args)
    console = _with_progress(
        f"{len(cfg.allocators)} allocators x {cfg.seeds} seeds", len(cfg.allocators) * cfg.seeds,
        lambda done: run_bench(cfg, out, progress=done),
        lambda row: (f"{row['allocator']:>15} seed {row['seed']}: {row['successes']:.0f} successes, "
                     f"{row['human_actions']:.0f} human actions, ROHE {row['rohe']:.1f} ({row['wall_s']} s)"))
    print_means(out, write_bench_report(out), console)  # the table `dagger report` prints for it too
    return 0


def _bench_out(args: argparse.Namespace) -> Path:
    return check_run_dir(args.out or str(Path("bench") / time.strftime("%Y%m%d-%H%M%S")), resume=False)


def _with_progress(title: str, total: int, run: Callable[[Callable[[dict], None]], object],
                   line: Callable[[dict], str]) -> Any:
    """Calls run(done) under a progress bar; done(row) prints line(row) and advances it. Returns the console."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console()
    with Progress(console=console) as progress:
        task = progress.add_task(title, total=total)

        def done(row: dict) -> None:
            progress.console.print(line(row))
            progress.advance(task)

        run(done)
    return console


def read_yaml(path: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"bench config {path}: {err}") from err


def cmd_gate_bench(args: argparse.Namespace, config: str, overrides: list[str]) -> int:
    """A bench config with `gates:`: the live loop in-process, gates x seeds."""

    from dagger.app.bench_report import print_means
    from dagger.app.gate_bench import GateBenchConfig, run_config, run_gate_bench, write_gate_report
    from dagger.config import apply_settings

    cfg = GateBenchConfig()
    apply_settings(cfg, config, overrides + ([f"seeds={args.seeds}"] if args.seeds else []))
    if cfg.seeds < 1 or not cfg.gates:
        raise UserError("bench config: need seeds >= 1 and at least one gate")
    for gate in cfg.gates:
        run_config(cfg, gate, 0)  # a wrong gate or run setting fails before any run starts
    out = _bench_out(args)
    console = _with_progress(
        f"{len(cfg.gates)} gates x {cfg.seeds} seeds", len(cfg.gates) * cfg.seeds,
        lambda done: run_gate_bench(cfg, out, progress=done),
        lambda row: (f"{row['gate']:>15} seed {row['seed']}: intervention rate {row['intervention_rate']:.3f}, "
                     f"{row['takeovers']} takeovers, {row['successes']} successes, ROHE {row['rohe']:.1f} "
                     f"({row['wall_s']} s)"))
    print_means(out, write_gate_report(out), console)
    return 0


def cmd_failure_bench(args: argparse.Namespace, config: str, overrides: list[str]) -> int:
    """A bench config with `experiments:`: per failure mode, DAgger against behavior cloning on as many labels."""

    from dagger.app.failure_bench import (
        FailureBenchConfig,
        experiments,
        print_failure_table,
        run_failure_bench,
        write_failure_report,
    )
    from dagger.config import apply_settings

    cfg = FailureBenchConfig()
    apply_settings(cfg, config, overrides + ([f"seeds={args.seeds}"] if args.seeds else []))
    if cfg.seeds < 1 or cfg.episodes < 1 or not cfg.experiments:
        raise UserError("bench config: need seeds >= 1, episodes >= 1 and at least one experiment")
    names = [e.name for e in experiments(cfg)]  # a wrong experiment fails before any run starts
    out = _bench_out(args)
    console = _with_progress(
        f"{len(names)} experiments x {cfg.seeds} seeds (dagger, then bc)", len(names) * cfg.seeds,
        lambda done: run_failure_bench(cfg, out, progress=done),
        lambda row: (f"{row['experiment']:>15} seed {row['seed']}: {row['labels']} labels, success dagger "
                     f"{row['dagger']:.2f}, bc {row['bc']:.2f} (mean over conditions; {row['wall_s']} s)"))
    print_failure_table(out, write_failure_report(out), console)
    return 0
