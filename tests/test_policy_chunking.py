"""The chunking family (ACT-style): temporal ensembling, training on chunks, pad masking, weights, uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dagger.policies.base import PolicyConfig
from dagger.policies.chunking import ChunkingPolicy, temporal_ensemble

OBS, ACT, K, M = 4, 2, 4, 5
CONFIG = PolicyConfig(type="chunking", members=M, chunk=K)
# chunk step i's action is W[i] @ obs: a known linear function of the observation, different per step
W = np.random.default_rng(1).normal(0.0, 0.5, (K, ACT, OBS)).astype(np.float32)


def chunk_batch(rng: np.random.Generator, b: int) -> dict[str, np.ndarray]:
    """obs uniform in [-1, 1]; each sample's segment ends after 1..K steps, the rest edge-padded (as stored)."""
    obs = rng.uniform(-1, 1, (1, b, OBS)).astype(np.float32)
    action = np.einsum("kao,mbo->mbka", W, obs)
    live = rng.integers(1, K + 1, (1, b))
    pad = np.arange(K) >= live[..., None]
    last = np.take_along_axis(action, (live - 1)[..., None, None], 2)
    return {"obs": obs, "action": np.where(pad[..., None], last, action).astype(np.float32), "pad": pad,
            "segment": np.arange(b).reshape(1, b)}


@pytest.fixture(scope="module")
def trained() -> ChunkingPolicy:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = ChunkingPolicy(OBS, ACT, CONFIG, seed=0)
    policy.set_normalizer(np.zeros(OBS), np.full(OBS, 3 ** -0.5), np.zeros(ACT), np.full(ACT, 0.6))
    for _ in range(400):
        policy.update(chunk_batch(rng, 128))
    policy.version = 1
    return policy


def test_temporal_ensemble_matches_hand_computed_weights():
    # two heads, k = 3; the older chunk was predicted one step ago, so its entry 1 is its guess for now
    old = torch.tensor([[[1.0], [2.0], [3.0]], [[3.0], [4.0], [5.0]]])  # heads' mean for now: (2 + 4) / 2 = 3
    new = torch.tensor([[[10.0], [20.0], [30.0]], [[12.0], [0.0], [0.0]]])  # heads' mean for now: 11
    action, samples = temporal_ensemble([old, new], decay=1.0)
    # ACT: w_i = exp(-decay * i), i = 0 the oldest: (3 * 1 + 11 * e^-1) / (1 + e^-1) = 5.1512...
    assert action.item() == pytest.approx((3 + 11 * math.exp(-1)) / (1 + math.exp(-1)), abs=1e-5)
    assert action.item() == pytest.approx(5.1512, abs=1e-3)
    assert samples.flatten().tolist() == [2.0, 4.0, 10.0, 12.0]
    # ACT's rate 0.01 leans slightly towards the oldest: just under the plain mean 7
    action, _ = temporal_ensemble([old, new])
    assert action.item() == pytest.approx((3 + 11 * math.exp(-0.01)) / (1 + math.exp(-0.01)), abs=1e-5)
    assert 6.95 < action.item() < 7.0


def test_training_learns_chunks_of_a_linear_function(trained):
    rng = np.random.default_rng(7)
    test = chunk_batch(rng, 256)
    obs = trained.norm_obs(test["obs"][0])
    with torch.no_grad():
        chunks = trained.units(trained.net(trained.features(obs)).mean(0))  # [B, K, ACT]
    truth = np.einsum("kao,bo->bka", W, test["obs"][0])
    # predicting zero errs by E|a| ≈ 0.39 for this W; the chunks must be within a tenth of that (50 steps of
    # training leave 0.11, 400 steps 0.02)
    assert np.abs(truth).mean() > 0.35
    assert np.abs(chunks - truth).mean() < 0.04
    first = trained.units(trained.greedy(obs))
    assert np.abs(first - truth[:, 0]).mean() < 0.04


def test_padded_steps_and_held_out_samples_do_not_change_the_loss():
    policy = ChunkingPolicy(OBS, ACT, CONFIG, seed=3)
    batch = chunk_batch(np.random.default_rng(2), 16)
    normed = {key: torch.as_tensor(batch[key]) for key in ("obs", "action", "pad")}
    weight = torch.ones(1, 16)
    weight[:, :4] = 0.0
    drawn = policy.bootstrap.get_state()
    loss = policy.bc_loss(normed, weight)
    policy.bootstrap.set_state(drawn)
    mine = torch.rand(M, 16, generator=policy.bootstrap) < 0.5  # the half of the batch each head learns from
    assert 0 < mine.sum() < M * 16
    with torch.no_grad():  # by hand: the mean L1 over the counted steps (live, not held out, the head's own)
        err = (policy.net(normed["obs"][0]) - normed["action"][0]).abs().mean(-1)  # [M, 16, K]
    counted = ~normed["pad"][0] & (weight[0, :, None] > 0) & mine[..., None]
    assert loss.item() == pytest.approx(err[counted].mean().item(), rel=1e-5)

    def same_draw(actions: torch.Tensor) -> float:
        policy.bootstrap.set_state(drawn)
        return policy.bc_loss({**normed, "action": actions}, weight).item()

    garbage = normed["action"].clone()
    garbage[normed["pad"]] = 100.0  # past the segment's end
    garbage[:, :4] = -100.0  # held out
    assert same_draw(garbage) == pytest.approx(loss.item(), rel=1e-6)
    live = normed["action"].clone()
    live[0][counted.any(0)] += 10.0  # the steps some head counts: the loss must see them
    assert same_draw(live) > loss.item() + 5.0


def test_reset_forgets_the_chunks_and_the_queue_keeps_k(trained):
    obs = np.array([0.2, -0.1, 0.3, 0.0], np.float32)
    trained.reset()
    first = trained.act(obs)
    assert first.samples.shape == (M, ACT)  # one chunk, every head
    np.testing.assert_allclose(first.action, trained.units(trained.greedy(trained.norm_obs(obs)[None]))[0],
                               atol=1e-5)
    for step in range(2, K + 3):
        out = trained.act(obs)
        assert out.samples.shape == (min(step, K) * M, ACT)  # the live chunks: at most K
    trained.reset()
    again = trained.act(obs)
    assert again.samples.shape == (M, ACT)
    np.testing.assert_allclose(again.action, first.action, atol=1e-6)


def test_weights_round_trip_acts_identically(trained):
    copy = ChunkingPolicy(OBS, ACT, CONFIG, seed=9)
    copy.load(trained.weights())
    trained.reset()
    rng = np.random.default_rng(4)
    for _ in range(K + 2):
        obs = rng.uniform(-1, 1, OBS).astype(np.float32)
        mine, theirs = trained.act(obs), copy.act(obs)
        np.testing.assert_allclose(theirs.action, mine.action, atol=1e-6)
        assert theirs.spread == pytest.approx(mine.spread, rel=1e-5)


def test_image_policy_trains_and_round_trips():
    shape = (32, 32, 3)
    rng = np.random.default_rng(5)
    policy = ChunkingPolicy(OBS, ACT, CONFIG, seed=1, image_shape=shape)
    batch = {**chunk_batch(rng, 8), "image": rng.integers(0, 256, (1, 8, *shape), dtype=np.uint8)}
    before = policy.update(batch)["bc"]
    for _ in range(10):
        after = policy.update(batch)["bc"]
    assert after < before
    policy.version = 1
    copy = ChunkingPolicy(OBS, ACT, CONFIG, seed=2, image_shape=shape)
    copy.load(policy.weights())
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    obs = np.zeros(OBS, np.float32)
    np.testing.assert_allclose(copy.act(obs, image).action, policy.act(obs, image).action, atol=1e-6)


def test_spread_is_larger_off_the_training_data(trained):
    rng = np.random.default_rng(6)

    def spread(scale: float) -> float:
        values = []
        for _ in range(20):
            trained.reset()
            values.append(trained.act((rng.uniform(-1, 1, OBS) * scale).astype(np.float32)).spread)
        return float(np.mean(values))

    on, off = spread(1.0), spread(10.0)  # the training obs lie in [-1, 1]; measured: off ≈ 24x on
    assert off > 5 * on
