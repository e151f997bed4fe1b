"""ThriftyDAgger, SafeDAgger and LazyDAgger: their rules on known cases, the signals they learn, and the loop."""

import numpy as np
import pytest
import torch

from buffers.schema import Segment
from buffers.transitions import POSITIVE_FRACTION, TransitionStore
from dagger.core import PolicyOutput
from dagger.critics import DiscrepancyClassifier, GoalCritic
from dagger.events import read_events
from dagger.gates import GateConfig, ThriftyGate, make_gate
from dagger.gates.safe import discrepancy
from dagger.policies import EnsemblePolicy
from tests.conftest import point_config
from workers.launch import run_loop


def out(action=(0.0, 0.0), spread=0.0, safety=1.0, p_safe=1.0, train_gap=0.0) -> PolicyOutput:
    return PolicyOutput(np.asarray(action, float), spread, 1, safety=safety, p_safe=p_safe, train_gap=train_gap)


# ---- ThriftyDAgger ----

def test_thrifty_asks_on_novelty_or_on_risk():
    gate = make_gate(GateConfig(name="thrifty", threshold=0.1, risk_threshold=0.4))
    assert not gate.should_request_help(out(spread=0.05, safety=0.9))
    assert gate.should_request_help(out(spread=0.2, safety=0.9))  # novel
    assert gate.should_request_help(out(spread=0.05, safety=0.3))  # risky


def test_thrifty_hands_back_when_close_to_the_human_and_safe():
    gate = make_gate(GateConfig(name="thrifty", back_safety=0.5))
    human = np.array([0.5, 0.0])
    assert gate.should_hand_back(human, out((0.5, 0.1), safety=0.6, train_gap=0.02))  # gap 0.01 < 0.02
    assert not gate.should_hand_back(human, out((0.5, 0.2), safety=0.6, train_gap=0.02))  # gap 0.04: too far
    assert not gate.should_hand_back(human, out((0.5, 0.1), safety=0.4, train_gap=0.02))  # close but unsafe


def test_thrifty_tunes_novelty_and_risk_from_robot_states():
    gate = ThriftyGate(GateConfig(name="thrifty", alpha=0.1, window=100000))
    rng = np.random.default_rng(0)
    spread, safety = rng.exponential(1.0, 50000), rng.uniform(0, 1, 50000)
    tuned = gate.observe(np.c_[spread, safety])
    assert tuned["threshold"] == pytest.approx(-np.log(0.1), rel=0.05)  # (1 - α) quantile of Exp(1)
    assert tuned["risk_threshold"] == pytest.approx(0.1, abs=0.01)  # α quantile of U(0, 1)
    assert tuned["back_safety"] == pytest.approx(0.5, abs=0.01)  # median
    # on fresh states from the same distribution, novelty and risk each ask at rate α: between α and 2α
    rate = np.mean([gate.should_request_help(out(spread=s, safety=q))
                    for s, q in zip(rng.exponential(1.0, 20000), rng.uniform(0, 1, 20000), strict=True)])
    assert rate == pytest.approx(1 - 0.9 * 0.9, abs=0.01)  # independent signals: 1 - (1 - α)²


def test_thrifty_keeps_its_priors_until_enough_states():
    gate = ThriftyGate(GateConfig(name="thrifty", min_states=25, threshold=0.02))
    assert gate.observe([[5.0, 0.0]] * 24) == {"threshold": 0.02, "risk_threshold": 0.48, "back_safety": 0.495}


def test_goal_critic_learns_the_discounted_chance_of_success():
    """A 5-state chain: s -> s+1, success at the end (reward 1); a dead end stops with reward 0."""
    torch.manual_seed(0)
    critic = GoalCritic(obs_dim=6, act_dim=1, hidden=32, gamma=0.9, polyak=0.8, lr=1e-2)
    eye = torch.eye(6)
    obs = eye[[0, 1, 2, 3, 4, 5]]
    nxt = eye[[1, 2, 3, 4, 4, 5]]
    reward = torch.tensor([0, 0, 0, 0, 1, 0.0])
    terminal = torch.tensor([0, 0, 0, 0, 1, 1.0])  # state 4 succeeds, state 5 is a dead end
    act = torch.zeros(6, 1)
    for _ in range(800):
        critic.update(obs, act, reward, nxt, act, terminal)
    expected = torch.tensor([0.9**4, 0.9**3, 0.9**2, 0.9, 1.0, 0.0])
    assert torch.allclose(critic.safety(obs, act), expected, atol=0.03)


def test_policy_trains_a_critic_on_stored_transitions_with_its_own_next_action():
    """The bench's safety critic: from state A the next step violates (reward 1), from B it never does."""
    torch.manual_seed(0)
    policy = EnsemblePolicy(2, 1, seed=0)
    critic = GoalCritic(2, 1, hidden=16, gamma=0.9, polyak=0.8, lr=1e-2)
    store = TransitionStore(obs_dim=2, act_dim=1)
    a, b = np.array([[1.0, 0.0]] * 50), np.array([[0.0, 1.0]] * 50)
    store.add(np.r_[a, b], np.zeros((100, 1)), np.r_[np.ones(50), np.zeros(50)], np.r_[a, b],
              np.r_[np.ones(50), np.zeros(50)])  # A: violation, terminal; B: loops back to B forever
    rng = np.random.default_rng(0)
    for _ in range(600):
        batch = store.sample(64, rng)
        assert batch is not None
        policy.update_critic(batch, critic)
    with torch.no_grad():
        x = policy.norm_obs(np.array([[1.0, 0.0], [0.0, 1.0]]))
        twins = critic.q(x, policy.greedy(x)).numpy()
    assert twins.max(0)[0] > 0.9 and twins.max(0)[1] < 0.1


def test_discrepancy_classifier_separates_where_the_policy_errs():
    torch.manual_seed(0)
    clf = DiscrepancyClassifier(obs_dim=1, hidden=16, lr=1e-2)
    x = torch.linspace(-1, 1, 200)[:, None]
    safe = (x[:, 0] < 0).float()  # the policy is right on the left half only
    for _ in range(500):
        clf.update(x, safe)
    p = clf.p_safe(torch.tensor([[-0.8], [0.8]]))
    assert p[0] > 0.9 and p[1] < 0.1


def test_policy_weights_carry_critic_classifier_and_training_gap():
    trained, fresh = EnsemblePolicy(6, 2, seed=0), EnsemblePolicy(6, 2, seed=1)
    trained.version, trained.train_gap = 3, 0.25
    fresh.load(trained.weights())
    obs = np.linspace(-1, 1, 6)
    a, b = trained.act(obs), fresh.act(obs)
    assert (a.safety, a.p_safe, b.train_gap) == (b.safety, b.p_safe, 0.25)
    assert 0 < a.safety < 1 and 0 < a.p_safe < 1


# ---- the goal critic's data ----

def segment(robot: int, seq: int, episode: int, obs: list[float], success: list[bool], done: list[bool]) -> Segment:
    steps = [{"obs": [o, 0.0], "action": [o], "policy_action": [0.0], "version": 1, "spread": 0.0, "threshold": 0.0,
              "reward": 0.0, "success": s, "constraint": False, "done": d, "step": i, "t_wall": 0.0}
             for i, (o, s, d) in enumerate(zip(obs, success, done, strict=True))]
    return Segment.from_steps(robot, seq, episode, "policy", "", 0.0, steps)


def test_transitions_chain_across_segments_of_one_episode():
    store = TransitionStore(obs_dim=2, act_dim=1)
    store.add_segment(segment(0, 0, 0, [1, 2], [False, False], [False, False]))
    assert len(store) == 1  # the last step waits for its next observation
    store.add_segment(segment(0, 1, 0, [3, 4], [False, True], [False, False]))  # handback, then success
    store.add_segment(segment(0, 2, 1, [10], [False], [False]))  # a new episode
    store.add_segment(segment(0, 3, 2, [20], [False], [False]))  # episode 1's last step never gets a successor
    assert store.obs.view()[:, 0].tolist() == [1, 2, 3, 4]  # 2 joined once segment 1 arrived
    assert store.next_obs.view()[:3, 0].tolist() == [2, 3, 4]
    assert store.reward.view().tolist() == [0, 0, 0, 1] and store.terminal.view().tolist() == [0, 0, 0, 1]


def test_critic_batches_up_sample_successes():
    store = TransitionStore(obs_dim=1, act_dim=1)
    n = 10000
    reward = np.zeros(n, np.float32)
    reward[:10] = 1  # 0.1 % successes
    store.add(np.zeros((n, 1)), np.zeros((n, 1)), reward, np.zeros((n, 1)), reward)
    batch = store.sample(1000, np.random.default_rng(0))
    assert batch is not None and batch["reward"].mean() == pytest.approx(POSITIVE_FRACTION, abs=0.01)


# ---- SafeDAgger and LazyDAgger ----

def test_safe_asks_and_hands_back_on_the_classifier_alone():
    gate = make_gate(GateConfig(name="safe"))
    assert gate.should_request_help(out(p_safe=0.4)) and not gate.should_request_help(out(p_safe=0.6))
    assert gate.should_hand_back(np.array([1.0, 1.0]), out((-1.0, -1.0), p_safe=0.6))  # no hysteresis


def test_lazy_hands_back_only_well_inside_the_safe_set():
    gate = make_gate(GateConfig(name="lazy", tau_sup=0.008, tau_auto=0.25))  # back below 0.002 · range²
    assert gate.should_request_help(out(p_safe=0.4))
    human = np.zeros(2)
    assert discrepancy(np.array([0.1, 0.1]), human) == pytest.approx(0.0025)
    assert not gate.should_hand_back(human, out((0.1, 0.1), p_safe=0.99))  # safe, but not within tau_auto
    assert gate.should_hand_back(human, out((0.08, 0.08), p_safe=0.1))  # 0.0016 < 0.002


# ---- in the loop ----

@pytest.mark.parametrize("gate", ["thrifty", "safe", "lazy"])
def test_learned_gates_ask_and_hand_back_in_the_loop(tmp_path, gate):
    run_loop(point_config(f"gate.name={gate}", "steps=1500", "operator.style=until_done"), tmp_path)
    events = read_events(tmp_path / "events.jsonl")
    asks = [e for e in events if e["ev"] == "help_requested" and e["reason"] == gate]
    assert asks, f"the {gate} gate never asked"
    assert any(e["ev"] == "handback" and e["reason"] == "released" for e in events), "the gate never handed back"
    trained = [e for e in events if e["ev"] == "learner"][-1]
    side = "critic" if gate == "thrifty" else "classifier"
    assert np.isfinite(trained[side])
    signal = [e["safety"] if gate == "thrifty" else e["p_safe"] for e in asks]
    assert len(set(signal)) > 1  # robots use the learned weights, not the initial ones
