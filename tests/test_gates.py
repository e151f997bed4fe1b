import numpy as np
import pytest

from dagger.core import PolicyOutput
from dagger.gates import AutoGate, GateConfig, make_gate


def out(spread: float, action=(0.0, 0.0)) -> PolicyOutput:
    return PolicyOutput(np.asarray(action, float), spread, 1)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1, 0.3])
def test_auto_threshold_converges_to_the_alpha_quantile(alpha):
    rng = np.random.default_rng(0)
    gate = AutoGate(GateConfig(name="auto", alpha=alpha, window=20000, threshold=123.0, adapt=0.0))
    for _ in range(40):
        gate.observe(np.c_[rng.exponential(1.0, 500), np.ones(500)])
    expected = -np.log(alpha)  # (1 - alpha) quantile of Exp(1)
    assert gate.threshold == pytest.approx(expected, rel=0.08)
    # and it asks for help at the target rate on fresh states from the same distribution
    asks = np.mean([gate.should_request_help(out(s)) for s in rng.exponential(1.0, 20000)])
    assert asks == pytest.approx(alpha, rel=0.15, abs=0.004)


def falling_spread_rates(alpha: float, adapt: float, seed: int, steps: int = 6000) -> tuple[float, float]:
    """Requests per state while the spread falls (Exp with scale e^(-t/3000)), fed in batches of 20 over a window of
    500 as a fleet's polls: over the run and over its second half."""
    rng = np.random.default_rng(seed)
    gate = AutoGate(GateConfig(name="auto", alpha=alpha, window=500, adapt=adapt, threshold=1.0))
    asked: list[bool] = []
    for start in range(0, steps, 20):
        spreads = rng.exponential(np.exp(-np.arange(start, start + 20) / 3000))
        asked.extend(spreads > gate.threshold)
        gate.observe(np.c_[spreads, np.ones(20)])
    return float(np.mean(asked)), float(np.mean(asked[steps // 2:]))


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_auto_holds_its_rate_while_the_spread_falls(alpha):
    plain = np.mean([falling_spread_rates(alpha, 0.0, seed)[1] for seed in range(4)])
    adapted = np.mean([falling_spread_rates(alpha, 0.002, seed)[1] for seed in range(4)])
    assert plain < 0.87 * alpha  # the quantile over past states lags above the present ones
    assert adapted == pytest.approx(alpha, rel=0.1)


def test_auto_correction_stays_stable_with_big_batches():
    rng = np.random.default_rng(1)
    gate = AutoGate(GateConfig(name="auto", alpha=0.1, window=5000, adapt=0.002))
    for _ in range(30):
        gate.observe(np.c_[rng.exponential(1.0, 1000), np.ones(1000)])
    assert gate.level == pytest.approx(0.1, abs=0.03) and gate.threshold == pytest.approx(-np.log(0.1), rel=0.15)


def test_auto_keeps_the_prior_until_enough_states():
    gate = AutoGate(GateConfig(name="auto", threshold=0.5, min_states=25))
    assert gate.observe([[10.0, 1.0]] * 24) == {"threshold": 0.5}
    assert gate.observe([[10.0, 1.0]]) == {"threshold": 10.0}


def test_ensemble_gate_is_a_fixed_threshold():
    gate = make_gate(GateConfig(name="ensemble", threshold=0.1))
    assert gate.should_request_help(out(0.11)) and not gate.should_request_help(out(0.1))


def test_never_and_human_gates_never_ask():
    for name in ("never", "human"):
        gate = make_gate(GateConfig(name=name, threshold=0.0))
        assert not any(gate.should_request_help(out(s)) for s in (0.0, 1.0, 1e9))


def test_random_gate_asks_at_its_rate():
    gate = make_gate(GateConfig(name="random", rate=0.2), seed=3)
    rate = np.mean([gate.should_request_help(out(0.0)) for _ in range(20000)])
    assert rate == pytest.approx(0.2, abs=0.015)


def test_hand_back_after_agreeing_for_k_steps():
    gate = make_gate(GateConfig(agree_steps=3, agree_tol=0.01))
    close, far = out(0.0, (0.5, 0.5)), out(0.0, (-0.5, 0.5))
    human = np.array([0.5, 0.55])
    assert [gate.should_hand_back(human, close) for _ in range(2)] == [False, False]
    assert not gate.should_hand_back(human, far)  # disagreement resets the count
    assert [gate.should_hand_back(human, close) for _ in range(3)] == [False, False, True]


def test_hand_back_rule_off_by_default():
    gate = make_gate(GateConfig())
    assert not any(gate.should_hand_back(np.zeros(2), out(0.0)) for _ in range(100))


def test_unknown_gate_is_named():
    with pytest.raises(ValueError, match="unknown gate 'nope'"):
        make_gate(GateConfig(name="nope"))


def test_ensembledagger_needs_low_spread_and_agreement_with_the_expert():
    gate = make_gate(GateConfig(name="ensembledagger", threshold=0.1, tau=0.01))
    assert gate.needs_expert
    agree = np.array([0.0, 0.0])
    assert not gate.should_request_help(out(0.05, (0.05, 0.0)), agree)  # gap 0.00125 < tau, spread < chi
    assert gate.should_request_help(out(0.2, (0.0, 0.0)), agree)  # unsure
    assert gate.should_request_help(out(0.05, (0.3, 0.0)), agree)  # sure but wrong: gap 0.045 > tau
    with pytest.raises(ValueError, match="needs the expert's action"):
        gate.should_request_help(out(0.05))


@pytest.mark.parametrize("name, overtime, horizon, asks_from", [
    ("ensemble", 0.75, 80, 60), ("random", 0.5, 90, 45), ("ensemble", 0.0, 80, None), ("ensemble", 0.75, 0, None),
    ("never", 0.75, 80, None), ("human", 0.75, 80, None)])
def test_overtime_asks_once_the_share_of_the_time_limit_has_passed(name, overtime, horizon, asks_from):
    gate = make_gate(GateConfig(name=name, overtime=overtime))
    asks = [step for step in range(200) if gate.overtime(step, horizon)]
    assert (asks[0] if asks else None) == asks_from
