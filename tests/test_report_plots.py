"""`dagger report`'s plots, pages and TensorBoard scalars, from real event logs (hand-built and from real runs)."""

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from dagger.app.bench import BenchConfig, run_bench
from dagger.app.bench_report import bench_scalars, intervention_by_window, load_runs
from dagger.config import load_config
from dagger.events import EventLog, read_events
from dagger.metrics import (
    achieved_rate,
    achieved_rate_by_window,
    events_by_window,
    human_share_by_window,
    run_series,
    summarize,
)
from tests.conftest import run_dagger
from workers.launch import run_loop

ALPHA = 0.05


def dagger_report(*args: str) -> subprocess.CompletedProcess:
    result = run_dagger("report", *args, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in log_dir's event files, frame by frame (TFRecord: length, crc, event, crc)."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            header = data[at:at + 8]
            (length,), (header_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[at + 8:at + 12])
            body = data[at + 12:at + 12 + length]
            (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
            assert (header_crc, body_crc) == (masked_crc32c(header), masked_crc32c(body)), f"{path}: bad frame at {at}"
            event = Event.FromString(body)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
            at += 16 + length
    return scalars


def assert_same_points(read: list[tuple[int, float]], written: list[tuple[float, float]]) -> None:
    assert [s for s, _ in read] == [int(s) for s, _ in written]
    assert [v for _, v in read] == pytest.approx([float(v) for _, v in written], rel=1e-6)


def assert_a_real_plot(path: Path) -> None:
    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20  # lines, text, not one colour


def seg(t_end, steps, controller="policy", seq=0):
    return {"ev": "segment", "t": t_end, "t_end": t_end, "t_start": t_end - 0.5, "robot": 0, "seq": seq,
            "steps": steps, "controller": controller, "versions": [[1, steps]]}


# 20 fleet steps in 2 windows of 10: policy 0-7, human 7-15 (3 in the first window, 5 in the second), policy 15-20;
# help requests at positions 0, 7 and 20 (the last one after every step: it counts in the last window).
HAND_BUILT = [
    {"ev": "run_start", "t": 0.0, "robots": 1, "gate": "auto", "alpha": ALPHA},
    seg(3.0, 5, seq=2),
    {"ev": "help_requested", "t": 0.5, "robot": 0},
    seg(1.0, 7, seq=0),
    {"ev": "help_requested", "t": 1.5, "robot": 0},
    {"ev": "takeover", "t": 1.6, "robot": 0, "gated": "robot", "wait_s": 0.1},
    seg(2.0, 8, "operator:0", seq=1),
    {"ev": "episode_end", "t": 2.5, "robot": 0, "success": True, "human_steps": 8},
    {"ev": "help_requested", "t": 3.5, "robot": 0},
    {"ev": "episode_end", "t": 3.6, "robot": 0, "success": False, "human_steps": 0},
]


def test_windows_split_the_fleet_steps_in_end_time_order():
    segments = [e for e in HAND_BUILT if e["ev"] == "segment"]
    takeovers = [e for e in HAND_BUILT if e["ev"] == "takeover"]
    assert human_share_by_window(segments, 2) == [0.3, 0.5]
    assert events_by_window(segments, takeovers, 2) == [1, 0]
    assert achieved_rate_by_window(HAND_BUILT, 2) == [pytest.approx(2 / 9), pytest.approx(1 / 6)]
    assert achieved_rate(HAND_BUILT) == pytest.approx(3 / 15)


def test_run_series_has_alpha_only_for_gates_with_a_target_rate():
    series = run_series(HAND_BUILT, windows=2)
    assert series["step"] == [10, 20] and series["episode_success"] == [1.0, 0.0]
    assert series["alpha"] == ALPHA and series["achieved_rate"] == achieved_rate_by_window(HAND_BUILT, 2)
    ensemble = [{**e, "gate": "ensemble"} if e["ev"] == "run_start" else e for e in HAND_BUILT]
    assert "alpha" not in run_series(ensemble) and "achieved_rate" not in run_series(ensemble)


def test_bench_intervention_rate_is_human_actions_per_robot_in_each_window(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.write([{"ev": "run_start", "t": 0, "allocator": "cur", "seed": 0, "robots": 4}])
    zeros = dict.fromkeys(("violations", "hard_resets", "idle", "switches", "reward"), 0)
    log.write([{"ev": "fleet_step", "t": t, "human_actions": h, "successes": s, **zeros} for t, (h, s)
               in enumerate([(0, 1), (2, 0), (4, 2), (4, 1)])])
    log.close()
    events = read_events(tmp_path / "events.jsonl")
    assert intervention_by_window(events, 2) == [0.25, 1.0]
    assert bench_scalars(events) == {"fleet/cumulative_successes": [(1, 1.0), (2, 1.0), (3, 3.0), (4, 4.0)],
                                     "fleet/human_actions": [(1, 0.0), (2, 2.0), (3, 4.0), (4, 4.0)]}


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("auto")
    cfg = load_config(None, ["task=point", "robots=1", "steps=300", "gate.name=auto", f"gate.alpha={ALPHA}",
                             "learner.batch_size=32"])
    run_loop(cfg, run_dir)
    return run_dir


def test_run_report_writes_pages_and_plots_from_the_event_log_alone(auto_run, tmp_path):
    run_dir = tmp_path / auto_run.name
    run_dir.mkdir()
    shutil.copy(auto_run / "events.jsonl", run_dir / "events.jsonl")
    events = read_events(run_dir / "events.jsonl")
    assert json.loads(dagger_report(str(run_dir), "--json").stdout) == summarize(events)
    for plot in ("intervention", "alpha", "loss"):
        assert_a_real_plot(run_dir / "plots" / f"{plot}.png")
    md, page = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    assert "(plots/intervention.png)" in md and "(plots/alpha.png)" in md and f"alpha={ALPHA}" in md
    assert "<img src='plots/alpha.png'" in page and "<table" in page
    assert f"| takeovers | {sum(e['ev'] == 'takeover' for e in events)} |" in md


def test_run_tensorboard_scalars_read_back_as_the_reports_numbers(auto_run, tmp_path):
    dagger_report(str(auto_run), "--tensorboard", str(tmp_path / "tb"))
    read, events = read_scalars(tmp_path / "tb"), read_events(auto_run / "events.jsonl")
    summary = summarize(events)
    assert {"fleet/steps", "fleet/intervention_rate", "fleet/takeovers", "fleet/autonomous_success_rate",
            "learner/loss", "learner/updates", "gate/achieved_rate", "gate/target_alpha", "robot/0/steps"} <= set(read)
    steps = [s for s, _ in read["fleet/steps"]]
    assert steps == sorted(steps) and steps[-1] == summary["steps"]  # the step axis is the fleet's steps
    last = {tag: points[-1][1] for tag, points in read.items()}
    assert (last["fleet/steps"], last["fleet/human_steps"], last["fleet/takeovers"]) == (
        summary["steps"], summary["human_steps"], summary["takeovers"])
    assert last["learner/updates"] == summary["learner_updates"]
    assert last["gate/achieved_rate"] == pytest.approx(achieved_rate(events), rel=1e-6)
    assert [v for _, v in read["gate/target_alpha"]] == pytest.approx([ALPHA] * len(read["gate/target_alpha"]))


def test_a_run_without_a_target_rate_has_no_alpha_plot(tmp_path):
    cfg = load_config(None, ["task=point", "robots=1", "steps=200", "gate.name=ensemble", "learner.batch_size=32"])
    run_loop(cfg, tmp_path)
    dagger_report(str(tmp_path))
    assert_a_real_plot(tmp_path / "plots" / "intervention.png")
    assert not (tmp_path / "plots" / "alpha.png").exists() and "alpha" not in (tmp_path / "report.md").read_text()


def test_bench_report_draws_its_plots_from_the_events_and_writes_scalars_per_run(tmp_path):
    cfg = BenchConfig(robots=6, humans=2, steps=40, seeds=2, allocators=["cur", "random"], workers=1, demo_steps=5,
                      batch_size=32)
    run_bench(cfg, tmp_path)
    assert not (tmp_path / "plots").exists()  # the report draws them, from the runs' event logs
    dagger_report(str(tmp_path), "--tensorboard", str(tmp_path / "tb"))
    for plot in ("intervention", "cumulative", "rohe"):
        assert_a_real_plot(tmp_path / "plots" / f"{plot}.png")
        assert f"(plots/{plot}.png)" in (tmp_path / "report.md").read_text()
    runs = load_runs(tmp_path)
    assert sorted(runs) == ["cur-0", "cur-1", "random-0", "random-1"]
    for name, events in runs.items():
        read, written = read_scalars(tmp_path / "tb" / name), bench_scalars(events)
        assert set(read) == set(written) == {"fleet/cumulative_successes", "fleet/human_actions"}
        for tag, points in written.items():
            assert_same_points(read[tag], points)
        humans = [e["human_actions"] for e in events if e["ev"] == "fleet_step"]
        assert [v for _, v in read["fleet/human_actions"]] == humans  # 40 steps: every step, no subsampling
