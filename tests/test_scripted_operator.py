"""The simulated operator's traits: reaction-time distribution, switch cost, fatigue, style."""

import dataclasses

import numpy as np
import pytest

from dagger.help_queue import HelpQueue
from dagger.tasks import make_task
from teleop_devices.scripted import OperatorConfig, ScriptedOperator
from tests.conftest import point_config


def operators(n=4000, **traits):
    task = make_task("point")
    task.reset(seed=0)
    cfg = OperatorConfig(switch_s=0.5)
    return [ScriptedOperator(cfg, task, 0, seed, task.dt, **traits) for seed in range(n)]


def test_reaction_time_is_log_normal_with_the_configured_mean_and_spread():
    times = np.array([op.reaction_s for op in operators()])
    assert times.mean() == pytest.approx(0.25, abs=0.005) and times.std() == pytest.approx(0.05, abs=0.005)
    assert times.min() > 0 and np.median(times) < times.mean()  # right-skewed, like human reaction times


def test_switching_robots_costs_extra_and_fatigue_slows_and_shakes():
    rested = np.mean([op.reaction_s for op in operators(1000)])
    switching = np.mean([op.reaction_s for op in operators(1000, switching=True)])
    tired = operators(1000, strain=1.5)
    assert switching - rested == pytest.approx(0.5, abs=0.01)
    assert np.mean([op.reaction_s for op in tired]) == pytest.approx(1.5 * rested, rel=0.03)
    assert tired[0].noise == pytest.approx(0.15)


def test_styles():
    task = make_task("point")
    task.reset(seed=0)
    for style, expect_hand_back in (("brief", True), ("until_done", False)):
        cfg = dataclasses.replace(OperatorConfig(), style=style, reaction_s=0.0, reaction_sd_s=0.0,
                                  correction_steps=5)
        op = ScriptedOperator(cfg, task, 0, 0, task.dt)
        readings = [op.read() for _ in range(20)]
        assert any(r.hand_back for r in readings) == expect_hand_back


def test_an_operators_strain_grows_with_continuous_work_and_resets_after_rest():
    queue = HelpQueue.for_run(point_config("operator.fatigue_per_min=0.1", "operator.rest_s=60"), robots=1, now=0.0)
    queue.strain(0, 0.0)  # assigned at the start
    assert queue.strain(0, 600.0) == pytest.approx(2.0)  # ten minutes later, working all along
    queue.fatigue.free(0, 600.0)
    assert queue.strain(0, 630.0) == pytest.approx(1.0 + 0.1 * 630 / 60)  # a 30 s break is not a rest
    queue.fatigue.free(0, 700.0)
    assert queue.strain(0, 800.0) == pytest.approx(1.0)  # 100 s idle: rested
