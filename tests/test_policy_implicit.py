"""The implicit family (IBC energies, DFO acting, IIFL's Jeffreys uncertainty): the estimator against hand
arithmetic, both modes of a bimodal expert kept where regression averages them, a linear map learnt, the
uncertainty off the data, weights round-tripped."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dagger.policies.base import PolicyConfig
from dagger.policies.ensemble import EnsemblePolicy
from dagger.policies.implicit import ImplicitPolicy

SMALL = PolicyConfig(type="implicit", negatives=64)  # fewer counter-examples than the default: a fast test


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As run_loop does (conftest's one_torch_thread, here for the module's shared trained policies too): two
    threads contending with the other tests' processes run these small nets ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(policy, obs: np.ndarray, act: np.ndarray, steps: int, batch: int = 64, seed: int = 0) -> None:
    """`steps` updates on minibatches (one per member) drawn from obs/act in task units."""
    rng = np.random.default_rng(seed)
    policy.set_normalizer(obs.mean(0), obs.std(0), act.mean(0), act.std(0))
    for _ in range(steps):
        idx = rng.integers(0, len(obs), (policy.members, batch))
        policy.update({"obs": obs[idx], "action": act[idx], "segment": np.ones_like(idx)})


def linear_energies(policy: ImplicitPolicy, slopes: tuple[float, float]) -> None:
    """Sets model j's energy to slopes[j] * a (obs_dim = act_dim = 1, one hidden layer of 2 units): hidden unit 0
    is relu(a + 5) = a + 5 on the box, the output slope * (a + 5) − 5 * slope."""
    net = policy.net
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.weights[0][:, 1, 0] = 1.0  # input 1 is the action (input 0 the obs)
        net.biases[0][:, 0, 0] = 5.0
        for j, slope in enumerate(slopes):
            net.weights[1][j, 0, 0] = slope
            net.biases[1][j, 0, 0] = -5.0 * slope


def test_jeffreys_matches_hand_computed_value():
    policy = ImplicitPolicy(1, 1, PolicyConfig(type="implicit", hidden=2, layers=1))
    linear_energies(policy, (2.0, -1.0))  # E0(a) = 2a, E1(a) = -a
    pop = torch.tensor([[-0.5, 0.5], [0.0, 1.0]])[:, None, :, None]  # model 0's samples, model 1's: [2, 1, 2, 1]
    with torch.no_grad():
        got = float(policy.divergence(torch.zeros(2, 1, 1), pop)[0])

    def softmax(logits):
        z = [math.exp(v) for v in logits]
        return [v / sum(z) for v in z]

    w0 = softmax([1.0, -1.0])  # -E0 at -0.5, 0.5
    w1 = softmax([0.0, 1.0])  # -E1 at 0, 1
    want = (w0[0] * (0.5 - -1.0) + w0[1] * (-0.5 - 1.0)  # E_{π0}[E1 − E0]
            + w1[0] * (0.0 - 0.0) + w1[1] * (2.0 - -1.0))  # E_{π1}[E0 − E1]
    assert got == pytest.approx(want, abs=1e-5)
    # and through act(): two different slopes disagree (J > 0), the samples are each model's [2 * samples, A]
    out = policy.act(np.zeros(1, np.float32))
    assert out.spread > 0.1 and out.samples.shape == (2 * policy.config.samples, 1)


def test_jeffreys_is_zero_for_identical_models():
    policy = ImplicitPolicy(3, 2, PolicyConfig(type="implicit"), seed=4)
    with torch.no_grad():
        for w in policy.net.parameters():
            w[1] = w[0]
    assert policy.act(np.array([0.3, -0.2, 0.9], np.float32)).spread == pytest.approx(0.0, abs=1e-5)
    pop = torch.rand(2, 5, 16, 2) * 2 - 1  # each model's own samples in 5 states
    with torch.no_grad():
        assert policy.divergence(torch.randn(5, 3).expand(2, -1, -1), pop).abs().max() < 1e-5


@pytest.fixture(scope="module")
def bimodal():
    """Constant observation, the expert's action +0.8 or -0.8 (50/50)."""
    rng = np.random.default_rng(0)
    obs = np.zeros((2000, 3), np.float32)
    act = rng.choice([-0.8, 0.8], (2000, 1)).astype(np.float32)
    return obs, act


def test_bimodal_expert_keeps_both_modes(bimodal):
    obs, act = bimodal
    torch.manual_seed(0)
    policy = ImplicitPolicy(3, 1, SMALL)
    train(policy, obs, act, steps=250)
    grid = torch.tensor([-0.8, 0.0, 0.8])[:, None]
    with torch.no_grad():
        feats = policy.norm_obs(obs[:1])[None].expand(2, -1, -1)
        energy = policy.energy(feats, policy.norm_act(grid)[None, None].expand(2, -1, -1, -1))[:, 0]
    # both models: each mode at least 3 nats (20x the probability density) below the midpoint
    assert (energy[:, 1] - energy[:, [0, 2]].max(1).values > 3.0).all(), energy
    actions, samples = [], []
    for seed in range(12):
        policy.rng = torch.Generator().manual_seed(100 + seed)
        out = policy.act(obs[0])
        actions.append(out.action[0])
        samples.append(out.samples[:, 0])
    actions_, samples_ = np.array(actions), np.concatenate(samples)
    assert (np.abs(np.abs(actions_) - 0.8) < 0.1).all(), actions_  # every executed action is on a mode
    assert (np.abs(samples_) > 0.5).all() and (np.abs(np.abs(samples_) - 0.8) < 0.15).mean() > 0.8, samples_
    assert (samples_ > 0).mean() > 0.2 and (samples_ < 0).mean() > 0.2, samples_  # both modes sampled
    # mean squared error averages the modes: the regressor's action is near 0, nowhere near either mode
    mse = EnsemblePolicy(3, 1, PolicyConfig(members=2))
    train(mse, obs, act, steps=250)
    assert abs(float(mse.act(obs[0]).action[0])) < 0.2


@pytest.fixture(scope="module")
def linear():
    """A policy trained on a = obs @ W (obs uniform in [-1, 1]^4, 2 action dims), with its W."""
    rng = np.random.default_rng(1)
    w = rng.uniform(-0.4, 0.4, (4, 2)).astype(np.float32)
    obs = rng.uniform(-1, 1, (4000, 4)).astype(np.float32)
    torch.manual_seed(0)
    policy = ImplicitPolicy(4, 2, SMALL, seed=1)
    train(policy, obs, obs @ w, steps=400)
    return policy, w


def test_linear_map_is_learnt(linear):
    policy, w = linear
    test = np.random.default_rng(2).uniform(-1, 1, (200, 4)).astype(np.float32)
    want = test @ w
    with torch.no_grad():
        got = policy.units(policy.greedy(policy.norm_obs(test)))
    # the labels' mean |a| is ~0.24: predicting their mean would err by that much
    assert np.abs(got - want).mean() < 0.03
    acted = np.array([policy.act(o).action for o in test[:30]])
    assert np.abs(acted - want[:30]).mean() < 0.03


def test_uncertainty_is_larger_off_the_data(linear):
    policy, _ = linear
    rng = np.random.default_rng(3)
    on = rng.uniform(-1, 1, (30, 4)).astype(np.float32)
    off = rng.choice([-6.0, 6.0], (30, 4)).astype(np.float32)  # far outside the training observations
    j_on = np.mean([policy.act(o).spread for o in on])
    j_off = np.mean([policy.act(o).spread for o in off])
    assert j_off > 3 * j_on, (j_on, j_off)  # measured 0.1-0.4 on, 1.7-5 off over 4 seeds


def test_greedy_is_deterministic_and_leaves_the_policy_alone(linear):
    policy, _ = linear
    obs = policy.norm_obs(np.random.default_rng(4).uniform(-1, 1, (16, 4)).astype(np.float32))
    state = policy.rng.get_state()
    with torch.no_grad():
        first, second = policy.greedy(obs), policy.greedy(obs)
    assert torch.equal(first, second) and torch.equal(state, policy.rng.get_state())


def test_weights_round_trip(linear):
    policy, _ = linear
    policy.version = 3
    weights = policy.weights()
    copies = [ImplicitPolicy(4, 2, SMALL, seed=1) for _ in range(2)]
    for copy in copies:
        copy.load(weights)
    obs = np.random.default_rng(5).uniform(-1, 1, (8, 4)).astype(np.float32)
    with torch.no_grad():
        assert torch.equal(copies[0].greedy(copies[0].norm_obs(obs)), policy.greedy(policy.norm_obs(obs)))
    for o in obs:  # fresh copies with the same seed draw alike: they act identically
        a, b = (copy.act(o) for copy in copies)
        assert np.array_equal(a.action, b.action) and a.spread == b.spread


def test_held_out_samples_do_not_train():
    policy = ImplicitPolicy(2, 1, SMALL)
    rng = np.random.default_rng(6)
    batch = {"obs": torch.from_numpy(rng.normal(size=(2, 8, 2)).astype(np.float32)),
             "action": torch.from_numpy(rng.uniform(-1, 1, (2, 8, 1)).astype(np.float32))}
    weight = torch.ones(2, 8)
    weight[:, :4] = 0.0
    changed = {**batch, "action": batch["action"].clone()}
    changed["action"][:, :4] = 0.5  # only held-out labels differ
    losses = []
    for b in (batch, changed):
        policy.rng = torch.Generator().manual_seed(0)  # the same negatives
        losses.append(policy.bc_loss(b, weight).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
