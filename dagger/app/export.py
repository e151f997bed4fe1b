"""`dagger export`: a run's episodes as a dataset other code reads, with who acted at every step; `dagger import`:
checks someone else's dataset against a task before a run starts from it (`dagger start --demos`).

    dagger export runs/20261125-101500 --format robomimic --out corrections.hdf5 --only human
    dagger export runs/20261125-101500 --format lerobot --out corrections/   # a LeRobotDataset v3 directory
    dagger import theirs.hdf5 --task reach
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml
from rich.progress import Progress

from buffers.frames import LogProblem
from dagger.app.errors import UserError
from dagger.episodes import ONLY, Episode, read_episodes
from dagger.events import first_line

FORMATS = ("lerobot", "robomimic")
"""--format's choices; each writer imports its library (pyarrow, h5py) when it runs, not when `dagger` starts"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="a run's episodes as a dataset (robomimic HDF5, LeRobotDataset v3), "
                                           "with intervention labels",
                            description="Write a run's episodes, each step labelled with who acted (intervention, "
                                        "operator), the policy's own action and version, the gate's score and "
                                        "threshold, reward and success.")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=FORMATS, default="robomimic")
    export.add_argument("--out", required=True, help="the file to write (robomimic), or a new directory (lerobot)")
    export.add_argument("--only", choices=ONLY, default="all",
                        help="all: every episode; human: only operators' and demonstrators' steps, each run of them "
                             "an episode (default: all)")
    export.add_argument("--success-only", action="store_true", help="only episodes that reached the goal")
    check = sub.add_parser("import", help="check a dataset of demonstrations against a task (for start --demos)")
    check.add_argument("path", help="a robomimic HDF5 file or a LeRobot v3 dataset directory")
    check.add_argument("--task", default="reach", help="the task a run would start from it (default: reach)")


def cmd_export(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    config = run_dir / "config.yaml"
    if not (run_dir / "segments").is_dir() or not config.is_file():
        raise UserError(f"{run_dir}: not a run dir (no segments/ or config.yaml)")
    task = (yaml.safe_load(config.read_text()) or {}).get("task", {}).get("name", "")
    problems: list[LogProblem] = []
    lost: list[str] = []
    scan_log = logging.getLogger("buffers.segment_log")
    scan_log.addFilter(_drop)  # its problems are printed below, once each, instead of logged as well
    try:
        episodes = read_episodes(run_dir / "segments", args.only, args.success_only, problems,
                                 reported_segments(run_dir), lost)
    finally:
        scan_log.removeFilter(_drop)
    for problem in problems:
        print(f"warning: segment log: {problem}", file=sys.stderr)
    for line in split_lines(episodes, lost):
        print(f"warning: {line}", file=sys.stderr)
    if not episodes:
        raise UserError(f"{run_dir}: no episodes to export (--only {args.only}"
                        f"{', --success-only' if args.success_only else ''})")
    from dagger.formats.lerobot import write_lerobot
    from dagger.formats.robomimic import write_robomimic

    write = {"robomimic": write_robomimic, "lerobot": write_lerobot}[args.format]
    with Progress(transient=True) as progress:
        bar = progress.add_task(f"writing {args.out}", total=sum(len(ep) for ep in episodes))
        try:
            steps = write(episodes, args.out, task, lambda n: progress.advance(bar, n))
        except FileExistsError as err:
            raise UserError(str(err)) from err
        except ValueError as err:  # a step's time that int64 nanoseconds cannot hold; nothing was written
            raise UserError(f"{run_dir}: {err}") from err
        except OSError as err:
            raise UserError(f"{args.out}: cannot write ({err.strerror or err})") from err
    corrected = sum(int(ep.intervention.sum()) for ep in episodes)
    pieces = sum(bool(ep.missing) for ep in episodes)
    split = f", {pieces} of them pieces of episodes the log lost part of (marked 'missing')" if pieces else ""
    print(f"{len(episodes)} episodes{split}, {steps} steps ({corrected} by operators) of {task} → {args.out}")
    return 0


def _drop(_: logging.LogRecord) -> bool:
    return False


SPLITS_SHOWN = 10
"""split episodes the export names one by one; the rest are counted"""


def reported_segments(run_dir: Path) -> list[tuple[int, int, int]]:
    """(robot, seq, episode) of every segment the run's events.jsonl says a robot closed (empty without the file, and
    with a warning when it cannot be read: the segment log's own gaps are found all the same)."""
    from dagger.events import read_events

    if not (run_dir / "events.jsonl").is_file():
        return []
    try:
        events = read_events(run_dir / "events.jsonl")
    except (OSError, ValueError) as err:
        print(f"warning: {run_dir / 'events.jsonl'}: not read ({first_line(err)}); gaps are found from the segment "
              "log alone", file=sys.stderr)
        return []
    return [(e["robot"], e["seq"], e["episode"]) for e in events
            if e["ev"] == "segment" and isinstance(e.get("episode"), int)]


def split_lines(episodes: list[Episode], lost: list[str]) -> list[str]:
    """What the export says of episodes the log lost part of: one line for each split one (the first SPLITS_SHOWN),
    and each episode lost whole."""
    split: dict[tuple[int, int], list[Episode]] = {}
    for ep in episodes:
        if ep.missing:
            split.setdefault((ep.robot, ep.episode), []).append(ep)
    lines = [f"robot {robot} episode {episode}: the segment log lacks part of it; exported as {len(parts)} "
             f"piece{'s' if len(parts) > 1 else ''} marked 'missing' ({parts[0].missing})"
             for (robot, episode), parts in list(split.items())[:SPLITS_SHOWN]]
    if len(split) > SPLITS_SHOWN:
        lines.append(f"... and {len(split) - SPLITS_SHOWN} more episodes split where the log lacks part of them")
    return lines + lost


def cmd_import(args: argparse.Namespace) -> int:
    from dagger.formats.demos import demo_segments, read_dataset
    from dagger.tasks import make_task

    try:
        task = make_task(args.task)
        episodes = read_dataset(args.path, task)
    except (OSError, ValueError) as err:
        raise UserError(first_line(err, limit=1000)) from err
    steps, demo_steps = sum(len(ep) for ep in episodes), sum(len(seg) for seg in demo_segments(episodes))
    print(f"{args.path}: {len(episodes)} episodes, {steps} steps (obs {task.obs_dim}, act {task.act_dim}) fit task "
          f"{task.name}; a run starts from the {demo_steps} steps a person or demonstrator took: "
          f"dagger start --task {task.name} --demos {args.path}")
    return 0
