"""The mlp-ensemble's fast update (closed-form gradients, fused Adam) against plain autograd + torch.optim.Adam."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from dagger.checkpoint import read_checkpoint, to_arrays, to_tensors, write_checkpoint
from dagger.nets import EnsembleMLP
from dagger.policies import BasePolicy, PolicyConfig, make_policy

OBS, ACT, MEMBERS, BATCH = 7, 3, 3, 16


def batches(count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Task-unit batches [M, B, ...] whose segment ids make some samples the classifier's holdout."""
    rng = np.random.default_rng(seed)
    return [{"obs": rng.normal(2.0, 3.0, (MEMBERS, BATCH, OBS)).astype(np.float32),
             "action": rng.normal(-1.0, 0.5, (MEMBERS, BATCH, ACT)).astype(np.float32),
             "human": np.ones((MEMBERS, BATCH), bool), "segment": rng.integers(0, 40, (MEMBERS, BATCH))}
            for _ in range(count)]


def policy() -> BasePolicy:
    p = make_policy(PolicyConfig(members=MEMBERS, hidden=16), OBS, ACT, seed=3)
    p.set_normalizer(np.full(OBS, 2.0), np.full(OBS, 3.0), np.full(ACT, -1.0), np.full(ACT, 0.5))
    return p


def by_autograd(p: BasePolicy) -> BasePolicy:
    """p training by autograd and a default torch.optim.Adam (BasePolicy's step), not the ensemble's own."""
    p.bc_step = types.MethodType(BasePolicy.bc_step, p)  # type: ignore[method-assign]
    return p


def assert_same_weights(a: BasePolicy, b: BasePolicy, tol: float = 1e-5) -> None:
    for name, values in a.weights().items():
        if isinstance(values, list) and name != "normalizer":
            for x, y in zip(values, b.weights()[name], strict=True):
                np.testing.assert_allclose(x, y, atol=tol, rtol=tol, err_msg=name)


@pytest.mark.parametrize("weighted", [False, True])
def test_closed_form_gradients_equal_autograds(weighted):
    net = EnsembleMLP(MEMBERS, [OBS, 16, 16, ACT], seed=1)
    gen = torch.Generator().manual_seed(0)
    x, target = torch.randn(MEMBERS, BATCH, OBS, generator=gen), torch.randn(MEMBERS, BATCH, ACT, generator=gen)
    weight = (torch.rand(MEMBERS, BATCH, generator=gen) > 0.3).float() if weighted else None
    loss, grads = net.mse_grads(x, target, weight)
    err = ((net(x) - target) ** 2).mean(-1)
    reference = err.mean() if weight is None else (err * weight).sum() / weight.sum().clamp(min=1.0)
    expected = torch.autograd.grad(reference, list(net.parameters()))
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("needs", [(), ("classifier",)])
def test_fast_updates_equal_autograd_and_adam(needs):
    fast, slow = policy(), by_autograd(policy())
    for batch in batches(6):
        got, want = fast.update(batch, needs=needs), slow.update(batch, needs=needs)
        assert got.keys() == want.keys()
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-5), name
    assert_same_weights(fast, slow)
    assert not np.allclose(fast.weights()["params"][0], policy().weights()["params"][0])  # it did train


def test_a_checkpoint_of_fast_training_resumes_exactly(tmp_path):
    trained, data = policy(), batches(8, seed=1)
    for batch in data[:4]:
        trained.update(batch, needs=("classifier",))
    trained.version = 1
    write_checkpoint(tmp_path, {"version": 1, "weights": to_tensors(trained.weights()),
                                "trainer": trained.trainer_state()})
    resumed, by_hand = policy(), by_autograd(policy())
    for p in (resumed, by_hand):  # each its own read: a loaded optimiser keeps the checkpoint's tensors
        ckpt = read_checkpoint(tmp_path)
        p.load(to_arrays(ckpt["weights"]))
        p.load_trainer_state(ckpt["trainer"])
    for batch in data[4:]:
        losses = trained.update(batch, needs=("classifier",))
        assert resumed.update(batch, needs=("classifier",)) == losses
        by_hand.update(batch, needs=("classifier",))
    assert_same_weights(trained, resumed, tol=0.0)
    assert_same_weights(trained, by_hand)  # the fast path's optimiser state is Adam's own


def test_an_image_ensemble_still_trains_by_autograd():
    p = make_policy(PolicyConfig(members=2, hidden=8), OBS, ACT, image_shape=(24, 24, 3))
    before = [w.copy() for w in p.weights()["encoder"]]
    rng = np.random.default_rng(0)
    p.update({"obs": rng.normal(size=(2, 4, OBS)).astype(np.float32),
              "action": rng.normal(size=(2, 4, ACT)).astype(np.float32),
              "image": rng.integers(0, 255, (2, 4, 24, 24, 3), dtype=np.uint8), "segment": np.ones((2, 4), int)})
    assert any(not np.array_equal(a, b) for a, b in zip(before, p.weights()["encoder"], strict=True))
