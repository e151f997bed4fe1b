"""The `dagger` command: start a run, report on one, evaluate its policy.

    dagger start --robots 4 --gate ensemble --steps 24000
    dagger report runs/20261125-101500 --json
    dagger eval runs/20261125-101500 --episodes 100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from dagger.app import export, robot_agent
from dagger.app.bench_cmd import cmd_bench, read_yaml
from dagger.app.errors import UserError
from dagger.app.ports import MAX_PORT, port
from dagger.app.start import TERMINATED, cmd_start
from dagger.config import ConfigError, RunConfig, load_config, task_config, to_dict
from dagger.evaluation import EVAL_SEED_BASE
from dagger.gates import GATES

START_EXAMPLES = """examples:
  dagger start --robots 4                              the demo: Meta-World reach, ensemble gate, a scripted operator
  dagger start --task point --steps 4000 --in-process  a quick run without Ray
  dagger start --operator keyboard --console           you take over with the keyboard in the console window
  dagger start --operators 3 --operator browser,browser,scripted   two operators at their browsers (links printed)
  dagger start --gate auto gate.alpha=0.05             ask for help on about 5 % of steps
  dagger start --policy diffusion --gate auto          another policy family (chunking, implicit, remote)
  dagger start --resume --run-dir runs/20261125-101500 continue a stopped run
"""


BENCH_EXAMPLES = """examples:
  dagger bench configs/bench/gates.yaml --seeds 3      every gate family on the live loop
  dagger bench configs/bench/fleet.yaml                allocators on a 100-robot fleet (IFL)
  dagger bench configs/bench/failure_modes.yaml        DAgger against behavior cloning, per failure mode
  dagger bench                                         print what the default bench would run
"""


def setting_help(key: str, choices: str = "") -> str:
    """A flag's help: the setting's docstring (dagger/config.py) and its default."""
    from dagger.config_keys import config_keys

    _, value, doc = next(k for k in config_keys(RunConfig()) if k[0] == key)
    return f"{choices or doc} (default: {value}; setting {key})"


class PrintVersion(argparse.Action):
    """--version: prints dagger's version (setup.cfg's too: it reads dagger.__version__) and exits."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        import dagger

        print(f"dagger {dagger.__version__}")
        parser.exit()


def user_errors() -> tuple[type[Exception], ...]:
    """The mistakes a user's input makes, each one line and exit code 2: CheckpointError too once a command imported
    dagger.checkpoint (it imports torch, so the quick commands do not, and none of them can raise it)."""
    checkpoint = sys.modules.get("dagger.checkpoint")
    return (UserError, ConfigError) + (() if checkpoint is None else (checkpoint.CheckpointError,))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagger", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=PrintVersion)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run the loop: robots, gate, operators, buffer, learner",
                           description="Run the loop: robots act and ask for help when unsure, operators correct,\n"
                           "the learner retrains and pushes weights back. Any setting can follow as\n"
                           "key.sub=value; `dagger config --keys` lists them all.", epilog=START_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    start.add_argument("--robots", type=int, metavar="N", help=setting_help("robots"))
    start.add_argument("--operators", type=int, metavar="M", help=setting_help("operators"))
    start.add_argument("--task", help=setting_help("task.name"))
    start.add_argument("--gate", help=setting_help("gate.name", " | ".join(GATES)))
    start.add_argument("--policy", help=setting_help("policy.type"))
    budget = start.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help=setting_help("steps"))
    budget.add_argument("--minutes", type=float, help=setting_help("minutes"))
    start.add_argument("--seed", type=int, help=setting_help("seed"))
    start.add_argument("--run-dir", help="where to write the run (default runs/<time>)")
    start.add_argument("--config", help="a YAML file of settings (see configs/)")
    start.add_argument("--address", help="Ray cluster to join (default RAY_ADDRESS or a local Ray)")
    start.add_argument("--resume", action="store_true",
                       help="continue in an existing run dir, from its newest checkpoint and its segment log")
    start.add_argument("--init-from", metavar="CHECKPOINT",
                       help="start from a trained policy (a checkpoint file, checkpoints dir or run dir)")
    start.add_argument("--demos", metavar="DATASET", help=setting_help("demo_file"))
    start.add_argument("--in-process", action="store_true", help="run without Ray, in one process")
    start.add_argument("--operator", help=setting_help("operator.kinds", "input per operator, comma-separated: "
                                                       "scripted | gamepad | spacemouse | keyboard | browser | leader"))
    start.add_argument("--operator-listen", metavar="HOST:PORT", help=setting_help("browser.listen"))
    start.add_argument("--console", action="store_true", help="open the operator console window")
    start.add_argument("--screenshot", help="save the console to this PNG when the run ends")
    start.add_argument("overrides", nargs="*", metavar="key.sub=value")
    bench = sub.add_parser("bench", help="benchmark: allocators, gates or failure modes x seeds, results.csv and plots",
                           epilog=BENCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("config", nargs="?", help="a bench YAML (configs/bench/); without one, the plan of the "
                       "default fleet bench is printed and nothing runs")
    bench.add_argument("--yes", action="store_true", help="run the default fleet bench (no config given)")
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
    evaluate.add_argument("--video", metavar="PATH",
                          help="also write the first 3 episodes as a video: .mp4 (H.264) or .gif, 640 px wide, "
                               "captioned with episode, seed, step and outcome")
    evaluate.add_argument("--out", help="where to write eval.json (default: the run dir, or beside the file)")
    evaluate.add_argument("overrides", nargs="*", metavar="task.key=value",
                          help="task settings to evaluate under, e.g. task.camera_jitter=4 (default: the checkpoint's)")
    serve = sub.add_parser("serve", help="serve a trained policy to robots over the network (policy.type=remote)")
    serve.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=port, default=7000, help=f"port to listen on, 0..{MAX_PORT} (0: any free one)")
    serve.add_argument("--token-file", required=True,
                       help="the shared secret as hex; made (mode 600) when the file does not exist")
    serve.add_argument("--accept-weights", action="store_true",
                       help="let a run's learner push newer weights (default: serve the checkpoint as it is)")
    serve.add_argument("--tls-cert", default="", help="speak TLS with this certificate (PEM); robots then set "
                                                      "policy.tls_ca (default: no TLS: keep the link on a tunnel)")
    serve.add_argument("--tls-key", default="", help="the certificate's private key (PEM; default: in --tls-cert)")
    robot_agent.add_parser(sub)
    export.add_parser(sub)
    config = sub.add_parser("config", help="the resolved settings, or every key with its default and meaning")
    config.add_argument("--config", help="a YAML file of settings")
    config.add_argument("--keys", action="store_true", help="every key, its default and its docstring")
    config.add_argument("overrides", nargs="*", metavar="key.sub=value")
    report = sub.add_parser("report", help="a run's or a bench's metrics, recomputed from the event logs")
    report.add_argument("run_dir")
    report.add_argument("--json", action="store_true", help="print the metrics as JSON only")
    report.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard scalars to DIR (tensorboardX)")
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    """Hosts the checkpoint's policy, one copy per robot that connects, until interrupted."""
    from buffers.codec import encode
    from dagger.checkpoint import policy_from, read_checkpoint
    from dagger.policies.remote import PolicyServer, request_bytes
    from dagger.tasks import make_task
    from dagger.wire import new_token_file, read_token, server_tls

    ckpt = read_checkpoint(args.checkpoint)
    task = make_task(task_config(ckpt.get("config", {}).get("task", ckpt["task"]["name"]), []))
    token_file = Path(args.token_file)
    if args.tls_key and not args.tls_cert:
        raise UserError("serve: --tls-key needs --tls-cert")
    try:
        token = read_token(token_file) if token_file.exists() else new_token_file(token_file)
        tls = server_tls(args.tls_cert, args.tls_key or args.tls_cert) if args.tls_cert else None
        # a request holds what the task's observations and images, or the policy's weights, can hold: no more
        weights = len(encode(policy_from(ckpt, task).weights())) if args.accept_weights else 0
        server = PolicyServer(lambda: policy_from(ckpt, task), token, args.host, args.port,
                              accept_weights=args.accept_weights, tls=tls,
                              max_request=request_bytes(task.obs_dim, task.image_shape, weights))
    except (OSError, ValueError) as err:
        raise UserError(f"serve: {err}") from err
    with server:
        print(f"serving {ckpt['path']} (v{ckpt['version']}, {task.name}) at {server.address}; robots: dagger start "
              f"--task {task.name} --policy remote policy.address={server.address} policy.token_file={token_file}",
              flush=True)
        try:
            signal.pause()  # the server's threads answer; Ctrl-C ends it
        except KeyboardInterrupt:
            print("stopped", flush=True)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """eval.json and a table: success rate with its 95 % Wilson interval, mean return and length."""
    from dagger.app.evaluate import evaluate_checkpoint, print_result, write_video
    from dagger.app.video import check_video_path
    from dagger.checkpoint import check_compatible, policy_config, read_checkpoint, task_spaces
    from dagger.evaluation import eval_seeds
    from dagger.tasks import make_task

    if args.episodes < 1 or args.robots < 1:
        raise UserError("eval: --episodes and --robots must be at least 1")
    if args.video:
        try:
            check_video_path(Path(args.video))  # before the episodes run, not after
        except ValueError as err:
            raise UserError(f"--video {err}") from err
    ckpt = read_checkpoint(args.checkpoint)
    saved = ckpt.get("config", {}).get("task", ckpt["task"]["name"])
    task = task_config(saved, ([f"task.name={args.task}"] if args.task else []) + args.overrides)
    check_compatible(ckpt, task_spaces(make_task(task)), policy_config(ckpt))
    try:
        seeds = eval_seeds(args.episodes, args.seed_base)
    except ValueError as err:
        raise UserError(str(err)) from err
    file = Path(ckpt["path"])
    result = {"checkpoint": str(file), "version": int(ckpt["version"]), "task": task.name,
              "task_config": dataclasses.asdict(task), "seed_base": seeds[0],
              **evaluate_checkpoint(str(file), task, seeds, args.robots)}
    run_dir = file.parent.parent if file.parent.name == "checkpoints" else file.parent
    out = Path(args.out) if args.out else run_dir / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")  # the results are kept whatever becomes of the video
    print_result(result, out)
    if args.video:
        try:
            result |= write_video(str(file), task, seeds[:3], Path(args.video))
        except ValueError as err:
            raise UserError(f"--video {err}; the results are in {out}") from err
        out.write_text(json.dumps(result, indent=2) + "\n")
        width, height = result["video_size"]
        print(f"video {args.video}: episodes 1..{min(3, len(seeds))}, {result['video_frames']} frames, "
              f"{width}x{height} at {result['video_fps']} fps")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """The resolved settings as YAML (what `dagger start` with the same --config and overrides would run), or with
    --keys every key, its value and its docstring."""
    from dagger.config_keys import config_keys

    cfg = load_config(args.config, args.overrides)
    if not args.keys:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    for key, value, doc in config_keys(cfg):
        print(f"{key} = {json.dumps(value)}")
        if doc:
            print(textwrap.fill(doc, width=100, initial_indent="    ", subsequent_indent="    "))
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
    from dagger.app.bench_report import print_means
    from dagger.app.report import print_run_report, write_run_report
    from dagger.events import read_events
    from dagger.scalars import TensorBoardWriter, replay

    run_dir = Path(args.run_dir)
    path = run_dir / "events.jsonl"
    try:
        kind = read_yaml(str(run_dir / "bench.json")) if (run_dir / "bench.json").is_file() else {}
        if (run_dir / "results.csv").is_file() and ("gates" in kind or "experiments" in kind):
            from dagger.app.failure_bench import print_failure_table, write_failure_report
            from dagger.app.gate_bench import write_gate_report

            write, show = (write_gate_report, print_means) if "gates" in kind else (write_failure_report,
                                                                                     print_failure_table)
            bench = write(run_dir)
            for log in sorted(run_dir.glob("runs/*/events.jsonl")) if args.tensorboard else []:
                replay(read_events(log), [TensorBoardWriter(Path(args.tensorboard) / log.parent.name)])
            print(json.dumps(bench, indent=2)) if args.json else show(run_dir, bench)
            return 0
        if (run_dir / "results.csv").is_file():
            from dagger.app.bench_report import write_bench_report, write_bench_scalars

            bench = write_bench_report(run_dir)
            if args.tensorboard:
                write_bench_scalars(run_dir, Path(args.tensorboard))
            print(json.dumps(bench, indent=2)) if args.json else print_means(run_dir, bench)
            return 0
        if not path.is_file():
            raise UserError(f"{path} not found: is {args.run_dir} a run or bench dir?")
        events = read_events(path)
        summary = write_run_report(run_dir, events)
        if args.tensorboard:  # the scalars the live run wrote (RUN_DIR/tb), again from events.jsonl alone
            replay(events, [TensorBoardWriter(Path(args.tensorboard))])
    except ValueError as err:
        raise UserError(str(err)) from err
    except ImportError as err:
        raise UserError(f"--tensorboard needs tensorboardX ({err}): pip install tensorboardX") from err
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_run_report(run_dir, summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)  # key=value overrides may follow options too
    extra = [e[2:] if e.startswith("--") and "." in e.partition("=")[0] and "=" in e else e for e in extra]  # --a.b=c
    if extra and (not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides += extra
    try:
        commands = {"start": cmd_start, "report": cmd_report, "devices": cmd_devices, "bench": cmd_bench,
                    "eval": cmd_eval, "config": cmd_config, "serve": cmd_serve,
                    "robot-agent": robot_agent.cmd_robot_agent, "export": export.cmd_export,
                    "import": export.cmd_import}
        return commands[args.command](args)
    except user_errors() as err:
        print(f"dagger: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dagger config --keys | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # before a run's loop (which stops cleanly itself) or in another command
        print("dagger: interrupted", file=sys.stderr)
        return 128 + TERMINATED[0]


if __name__ == "__main__":
    sys.exit(main())
