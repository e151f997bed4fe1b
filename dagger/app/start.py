"""`dagger start`: checks everything a user gave before anything is written, then runs the loop with the
dashboard (and the console window when an operator uses it) and writes the report.

    dagger start --robots 4 --gate ensemble --steps 24000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dagger.app.errors import UserError
from dagger.config import RunConfig, load_config, to_dict
from dagger.events import StorageError, first_line
from dagger.provenance import record_start
from dagger.tasks import MUJOCO_TASKS, make_task


def resolve_config(args: argparse.Namespace) -> RunConfig:
    flags = {"robots": args.robots, "operators": args.operators, "task.name": args.task, "gate.name": args.gate,
             "policy.type": args.policy,
             "steps": args.steps, "minutes": args.minutes, "seed": args.seed, "address": args.address,
             "operator.kinds": args.operator.split(",") if args.operator else None,
             "browser.listen": args.operator_listen,
             "init_from": args.init_from, "demo_file": args.demos}
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


def check_demo_file(cfg: RunConfig) -> None:
    """The demonstrations file reads and fits the task, before anything is written."""
    from dagger.formats.demos import read_dataset

    try:
        read_dataset(cfg.demo_file, make_task(cfg.task))
    except (OSError, ValueError) as err:
        raise UserError(f"--demos: {first_line(err)}") from err


def open_operator_devices(cfg: RunConfig) -> dict[int, Any]:
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
    elif cfg.robot.agents:
        raise UserError("robot.agents: robots behind robot agents keep real time, which an in-process run (one "
                        "thread, a simulated clock) cannot; run without --in-process")
    elif set(REAL_TIME_KINDS) & set(cfg.operator.kinds):
        raise UserError("operator.kinds: browser and leader operators stamp their readings in real time, which an "
                        "in-process run (a simulated clock) cannot keep; run without --in-process")
    from dagger.app.preflight import check_outside_parts

    check_outside_parts(cfg)  # a policy server or robot agent that does not answer: one line now, not a stalled run
    if cfg.demo_file:
        check_demo_file(cfg)
    if cfg.init_from:
        check_checkpoint(cfg.init_from, cfg)
    from dagger.checkpoint import has_checkpoint  # torch: not imported before a run needs it

    if args.resume and has_checkpoint(run_dir):
        check_checkpoint(run_dir, cfg)
    devices = open_operator_devices(cfg)
    console = None
    if args.console or args.screenshot or {"keyboard", "gamepad", "leader"} & set(cfg.operator.kinds):
        from dagger.app.console import OperatorConsole
        from teleop_devices.human import KeyboardOperator

        console = OperatorConsole(cfg, [d.keyboard for d in devices.values() if isinstance(d, KeyboardOperator)])
    try:
        web = serve_operators(cfg, devices, run_dir)  # its address taken before anything is written
    except UserError:
        if console is not None:
            console.close()
        raise
    cfg.run_dir = str(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        record_start(run_dir)
    except OSError as err:
        if console is not None:
            console.close()
        if web is not None:
            web.close()
        raise UserError(f"run dir {run_dir}: cannot write there ({err.strerror or err})") from err
    if web is not None:
        save_tokens(run_dir, web.tokens)
    address = cfg.address or os.environ.get("RAY_ADDRESS", "")
    ray = f"joining Ray at {address}" if address else "starting Ray"
    robots = f"{cfg.robots} robot{'' if cfg.robots == 1 else 's'}"
    how = f"running {robots} in this process" if args.in_process else f"{ray} for {robots}"
    say(f"{how} ({cfg.task.name}, gate {cfg.gate.name}) → {run_dir}")
    from dagger.app.dashboard import Dashboard
    from dagger.app.live import LiveStats
    from workers.launch import LocalFleet, run_loop

    stats = LiveStats()
    board = Dashboard(cfg, stats)
    make_fleet: Any = LocalFleet
    if not args.in_process:
        from workers.ray_fleet import RayFleet, init_ray

        if cfg.task.name in MUJOCO_TASKS:
            from dagger.gl import configure_gl

            configure_gl()  # decided once here; the robots' processes inherit MUJOCO_GL instead of probing
        try:
            init_ray(cfg.address)
        except (ConnectionError, ValueError, RuntimeError) as err:  # an address that answers but is no Ray head
            raise UserError(f"Ray at {cfg.address or os.environ.get('RAY_ADDRESS')}: {first_line(err)}") from err
        make_fleet = RayFleet

    def on_status(status: dict) -> None:
        board.update(status)
        if console is not None:
            console.update(status)
        if web is not None:
            web.update(status)

    def on_events(events: list[dict]) -> None:
        stats.add(events)
        if web is not None:
            web.events(events)

    board.start()
    stop_on_sigterm()
    try:
        summary = run_loop(cfg, run_dir, make_fleet, on_status=on_status, on_events=on_events, devices=devices,
                           pump=console.pump if console else None,
                           frames_every_s=0.05 if web else 0.2 if console else 0.0, on_progress=say,
                           remote_operators=web is not None)
    except StorageError as err:  # the disk filled and even the run's end could not be logged: one line
        raise UserError(f"{err.strerror}; the run stopped (free space, then `dagger start --resume --run-dir "
                        f"{run_dir}` continues it from its last checkpoint)") from err
    finally:
        board.stop()
        if web is not None:
            web.close()
        if console is not None:
            if args.screenshot:
                try:
                    console.save(args.screenshot)
                except Exception as err:  # noqa: BLE001 - pygame.error; the run's results matter more than its picture
                    print(f"dagger: the console screenshot was not saved: {first_line(err)}", file=sys.stderr)
            console.close()
    from dagger.app.report import print_run_report, write_run_report
    from dagger.events import read_events

    events = read_events(run_dir / "events.jsonl")
    try:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        write_run_report(run_dir, events)
    except OSError as err:  # a full disk: the report is printed all the same
        print(f"dagger: warning: the report was not written to {run_dir} ({err.strerror or err})", file=sys.stderr)
    print_run_report(run_dir, summary, board.console)
    end = [e for e in events if e["ev"] == "run_end"][-1]
    if end["reason"] == "failed":  # the run stopped because a component could not go on: say so, exit non-zero
        print(f"dagger: error: the run stopped early: {end['error']} (events.jsonl has it; --resume continues "
              "from the last checkpoint)", file=sys.stderr)
        return 1
    return 128 + TERMINATED[0] if end["reason"] == "interrupted" else 0  # 130 after Ctrl-C, 143 after SIGTERM


REAL_TIME_KINDS = ("browser", "leader")
"""operators whose devices stamp their readings with the wall clock"""


def serve_operators(cfg: RunConfig, devices: dict[int, Any], run_dir: Path) -> Any:
    """The browser operators' page (an OperatorWeb; None without browser operators), up before the robots start so
    operators log in meanwhile. Each operator's link is printed, its token in the fragment; a resumed run's tokens are
    those it kept (save_tokens), so its links stay the same."""
    from teleop_devices.browser import BrowserDevice

    browsers = {op: d for op, d in devices.items() if isinstance(d, BrowserDevice)}
    if not browsers:
        return None
    from dagger.app.operator_web import OperatorWeb
    from dagger.wire import server_tls

    listen, c = cfg.browser.listen, cfg.browser
    try:
        tls = server_tls(c.tls_cert, c.tls_key or c.tls_cert) if c.tls_cert else None
        web = OperatorWeb(cfg, browsers, {op: token_of(run_dir, op) for op in browsers}, tls).start()
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        raise UserError(f"browser.listen {listen}: cannot serve the operator page ({first_line(err)})") from err
    host = listen.rpartition(":")[0].strip("[]")
    if tls is None and host not in ("127.0.0.1", "localhost", "::1"):
        say(f"warning: the operator page on {listen} is plain http: tokens and readings cross the network unencrypted "
            "(give browser.tls_cert and browser.tls_key, or serve on 127.0.0.1 and tunnel: ssh -L)")
    for op in sorted(browsers):
        say(f"operator {op} (browser): {web.url(op)}")
    return web


def token_of(run_dir: Path, op: int) -> str:
    """Operator op's secret for the page: the one run_dir kept (a resumed run), else a new one."""
    path = run_dir / f"operator-{op}.token"
    return path.read_text().strip() if path.is_file() else secrets.token_urlsafe(24)


def save_tokens(run_dir: Path, tokens: dict[int, str]) -> None:
    """Keeps each operator's secret in run_dir/operator-N.token (owner-only)."""
    for op, token in tokens.items():
        path = run_dir / f"operator-{op}.token"
        if not path.is_file():
            path.touch(mode=0o600)
            path.write_text(token)


def say(line: str) -> None:
    """A start-up step on the console as it begins, so a run never sits silent for a minute (stderr: stdout holds the
    dashboard and the report)."""
    print(f"dagger: {line}", file=sys.stderr, flush=True)


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

    check_compatible(read_checkpoint(path), task_spaces(make_task(cfg.task)), cfg.policy)
