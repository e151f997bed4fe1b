"""The diffusion family: the noise schedule and DDIM by hand, two modes kept apart where a regressor averages them,
a linear map learnt, spread where the data is bimodal, receding-horizon execution, weights, images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dagger.policies.base import PolicyConfig
from dagger.policies.diffusion import Conv, DiffusionPolicy, cosine_alpha_bar, ddim_step, ddim_timesteps

OBS, ACT, K = 2, 2, 8
CONFIG = PolicyConfig(type="diffusion", chunk=K, execute=4, samples=32)
BIMODAL = np.array([0.0, -1.0], np.float32)  # obs = (x, flag): flag -1 -> a whole chunk of +0.8 or of -0.8
W = np.array([0.7, -0.5], np.float32)  # flag +1 -> every action of the chunk is W * x


def mixed_batch(rng: np.random.Generator, b: int) -> dict[str, np.ndarray]:
    """Half bimodal (constant obs, actions all +0.8 or all -0.8, 50/50), half the linear map; obs repeated over
    the history (a state held still)."""
    x = rng.uniform(-1, 1, b)
    linear = rng.random(b) < 0.5
    obs = np.stack([np.where(linear, x, 0.0), np.where(linear, 1.0, -1.0)], -1)
    sign = np.where(rng.random(b) < 0.5, 0.8, -0.8)
    action = np.where(linear[:, None], W * x[:, None], sign[:, None] * np.ones(ACT))
    return {"obs": np.repeat(obs[None, :, None], CONFIG.obs_steps, 2).astype(np.float32),
            "action": np.repeat(action[None, :, None], K, 2).astype(np.float32),
            "pad": np.zeros((1, b, K), bool), "segment": np.arange(b)[None]}


def normalised(policy: DiffusionPolicy) -> DiffusionPolicy:
    # the data's statistics: obs x ~ half 0 / half U[-1, 1], flag ±1; actions' std ≈ 0.63 (dim 0), 0.6 (dim 1)
    policy.set_normalizer(np.zeros(OBS), np.array([0.4, 1.0]), np.zeros(ACT), np.array([0.63, 0.6]))
    return policy


@pytest.fixture(scope="module")
def trained() -> DiffusionPolicy:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = normalised(DiffusionPolicy(OBS, ACT, CONFIG, seed=0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as run_loop does (see conftest's one_torch_thread): two threads on busy cores crawl
    try:
        for _ in range(1000):  # the linear map's error falls below 0.003 by then (five seeds)
            policy.update(mixed_batch(rng, 64))
    finally:
        torch.set_num_threads(threads)
    policy.version = 1
    return policy


def test_schedule_and_ddim_match_hand_computed_values():
    f = [math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2 for u in (0.0, 0.01, 0.99)]
    alpha_bar = cosine_alpha_bar(100)
    # squaredcos_cap_v2: ᾱ_t = f((t+1)/T) / f(0) while no β is capped; the last β is capped at 0.999
    assert alpha_bar[0].item() == pytest.approx(f[1] / f[0], rel=1e-6)
    assert alpha_bar[0].item() == pytest.approx(0.999369, abs=1e-6)  # β_0 ≈ 6.3e-4
    assert alpha_bar[98].item() == pytest.approx(f[2] / f[0], rel=1e-4)
    assert alpha_bar[99].item() == pytest.approx(0.001 * f[2] / f[0], rel=1e-4)
    assert ddim_timesteps(100, 8) == [84, 72, 60, 48, 36, 24, 12, 0]  # the reference's 8 steps
    # one step with the true noise lands exactly on the forward process at the lower level (x0 inside the box)
    x0, eps, a, a_prev = torch.tensor([0.5, -0.2]), torch.tensor([1.0, -2.0]), 0.3, 0.8
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    wide = torch.full((2,), 9.0)
    lower = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    assert torch.allclose(ddim_step(x_t, eps, a, a_prev, -wide, wide), lower)
    assert torch.allclose(ddim_step(x_t, eps, a, 1.0, -wide, wide), x0)
    # the predicted x0 is clipped to the box: x0 = 0.5 beyond high = 0.4
    assert ddim_step(x_t, eps, a, 1.0, -wide, torch.full((2,), 0.4))[0].item() == pytest.approx(0.4)


def test_small_batch_convolution_matches_torch():
    torch.manual_seed(0)
    for conv, length in ((Conv(6, 5, 5, padding=2), 8), (Conv(6, 6, 3, 2, 1), 8), (Conv(6, 3, 1), 4)):
        x = torch.randn(8, 6, length)
        with torch.no_grad():  # acting's path: 8 rows, no gradient -> the unfolded matmul
            fast = conv(x)
        assert torch.allclose(fast, nn.functional.conv1d(x, conv.weight, conv.bias, conv.stride, conv.padding),
                              atol=1e-5)


class Identity(nn.Module):
    """A stand-in denoiser that predicts ε = x_t."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return x


def test_two_step_sampler_matches_hand_computation():
    policy = DiffusionPolicy(OBS, ACT, PolicyConfig(type="diffusion", chunk=2, inference_steps=2), seed=3)
    policy.set_normalizer(np.zeros(OBS), np.ones(OBS), np.zeros(ACT), np.full(ACT, 2.0))  # box: ±0.5 normalised
    policy.net = Identity()
    assert policy.timesteps == [50, 0]
    a50, a0 = policy.alpha_bar[50].item(), policy.alpha_bar[0].item()
    z = torch.randn(4, 2, ACT, generator=torch.Generator().manual_seed(3))
    # step 1 (t = 50 -> 0): x0 = (z − √(1−ᾱ50) z) / √ᾱ50, clipped; x = √ᾱ0 x0 + √(1−ᾱ0) z
    x = math.sqrt(a0) * (z * (1 - math.sqrt(1 - a50)) / math.sqrt(a50)).clamp(-0.5, 0.5) + math.sqrt(1 - a0) * z
    # step 2 (t = 0 -> clean, ᾱ = 1): the clipped x0 estimate itself
    expected = (x * (1 - math.sqrt(1 - a0)) / math.sqrt(a0)).clamp(-0.5, 0.5)
    assert (expected.abs() == 0.5).any()  # the box bites
    got = policy.sample(torch.zeros(4, 1), torch.Generator().manual_seed(3))
    assert torch.allclose(got, expected, atol=1e-6)


def test_two_modes_are_sampled_not_averaged(trained):
    trained.reset()
    out = trained.act(BIMODAL)
    # a mean-squared-error regressor answers the data's mean, 0 here; the diffusion policy draws whole sequences
    # from one mode or the other
    first = out.samples[:, 0]
    assert (first > 0.4).sum() >= 4 and (first < -0.4).sum() >= 4
    assert (np.abs(first) < 0.4).sum() <= 4
    assert np.abs(out.samples).max() <= 1.0 + 1e-5  # clipped to the task's box
    plan = trained.units(trained.plan)  # [samples, horizon, act]: a sequence does not change mode midway
    assert (np.sign(plan) == np.sign(plan[:, :1, :1])).mean() > 0.9
    assert np.array_equal(out.action, out.samples[0])  # a real sample is executed, not the mean


def test_linear_map_is_learnt(trained):
    x = np.linspace(-1, 1, 21, dtype=np.float32)
    obs = torch.stack([torch.from_numpy(x), torch.ones(21)], -1)
    seen = trained.with_history(trained.norm_obs(obs))
    mine = trained.units(trained.greedy(seen))
    # predicting the mean (0) would err by E|W x|² = (0.49 + 0.25) / 3 ≈ 0.25: ask for 25x less
    assert float(((mine - W * x[:, None]) ** 2).sum(-1).mean()) < 0.01


def test_spread_is_higher_where_the_data_is_bimodal(trained):
    trained.reset()
    bimodal = trained.act(BIMODAL).spread
    linear = []
    for x in (-0.5, 0.0, 0.5):
        trained.reset()
        linear.append(trained.act(np.array([x, 1.0], np.float32)).spread)
    assert bimodal > 0.3  # the data's variance there: 0.64
    assert bimodal > 20 * max(linear)


def test_a_new_sequence_every_execute_steps_and_after_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    config = PolicyConfig(type="diffusion", chunk=K, execute=3, samples=4)
    policy = DiffusionPolicy(OBS, ACT, config, seed=0)
    plans: list[torch.Tensor] = []
    draw = policy.sample

    def counted(cond: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        plans.append(draw(cond, generator))
        return plans[-1]

    monkeypatch.setattr(policy, "sample", counted)
    obs = np.zeros(OBS, np.float32)
    for step in range(7):
        out = policy.act(obs)
        assert len(plans) == step // 3 + 1  # drawn at steps 0, 3, 6
        samples = policy.units(plans[-1][:, step % 3])  # every sample's action at this position
        assert out.samples is not None and np.allclose(out.samples, samples)
        assert np.allclose(out.action, samples[0])
        assert out.spread == pytest.approx(float(samples.var(0).mean()), rel=1e-5)
    policy.act(obs)
    assert len(plans) == 3  # step 7: the third sequence's second action
    policy.reset()
    assert len(policy.recent) == 0
    policy.act(obs)
    assert len(plans) == 4  # a new episode draws afresh


def test_greedy_is_deterministic_and_leaves_acting_alone():
    obs = np.array([0.3, -0.2], np.float32)
    policy, twin = DiffusionPolicy(OBS, ACT, CONFIG, seed=5), DiffusionPolicy(OBS, ACT, CONFIG, seed=5)
    batch = policy.with_history(torch.randn(6, OBS, generator=torch.Generator().manual_seed(0)))
    first = policy.greedy(batch)
    assert first.shape == (6, ACT)
    assert torch.equal(first, policy.greedy(batch))
    for _ in range(6):  # twin acts the same without the greedy calls between its steps
        policy.greedy(batch)
        assert np.array_equal(policy.act(obs).action, twin.act(obs).action)


def test_weights_round_trip_acts_identically():
    rng = np.random.default_rng(1)
    policy = normalised(DiffusionPolicy(OBS, ACT, CONFIG, seed=2))
    for _ in range(3):
        policy.update(mixed_batch(rng, 32))
    policy.version = 1
    fresh = DiffusionPolicy(OBS, ACT, CONFIG, seed=2)
    obs = np.array([0.1, 1.0], np.float32)
    assert not np.allclose(fresh.act(obs).action, policy.act(obs).action)  # the training changed the weights
    fresh.reset()
    policy.reset()
    fresh.load(policy.weights())
    for _ in range(6):
        mine, theirs = policy.act(obs), fresh.act(obs)
        assert np.array_equal(mine.action, theirs.action) and mine.spread == theirs.spread


def test_image_task_trains_and_acts_within_the_box():
    rng = np.random.default_rng(2)
    policy = DiffusionPolicy(OBS, ACT, CONFIG, seed=0, image_shape=(24, 24, 3))
    batch = mixed_batch(rng, 8)
    batch["image"] = rng.integers(0, 256, (1, 8, 24, 24, 3), dtype=np.uint8)
    losses = [policy.update(batch)["bc"] for _ in range(2)]
    assert all(math.isfinite(loss) for loss in losses)
    out = policy.act(BIMODAL, rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    assert out.action.shape == (ACT,) and np.abs(out.samples).max() <= 1.0 + 1e-5
    policy.reset()
    with pytest.raises(ValueError, match="image"):
        policy.act(BIMODAL)


def test_chunk_must_halve_through_the_unet():
    with pytest.raises(ValueError, match="multiple of 2"):
        DiffusionPolicy(OBS, ACT, PolicyConfig(type="diffusion", chunk=5))
