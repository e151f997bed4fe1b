"""Calibrated failure prediction: the scores, the conformal threshold's guarantee, the gate, the evaluator's event and
a run that calibrates its robots' gates."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagger.config import ConfigError, load_config
from dagger.core import PolicyOutput
from dagger.evaluation import Outcome
from dagger.events import read_events
from dagger.gates import ConformalGate, GateConfig, make_gate
from dagger.gates.conformal import Rollout, calibrate, calibration_event, conformal_threshold, measure
from dagger.gates.scores import ENTROPY_FLOOR, Scorer, chunk_entropy, mmd2
from dagger.metrics import calibration_summary
from dagger.tasks import make_task
from tests.conftest import point_config
from workers.evaluator import Evaluator
from workers.launch import clone_from_demos, run_loop


def out(spread: float = 0.0, samples=None) -> PolicyOutput:
    return PolicyOutput(np.zeros(2), spread, 1, samples=None if samples is None else np.asarray(samples, float))


def test_chunk_entropy_is_a_gaussian_of_the_samples_variance():
    samples = [[0.0, 1.0], [2.0, 1.0]]  # variances 1 and 0 (the floor)
    expected = 0.5 * math.log(2 * math.pi * math.e * (1 + ENTROPY_FLOOR)) + 0.5 * math.log(
        2 * math.pi * math.e * ENTROPY_FLOOR)
    assert chunk_entropy(np.asarray(samples)) == pytest.approx(expected)


def test_mmd_of_two_single_samples_and_of_equal_sets():
    x, y = np.array([[0.0, 0.0]]), np.array([[0.3, 0.4]])  # ‖x − y‖² = 0.25
    assert mmd2(x, y, bandwidth=0.5) == pytest.approx(2 - 2 * math.exp(-0.25 / 0.5))
    sets = np.random.default_rng(0).normal(size=(8, 3))
    assert mmd2(sets, sets[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_consistency_compares_with_the_previous_step_and_forgets_at_reset():
    scorer = Scorer("consistency")
    assert scorer(out(samples=[[0.0, 0.0]])) == 0.0  # nothing to compare with yet
    assert scorer(out(samples=[[0.3, 0.4]])) == pytest.approx(mmd2(np.array([[0.0, 0.0]]), np.array([[0.3, 0.4]])))
    scorer.reset()
    assert scorer(out(samples=[[5.0, 5.0]])) == 0.0


def test_scores_name_what_is_missing():
    with pytest.raises(ValueError, match="unknown score 'entropi'"):
        Scorer("entropi")
    with pytest.raises(ValueError, match="PolicyOutput.samples"):
        Scorer("entropy")(out(0.1))


def test_threshold_is_the_conformal_rank():
    scores = np.arange(1.0, 20.0)  # n = 19: ⌈20 · 0.95⌉ = 19th smallest
    assert conformal_threshold(scores, 0.05) == 19.0
    assert conformal_threshold(scores, 0.1) == 18.0
    assert conformal_threshold(scores[:10], 0.05) == math.inf  # too few for 5 %
    with pytest.raises(ValueError, match="false-alarm rate"):
        conformal_threshold(scores, 0.0)


@settings(max_examples=25, deadline=None)
@given(alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]), n=st.integers(20, 400), seed=st.integers(0, 2**31 - 1),
       shape=st.floats(0.3, 3.0))
def test_false_alarms_keep_the_finite_sample_bound(alpha, n, seed, shape):
    """Over many exchangeable calibration/test splits, a fresh score is above the threshold at most α + 1/(n+1) of
    the time on average, and at least α − 1/(n+1) when the rank exists (scores without ties)."""
    rng = np.random.default_rng(seed)
    calibration = rng.gamma(shape, size=(400, n))
    fresh = rng.gamma(shape, size=(400, 50))
    thresholds = np.array([conformal_threshold(row, alpha) for row in calibration])
    rate = float((fresh > thresholds[:, None]).mean())
    slack = 1 / (n + 1) + 3 * math.sqrt(alpha * (1 - alpha) / 400)  # + sampling error of the 400 splits' mean
    assert rate <= alpha + slack
    if math.isfinite(thresholds[0]):
        assert rate >= alpha - slack


def test_gate_asks_above_its_calibrated_threshold_and_keeps_a_prior_until_then():
    spread = make_gate(GateConfig(calibrate="conformal", score="spread", threshold=0.5))
    assert isinstance(spread, ConformalGate) and spread.tuned == ("threshold",)
    assert spread.should_request_help(out(0.6)) and not spread.should_request_help(out(0.4))
    spread.threshold = 0.3  # as the supervisor sets it (RobotController.set_thresholds)
    assert spread.should_request_help(out(0.4))
    entropy = make_gate(GateConfig(calibrate="conformal", score="entropy"))
    wide = out(samples=[[-1.0, -1.0], [1.0, 1.0]])
    assert not entropy.should_request_help(wide)  # no prior in entropy's units: asks only at overtime
    entropy.threshold = chunk_entropy(np.array([[0.0, 0.0], [0.1, 0.1]]))
    assert entropy.should_request_help(wide)


def test_gate_forgets_the_previous_samples_at_a_new_episode_and_under_an_operator():
    gate = make_gate(GateConfig(calibrate="conformal", score="consistency"))
    gate.threshold = 0.01
    assert not gate.should_request_help(out(samples=[[0.0, 0.0]]))
    assert gate.should_request_help(out(samples=[[1.0, 1.0]]))
    gate.new_episode()
    assert not gate.should_request_help(out(samples=[[-1.0, -1.0]]))
    gate.should_hand_back(np.zeros(2), out(samples=[[0.0, 0.0]]))
    assert not gate.should_request_help(out(samples=[[1.0, 1.0]]))


def test_unknown_calibration_is_named():
    with pytest.raises(ValueError, match="gate.calibrate 'isotonic'"):
        make_gate(GateConfig(calibrate="isotonic"))


def rollout(success: bool, *scores: float) -> Rollout:
    return Rollout(Outcome(success, 0.0, len(scores), False), np.asarray(scores, float))


def test_calibration_uses_successes_only_and_measure_counts_alarms_and_leads():
    runs = [rollout(True, *range(10)), rollout(False, 100, 100), rollout(True, *range(10, 19))]
    fit = calibrate(runs, 0.1)  # 19 success steps 0..18: the 18th smallest
    assert fit == {"threshold": 17.0, "calibration_episodes": 2, "calibration_steps": 19}
    held = [rollout(True, 1, 18, 2, 20), rollout(False, 0, 0, 30, 0, 0), rollout(False, 1, 1)]
    got = measure(held, 17.0, dt=0.1)
    assert got["false_alarm"] == 0.5 and got["detected"] == 0.5 and got["failures"] == 2
    assert got["lead_steps"] == 3 and got["lead_s"] == pytest.approx(0.3)


def test_calibration_event_splits_and_says_null_where_there_is_nothing():
    runs = [rollout(True, 1, 2), rollout(True, 3)]
    event = calibration_event(runs, 0.05, 0.5, dt=0.1)  # 2 calibration steps: too few for 5 %
    assert event["threshold"] is None and event["held_out"] == 1 and event["detected"] is None


def test_the_report_pools_held_out_false_alarms_over_versions():
    calibrations = [{"alpha": 0.05, "threshold": 1.0, "false_alarm": 0.1, "success_steps": 100},
                    {"alpha": 0.05, "threshold": 2.0, "false_alarm": 0.0, "success_steps": 300},
                    {"alpha": 0.05, "threshold": None, "false_alarm": None, "success_steps": 0}]
    assert calibration_summary(calibrations) == {"false_alarm_target": 0.05, "false_alarm_held_out": 0.025}
    assert calibration_summary([]) == {}


def test_evaluator_logs_a_calibration_of_each_version_it_scores(tmp_path):
    cfg = point_config("gate.calibrate=conformal", "gate.false_alarm=0.1", "eval.episodes=6", "demos=4")
    learner = clone_from_demos(cfg, make_task(cfg.task), tmp_path, 60)
    evaluator = Evaluator(cfg)
    evaluator.evaluate(learner.latest()[1])
    events = evaluator.poll()["events"]
    assert [e["ev"] for e in events] == ["eval", "calibration"]
    calibration = events[1]
    assert calibration["version"] == events[0]["version"] and calibration["score"] == "spread"
    assert calibration["alpha"] == 0.1 and calibration["held_out"] == 3
    wins = round(events[0]["success_rate"] * 6)
    assert calibration["calibration_episodes"] <= wins


def test_a_run_calibrates_its_robots_gates(tmp_path):
    cfg = point_config("gate.calibrate=conformal", "gate.score=entropy", "gate.false_alarm=0.1",
                       "eval.every_versions=3", "eval.episodes=8", "steps=1200", "demos=10",
                       "learner.pretrain_updates=400")
    summary = run_loop(cfg, tmp_path / "run")
    events = read_events(tmp_path / "run" / "events.jsonl")
    assert summary["false_alarm_target"] == 0.1
    calibrations = [e for e in events if e["ev"] == "calibration"]
    assert calibrations and all(e["score"] == "entropy" for e in calibrations)
    set_ = [e["threshold"] for e in calibrations if e["threshold"] is not None]
    assert set_, "no calibration had enough successful steps"
    asked = [e for e in events if e["ev"] == "help_requested" and e["reason"] == "conformal"]
    assert asked and all(e["threshold"] in set_ for e in asked)  # on a calibrated threshold (entropy has no prior)


@pytest.mark.parametrize(("overrides", "named"), [
    (["gate.calibrate=conformal", "gate.name=auto"], "gate.calibrate"),
    (["gate.calibrate=conformal", "eval.every_versions=0"], "eval.every_versions must be at least 1"),
    (["gate.false_alarm=1.0"], "gate.false_alarm"),
    (["gate.score=entropi"], "did you mean 'entropy'"),
    (["eval.calibration_share=0"], "eval.calibration_share"),
])
def test_config_names_a_wrong_calibration_setting(overrides, named):
    with pytest.raises(ConfigError, match=named):
        load_config(None, overrides)
