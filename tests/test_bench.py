"""`dagger bench` on a tiny fleet: every run's numbers come back from its events.jsonl."""

import csv
import json
import subprocess
import sys

import numpy as np

from dagger.bench import BenchConfig, run_bench, run_one
from dagger.events import read_events
from dagger.fleet_metrics import fleet_summary, rohe
from dagger.vec_tasks import VecPointObstacle

TINY = BenchConfig(robots=8, humans=2, steps=60, seeds=1, allocators=["cur", "random"], workers=1, demo_steps=5,
                   batch_size=32)


def test_bench_writes_results_events_and_plots(tmp_path):
    rows = run_bench(TINY, tmp_path)
    assert [(r["allocator"], r["seed"]) for r in rows] == [("cur", 0), ("random", 0)]
    with (tmp_path / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [row["allocator"] for row in table] == ["cur", "random"]
    for row in rows:
        events = read_events(tmp_path / "runs" / f"{row['allocator']}-0" / "events.jsonl")
        summary = fleet_summary(events)
        assert summary["steps"] == 60 and summary["successes"] == row["successes"]
        assert summary["human_actions"] <= 60 * TINY.humans  # at most one operator per robot, M operators
        assert summary["rohe"] == rohe(summary["successes"], summary["human_actions"])
        ifl = fleet_summary(events, mode="ifl")
        assert ifl["rohe_ifl"] == summary["successes"] - 0.01 * summary["human_actions"]
    assert (tmp_path / "plots" / "cumulative.png").stat().st_size > 5000
    assert (tmp_path / "plots" / "rohe.png").stat().st_size > 5000

    report = subprocess.run([sys.executable, "-m", "dagger.cli", "report", str(tmp_path), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    means = json.loads(report.stdout)
    assert set(means) == {"cur", "random"}
    assert means["cur"]["successes"] == [float(rows[0]["successes"]), 0.0]  # one seed: std 0
    md = (tmp_path / "report.md").read_text()
    assert "| cur |" in md and "plots/rohe.png" in md and "<table" in (tmp_path / "report.html").read_text()


def test_a_run_refuses_to_append_to_an_old_log(tmp_path):
    run_one(TINY, "cur", 0, tmp_path)
    try:
        run_one(TINY, "cur", 0, tmp_path)
    except ValueError as err:
        assert "exists" in str(err)
    else:
        raise AssertionError("a second run into the same directory must be refused")


def test_the_obstacle_task_expert_succeeds_without_violations():
    task = VecPointObstacle(500, seed=3)
    successes = violations = episodes = 0
    for _ in range(200):
        res = task.step(task.expert_actions())
        successes, violations, episodes = successes + res.success.sum(), violations + res.constraint.sum(), \
            episodes + res.done.sum()
        task.reset(res.done | res.constraint)
    assert violations == 0 and successes / episodes > 0.95
    straight = VecPointObstacle(500, seed=3)
    hits = 0
    for _ in range(200):
        res = straight.step(np.clip(4 * (straight.goal - straight.pos) - 1.5 * straight.vel, -1, 1))
        hits += res.constraint.sum()
        straight.reset(res.done | res.constraint)
    assert hits > 100  # going straight hits the obstacle: there is something to learn


def test_bench_cli_rejects_unknown_allocators(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dagger.cli", "bench", "--out", str(tmp_path / "b"),
                             "allocators=[cur, nope]"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown allocators ['nope']" in result.stderr
    assert not (tmp_path / "b").exists()


def test_bench_config_file_loads(tmp_path):
    from dagger.config import apply_settings

    cfg = BenchConfig()
    apply_settings(cfg, "configs/bench/fleet.yaml", ["seeds=1"])
    assert (cfg.robots, cfg.humans, cfg.min_steps, cfg.hard_reset_steps, cfg.seeds) == (100, 10, 5, 5, 1)
    assert json.loads(json.dumps(cfg.allocators)) == ["random", "fleet-ensemble", "fleet-thrifty", "cur", "fifo"]
