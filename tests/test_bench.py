"""`dagger bench` on a tiny fleet: every run's numbers come back from its events.jsonl."""

import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from dagger.app.bench import BenchConfig, SimulatedOperators, run_bench, run_one
from dagger.assignment import FleetAssigner
from dagger.config import ConfigError, apply_settings
from dagger.events import read_events
from dagger.fleet_metrics import fleet_summary, rohe
from dagger.vec_tasks import VecPointObstacle
from teleop_devices.scripted import HumanTraits

TINY = BenchConfig(robots=8, humans=2, steps=60, seeds=1, allocators=["cur", "random"], workers=1, demo_steps=5,
                   batch_size=32)
DT = VecPointObstacle.dt  # seconds per fleet step


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
        reacting = sum(e["reacting"] for e in events if e["ev"] == "fleet_step")
        assert 0 < reacting < summary["human_actions"]  # operators react before acting; that is human time
        assert summary["rohe"] == rohe(summary["successes"], summary["human_actions"])
        ifl = fleet_summary(events, mode="ifl")
        assert ifl["rohe_ifl"] == summary["successes"] - 0.01 * summary["human_actions"]
    report = subprocess.run([sys.executable, "-m", "dagger.app.cli", "report", str(tmp_path), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    means = json.loads(report.stdout)
    assert set(means) == {"cur", "random"}
    assert means["cur"]["successes"] == [float(rows[0]["successes"]), 0.0]  # one seed: std 0
    md = (tmp_path / "report.md").read_text()
    assert "| cur |" in md and "plots/rohe.png" in md and "<table" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "plots" / "cumulative.png").stat().st_size > 5000
    assert (tmp_path / "plots" / "rohe.png").stat().st_size > 5000


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
    result = subprocess.run([sys.executable, "-m", "dagger.app.cli", "bench", "--out", str(tmp_path / "b"),
                             "allocators=[cur, nope]"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown allocators ['nope']" in result.stderr
    assert not (tmp_path / "b").exists()


def test_bench_config_file_loads(tmp_path):
    from dagger.config import apply_settings

    cfg = BenchConfig()
    apply_settings(cfg, "configs/bench/fleet.yaml", ["seeds=1"])
    assert (cfg.robots, cfg.humans, cfg.min_steps, cfg.hard_reset_steps, cfg.seeds) == (100, 10, 5, 5, 1)
    assert json.loads(json.dumps(cfg.allocators)) == ["random", "fleet-ensemble", "fleet-thrifty", "cur", "fifo"]


def test_bench_config_sets_operator_traits_and_names_bad_ones(capsys, tmp_path):
    from dagger.app.cli import main

    cfg = BenchConfig()
    apply_settings(cfg, "configs/bench/fleet_human.yaml", ["operator.switch_s=1.0"])
    assert (cfg.operator.reaction_s, cfg.operator.noise, cfg.operator.switch_s) == (0.25, 0.05, 1.0)
    with pytest.raises(ConfigError, match="did you mean 'operator.noise'"):
        apply_settings(BenchConfig(), None, ["operator.nois=0.1"])
    assert main(["bench", "--out", str(tmp_path / "b"), "operator.reaction_s=-1"]) == 2
    assert "'operator': reaction_s must not be negative" in capsys.readouterr().err and not (tmp_path / "b").exists()


def fleet_of(humans=1, robots=3, min_steps=1, hard_reset_steps=3, **traits):
    """A fleet assigner and its simulated operators; traits default to none at all (instant, exact, tireless)."""
    exact = dict(reaction_s=0.0, reaction_sd_s=0.0, switch_s=0.0, noise=0.0, fatigue_per_min=0.0)
    ops = SimulatedOperators(HumanTraits(**{**exact, **traits}), humans, DT, np.random.default_rng(0))
    return FleetAssigner(humans, robots, min_steps, hard_reset_steps), ops


def drive(fleet, ops, schedule, steps, act_dim=2, stuck=()):
    """Every step's operator work; schedule: step -> the allocator's order from that step on; the expert's
    action is 0."""
    order, works = [], []
    for step in range(steps):
        order = schedule.get(step, order)
        fleet.assign(order)
        blocked = np.isin(np.arange(fleet.robots), stuck)
        works.append(ops.step(fleet, step, blocked, np.zeros((fleet.robots, act_dim))))
    return works


def first_action(works, robot, after=0):
    return next(step for step, w in enumerate(works) if step >= after and w.acting[robot])


def test_an_operator_without_reaction_time_acts_on_its_first_step():
    fleet, ops = fleet_of()
    works = drive(fleet, ops, {0: [1]}, 3)
    assert first_action(works, 1) == 0 and not works[0].reacting.any()
    assert works[0].acting.tolist() == [False, True, False] and np.all(works[0].actions[1] == 0.0)  # no noise


def test_a_robot_waits_its_operators_reaction_time_which_counts_as_human_time():
    fleet, ops = fleet_of(min_steps=2, reaction_s=3 * DT)  # 3 fleet steps
    works = drive(fleet, ops, {0: [1], 1: [0]}, 8)  # from step 1 the allocator prefers robot 0
    assert first_action(works, 1) == 3
    assert [w.helped[1] for w in works] == [True] * 5 + [False] * 3  # 3 steps reacting, then t_T = 2 acting
    assert [w.reacting[1] for w in works[:5]] == [True, True, True, False, False]
    assert sum(w.acting[1] for w in works) == 2
    fleet, ops = fleet_of(reaction_s=2 * DT, hard_reset_steps=3)
    works = drive(fleet, ops, {0: [0]}, 6, stuck=[0])
    assert [w.reset_done[0] for w in works] == [False] * 4 + [True, False]  # 2 steps reacting, then t_R = 3
    assert [w.reset_done[0] for w in drive(*fleet_of(hard_reset_steps=3), {0: [0]}, 4, stuck=[0])] == [
        False, False, True, False]


def test_switching_to_another_robot_adds_the_switch_cost():
    fleet, ops = fleet_of(reaction_s=2 * DT, switch_s=3 * DT)
    works = drive(fleet, ops, {0: [0], 3: [1], 9: [], 10: [1]}, 14)
    assert first_action(works, 0) == 2  # the operator's first robot: no switch
    assert first_action(works, 1) == 3 + 2 + 3  # moved to robot 1 at step 3: reaction + switch
    assert not works[9].helped[1] and first_action(works, 1, after=10) == 10 + 2  # back to the same robot


def test_fatigue_raises_noise_and_reaction_after_continuous_work_and_resets_after_rest():
    fleet, ops = fleet_of(noise=0.1, fatigue_per_min=60.0, rest_s=1.0)  # strain = 1 + seconds of work
    works = drive(fleet, ops, {0: [0], 20: [1], 21: [], 31: [2], 32: [], 60: [0]}, 61, act_dim=4000)
    noise = {step: float(np.std(works[step].actions[robot])) for step, robot in ((0, 0), (20, 1), (31, 2), (60, 0))}
    assert noise[0] == pytest.approx(0.1, rel=0.05)  # rested
    assert noise[20] == pytest.approx(0.2, rel=0.05)  # 1 s of continuous work: strain 2
    assert noise[31] == pytest.approx(0.255, rel=0.05)  # a 0.5 s break is not a rest: 1.55 s of work
    assert noise[60] == pytest.approx(0.1, rel=0.05)  # idle 1.4 s: rested
    ops = fleet_of(reaction_s=2 * DT, fatigue_per_min=60.0, rest_s=1.0)[1]
    reacting = []
    for step, robot in ((0, 0), (20, 1), (21, -1), (60, 0)):
        ops.assign(np.array([robot]), step)
        reacting.append(int(ops.reacting[0]))
    assert reacting == [2, 4, 0, 2]  # reaction doubles with strain 2 and is back to normal after the rest


def test_a_run_without_operator_traits_never_waits(tmp_path):
    exact = HumanTraits(reaction_s=0.0, reaction_sd_s=0.0, switch_s=0.0, noise=0.0)
    run_one(dataclasses.replace(TINY, operator=exact), "cur", 0, tmp_path)
    steps = [e for e in read_events(tmp_path / "events.jsonl") if e["ev"] == "fleet_step"]
    assert sum(e["reacting"] for e in steps) == 0 and sum(e["human_actions"] for e in steps) > 0


def test_allocators_see_the_critics_risk_signals(tmp_path):
    cfg = dataclasses.replace(TINY, robots=20, steps=300, update_every=1)
    run_one(cfg, "cur", 0, tmp_path)
    steps = [e for e in read_events(tmp_path / "events.jsonl") if e["ev"] == "fleet_step"]
    for signal in ("risk", "td_risk"):
        values = np.array([e[signal] for e in steps])
        assert ((0 <= values) & (values <= 1)).all()
        assert values.std() > 0.01, f"{signal} never changes: the allocator does not see the critic"
