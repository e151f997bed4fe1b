"""The `dagger` command: start a run, report on one, evaluate its policy.

    dagger start --robots 4 --gate ensemble --steps 24000
    dagger report runs/20261125-101500 --json
    dagger eval runs/20261125-101500 --episodes 100
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dagger.checkpoint import CheckpointError, has_checkpoint
from dagger.config import ConfigError, RunConfig, load_config, to_dict
from dagger.evaluation import EVAL_SEED_BASE
from dagger.events import first_line
from dagger.gates import GATES
from dagger.provenance import record_start


class UserError(Exception):
    """A mistake in what the user asked for: one line, exit code 2, no traceback."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagger", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run the loop: robots, gate, operators, buffer, learner")
    start.add_argument("--robots", type=int)
    start.add_argument("--operators", type=int)
    start.add_argument("--task")
    start.add_argument("--gate", help=" | ".join(GATES))
    budget = start.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="fleet steps to run")
    budget.add_argument("--minutes", type=float, help="wall-clock minutes to run")
    start.add_argument("--seed", type=int)
    start.add_argument("--run-dir", help="where to write the run (default runs/<time>)")
    start.add_argument("--config", help="a YAML file of settings (see configs/)")
    start.add_argument("--address", help="Ray cluster to join (default RAY_ADDRESS or a local Ray)")
    start.add_argument("--resume", action="store_true",
                       help="continue in an existing run dir, from its newest checkpoint and its segment log")
    start.add_argument("--init-from", metavar="CHECKPOINT",
                       help="start from a trained policy (a checkpoint file, checkpoints dir or run dir)")
    start.add_argument("--in-process", action="store_true", help="run without Ray, in one process")
    start.add_argument("--operator", help="input per operator, comma-separated: scripted|gamepad|spacemouse|keyboard")
    start.add_argument("--console", action="store_true", help="open the operator console window")
    start.add_argument("--screenshot", help="save the console to this PNG when the run ends")
    start.add_argument("overrides", nargs="*", metavar="key.sub=value")
    bench = sub.add_parser("bench", help="fleet benchmark: allocators x seeds, results.csv and plots")
    bench.add_argument("config", nargs="?", help="a bench YAML (see configs/bench/)")
    bench.add_argument("--seeds", type=int)
    bench.add_argument("--out", help="output directory (default bench/<time>)")
    bench.add_argument("overrides", nargs="*", metavar="key=value")
    devices = sub.add_parser("devices", help="list connected gamepads and SpaceMice")
    devices.add_argument("--watch", action="store_true", help="show live readings, report rate and age")
    devices.add_argument("--config", help="a YAML file with spacemouse/gamepad settings")
    evaluate = sub.add_parser("eval", help="a trained policy alone (no gate, no human) on held-out episodes")
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    evaluate.add_argument("--episodes", type=int, default=100)
    evaluate.add_argument("--task", help="task to evaluate on (default: the checkpoint's)")
    evaluate.add_argument("--robots", type=int, default=1, help="parallel processes")
    evaluate.add_argument("--seed-base", type=int, default=EVAL_SEED_BASE,
                          help=f"first episode seed (default {EVAL_SEED_BASE}; training seeds all lie below it)")
    evaluate.add_argument("--video", metavar="PATH", help="also write the first 3 episodes as a GIF (or MP4)")
    evaluate.add_argument("--out", help="where to write eval.json (default: the run dir, or beside the file)")
    report = sub.add_parser("report", help="a run's or a bench's metrics, recomputed from the event logs")
    report.add_argument("run_dir")
    report.add_argument("--json", action="store_true", help="print the metrics as JSON only")
    report.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard scalars to DIR (tensorboardX)")
    return parser


def resolve_config(args: argparse.Namespace) -> RunConfig:
    flags = {"robots": args.robots, "operators": args.operators, "task": args.task, "gate.name": args.gate,
             "steps": args.steps, "minutes": args.minutes, "seed": args.seed, "address": args.address,
             "operator.kinds": args.operator.split(",") if args.operator else None,
             "init_from": args.init_from}
    overrides = list(args.overrides) + [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    return load_config(args.config, overrides)


def check_run_dir(requested: str | None, resume: bool) -> Path:
    """The run dir to use; refuses a non-empty one unless resuming. Creates nothing."""
    run_dir = Path(requested or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not resume:
        raise UserError(f"run dir {run_dir} is not empty; pass --resume to continue it or choose another")
    if resume and not any((run_dir / name).exists() for name in ("events.jsonl", "checkpoints", "segments")):
        raise UserError(f"--resume: {run_dir} holds no run to continue (no events.jsonl, checkpoints or segments); "
                        "name a run's dir with --run-dir, or start without --resume")
    return run_dir


def check_screenshot(path: str | None) -> None:
    """Refuses, before the run, a screenshot that could not be written after it."""
    folder = Path(path).resolve().parent if path else None
    if folder is not None and not (folder.is_dir() and os.access(folder, os.W_OK)):
        raise UserError(f"--screenshot {path}: folder {folder} does not exist or cannot be written")


def check_ray_address(address: str) -> None:
    """A Ray address (or RAY_ADDRESS) that nothing answers at is one line before anything is written."""
    from workers.ray_fleet import check_reachable

    try:
        check_reachable(address or os.environ.get("RAY_ADDRESS", ""))
    except ConnectionError as err:
        raise UserError(f"Ray: {err}") from err


def open_operator_devices(cfg: RunConfig) -> dict[int, Any]:
    from dagger.tasks import make_task
    from teleop_devices.human import open_devices

    try:
        return open_devices(cfg, make_task(cfg.task).act_dim)
    except (OSError, ValueError) as err:
        raise UserError(str(err).replace("\n", " ")) from err


def cmd_start(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    run_dir = check_run_dir(args.run_dir or cfg.run_dir or None, args.resume)
    check_screenshot(args.screenshot)
    if not args.in_process:
        check_ray_address(cfg.address)
    if cfg.init_from:
        check_checkpoint(cfg.init_from, cfg)
    if args.resume and has_checkpoint(run_dir):
        check_checkpoint(run_dir, cfg)
    devices = open_operator_devices(cfg)
    console = None
    if args.console or args.screenshot or {"keyboard", "gamepad"} & set(cfg.operator.kinds):
        from dagger.app.console import OperatorConsole
        from teleop_devices.human import KeyboardOperator

        console = OperatorConsole(cfg, [d.keyboard for d in devices.values() if isinstance(d, KeyboardOperator)])
    cfg.run_dir = str(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        record_start(run_dir)
    except OSError as err:
        if console is not None:
            console.close()
        raise UserError(f"run dir {run_dir}: cannot write there ({err.strerror or err})") from err
    from dagger.app.dashboard import Dashboard
    from dagger.app.live import LiveStats
    from dagger.app.summary import print_summary
    from workers.launch import LocalFleet, run_loop

    stats = LiveStats()
    board = Dashboard(cfg, stats)
    make_fleet: Any = LocalFleet
    if not args.in_process:
        from workers.ray_fleet import RayFleet, init_ray

        print(f"starting Ray and {cfg.robots} robots ({cfg.task}, gate {cfg.gate.name}) → {run_dir}", flush=True)
        if cfg.task == "reacher":
            from dagger.gl import configure_gl

            configure_gl()  # decided once here; the robots' processes inherit MUJOCO_GL instead of probing
        init_ray(cfg.address)
        make_fleet = RayFleet

    def on_status(status: dict) -> None:
        board.update(status)
        if console is not None:
            console.update(status)

    board.start()
    stop_on_sigterm()
    try:
        summary = run_loop(cfg, run_dir, make_fleet, on_status=on_status, on_events=stats.add, devices=devices,
                           pump=console.pump if console else None, frames_every_s=0.2 if console else 0.0)
    finally:
        board.stop()
        if console is not None:
            if args.screenshot:
                try:
                    console.save(args.screenshot)
                except Exception as err:  # noqa: BLE001 - pygame.error; the run's results matter more than its picture
                    print(f"dagger: the console screenshot was not saved: {first_line(err)}", file=sys.stderr)
            console.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary, run_dir, board.console)
    from dagger.app.report import write_run_report
    from dagger.events import read_events

    events = read_events(run_dir / "events.jsonl")
    write_run_report(run_dir, events)
    print(f"report: {run_dir / 'report.md'}  plots: {run_dir / 'plots'}")
    end = [e for e in events if e["ev"] == "run_end"][-1]
    if end["reason"] == "failed":  # the run stopped because a component could not go on: say so, exit non-zero
        print(f"dagger: error: the run stopped early: {end['error']} (events.jsonl has it; --resume continues "
              "from the last checkpoint)", file=sys.stderr)
        return 1
    return 128 + TERMINATED[0] if end["reason"] == "interrupted" else 0  # 130 after Ctrl-C, 143 after SIGTERM


TERMINATED = [signal.SIGINT]
"""the signal that stopped the run (SIGINT unless stop_on_sigterm's handler saw a SIGTERM)"""


def stop_on_sigterm() -> None:
    """SIGTERM (kill, timeout, systemd) stops the run as Ctrl-C does: cleanly, with run_end and a report. It replaces
    Ray's handler, which exits at once with a traceback."""
    def handler(signum: int, frame: Any) -> None:
        TERMINATED[0] = signal.Signals(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def check_checkpoint(path: str | Path, cfg: RunConfig) -> None:
    """Refuses, before anything starts, a checkpoint to start from that is unreadable or for another task or
    network shape than this run's."""
    from dagger.checkpoint import check_compatible, read_checkpoint, task_spaces
    from dagger.tasks import make_task

    check_compatible(read_checkpoint(path), task_spaces(make_task(cfg.task)), cfg.policy)


def cmd_eval(args: argparse.Namespace) -> int:
    """eval.json and a table: success rate with its 95 % Wilson interval, mean return and length."""
    from dagger.app.evaluate import evaluate_checkpoint, print_result, write_video
    from dagger.checkpoint import check_compatible, policy_config, read_checkpoint, task_spaces
    from dagger.evaluation import eval_seeds
    from dagger.tasks import TASKS, make_task

    if args.episodes < 1 or args.robots < 1:
        raise UserError("eval: --episodes and --robots must be at least 1")
    ckpt = read_checkpoint(args.checkpoint)
    task_name = args.task or ckpt["task"]["name"]
    if task_name not in TASKS:
        raise UserError(f"unknown task {task_name!r}; choose one of {sorted(TASKS)}")
    check_compatible(ckpt, task_spaces(make_task(task_name)), policy_config(ckpt))
    try:
        seeds = eval_seeds(args.episodes, args.seed_base)
    except ValueError as err:
        raise UserError(str(err)) from err
    file = Path(ckpt["path"])
    result = {"checkpoint": str(file), "version": int(ckpt["version"]), "task": task_name, "seed_base": seeds[0],
              **evaluate_checkpoint(str(file), task_name, seeds, args.robots)}
    if args.video:
        try:
            result["video_frames"] = write_video(str(file), task_name, seeds[:3], Path(args.video))
        except (RuntimeError, ValueError, ImportError) as err:
            raise UserError(f"--video {args.video}: {first_line(err)}") from err
        result["video"] = args.video
    run_dir = file.parent.parent if file.parent.name == "checkpoints" else file.parent
    out = Path(args.out) if args.out else run_dir / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_result(result, out)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.table import Table

    from dagger.allocators import ALLOCATORS
    from dagger.app.bench import BenchConfig, run_bench
    from dagger.app.bench_report import write_bench_report
    from dagger.config import apply_settings

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config:  # no file given: the first key=value landed in the file's place
        config, overrides = None, [config, *overrides]
    if config and "gates" in (_read_yaml(config) or {}):
        return cmd_gate_bench(args, config, overrides)
    cfg = BenchConfig()
    apply_settings(cfg, config, overrides + ([f"seeds={args.seeds}"] if args.seeds else []))
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
    means = write_bench_report(out)
    table = Table(title=f"mean over {cfg.seeds} seeds (results.csv has every run)")
    table.add_column("allocator", no_wrap=True)
    for head in ("successes", "violations", "human actions", "idle", "switches", "ROHE"):
        table.add_column(head, justify="right")
    for name in cfg.allocators:
        mean = {k: means[name][k][0] for k in ("successes", "violations", "human_actions", "idle", "switches", "rohe")}
        table.add_row(name, *(f"{mean[k]:.0f}" for k in ("successes", "violations", "human_actions", "idle",
                                                          "switches")), f"{mean['rohe']:.1f}")
    console.print(table)
    console.print(f"results: {out / 'results.csv'}  plots: {out / 'plots'}  report: {out / 'report.md'}")
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


def _read_yaml(path: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"bench config {path}: {err}") from err


def cmd_gate_bench(args: argparse.Namespace, config: str, overrides: list[str]) -> int:
    """A bench config with `gates:`: the live loop in-process, gates x seeds."""
    from rich.table import Table

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
    means = write_gate_report(out)
    keys = ("intervention_rate", "takeovers", "successes", "autonomous_successes", "rohe", "achieved_rate")
    table = Table(title=f"mean over {cfg.seeds} seeds (results.csv has every run)")
    table.add_column("gate", no_wrap=True)
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    for gate, m in means.items():
        table.add_row(gate, *(f"{m[k][0]:.3g}" if k in m else "" for k in keys))
    console.print(table)
    console.print(f"results: {out / 'results.csv'}  plots: {out / 'plots'}  report: {out / 'report.md'}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dagger.app.devices import describe, list_devices, watch

    found = list_devices()
    for device in found:
        print(describe(device))
    if not found:
        print("no gamepad or SpaceMouse found (a SpaceMouse needs read access to /dev/hidraw*: "
              "see configs/udev/99-spacemouse.rules)")
    if args.watch and found:
        try:
            watch(load_config(args.config), Console())
        except OSError as err:
            raise UserError(str(err).replace("\n", " ")) from err
        except KeyboardInterrupt:
            pass
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """report.md, report.html and plots/ in the run or bench dir; the metrics on stdout; TensorBoard optionally."""
    from dagger.app.plots import write_scalars
    from dagger.app.report import run_scalars, write_run_report
    from dagger.app.summary import print_summary
    from dagger.events import read_events

    run_dir = Path(args.run_dir)
    path = run_dir / "events.jsonl"
    try:
        gate_bench = (run_dir / "bench.json").is_file() and "gates" in _read_yaml(str(run_dir / "bench.json"))
        if (run_dir / "results.csv").is_file() and gate_bench:
            from dagger.app.gate_bench import write_gate_report

            bench = write_gate_report(run_dir)
            print(json.dumps(bench, indent=2) if args.json else (run_dir / "report.md").read_text())
            return 0
        if (run_dir / "results.csv").is_file():
            from dagger.app.bench_report import write_bench_report, write_bench_scalars

            bench = write_bench_report(run_dir)
            if args.tensorboard:
                write_bench_scalars(run_dir, Path(args.tensorboard))
            print(json.dumps(bench, indent=2) if args.json else (run_dir / "report.md").read_text())
            return 0
        if not path.is_file():
            raise UserError(f"{path} not found: is {args.run_dir} a run or bench dir?")
        events = read_events(path)
        summary = write_run_report(run_dir, events)
        if args.tensorboard:
            write_scalars(Path(args.tensorboard), run_scalars(events))
    except ValueError as err:
        raise UserError(str(err)) from err
    except ImportError as err:
        raise UserError(f"--tensorboard needs tensorboardX ({err}): pip install tensorboardX") from err
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary, run_dir)
        print(f"report: {run_dir / 'report.md'}  plots: {run_dir / 'plots'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)  # key=value overrides may follow options too
    if extra and (not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides += extra
    try:
        commands = {"start": cmd_start, "report": cmd_report, "devices": cmd_devices, "bench": cmd_bench,
                    "eval": cmd_eval}
        return commands[args.command](args)
    except (UserError, ConfigError, CheckpointError) as err:
        print(f"dagger: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before a run's loop (which stops cleanly itself) or in another command
        print("dagger: interrupted", file=sys.stderr)
        return 128 + TERMINATED[0]


if __name__ == "__main__":
    sys.exit(main())
