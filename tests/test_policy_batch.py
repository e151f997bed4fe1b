"""One policy acting for a group of robots: act_batch with a stream per robot gives, step after step and across an
episode reset, what each robot's own policy (seed = its id, the same weights) gives alone; the served policy answers a
batched request as it answers each robot's own, holds the whole batch on a missed deadline, and refuses a malformed
batch with an error that names the field."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from dagger.core import PolicyOutput, PolicyTimeout
from dagger.policies import BasePolicy, PolicyConfig, make_policy
from dagger.policies.remote import MAX_BATCH, PolicyServer, RemotePolicy, RemotePolicyError
from dagger.wire import new_token
from tests.conftest import wait_until

OBS, ACT = 4, 2
ROBOTS = [0, 3, 5]  # robot ids: each robot's own policy is seeded with its id
SMALL = {
    "mlp-ensemble": PolicyConfig(members=3, hidden=16),
    "chunking": PolicyConfig(type="chunking", members=3, chunk=4),
    "diffusion": PolicyConfig(type="diffusion", chunk=4, execute=3, samples=4, inference_steps=3, obs_steps=2),
    "implicit": PolicyConfig(type="implicit", hidden=16, samples=4),
}
IMAGE = (24, 24, 3)
# the step at which robot ROBOTS[1] starts a new episode, and at which the last robot is held (it does not act)
RESET_AT, HELD_AT = 5, 8


def weights(config: PolicyConfig, image_shape: tuple[int, int, int] | None = None) -> dict:
    """Weights no robot's own policy starts with, and a normaliser that is not the identity."""
    source = make_policy(config, OBS, ACT, seed=99, image_shape=image_shape)
    source.set_normalizer(np.full(OBS, 0.1), np.full(OBS, 0.7), np.full(ACT, -0.05), np.full(ACT, 0.5))
    source.version, source.train_gap = 2, 0.125
    return source.weights()


def loaded(config: PolicyConfig, seed: int, trained: dict, image_shape: tuple[int, int, int] | None = None
           ) -> BasePolicy:
    policy = make_policy(config, OBS, ACT, seed=seed, image_shape=image_shape)
    policy.load(trained)
    return policy


def assert_same(got: PolicyOutput, want: PolicyOutput, where: str) -> None:
    np.testing.assert_allclose(got.action, want.action, rtol=1e-5, atol=1e-5, err_msg=where)
    assert got.samples is not None and want.samples is not None
    np.testing.assert_allclose(got.samples, want.samples, rtol=1e-5, atol=1e-5, err_msg=where)
    for name in ("spread", "safety", "p_safe", "risk"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-5, abs=1e-6), (where, name)
    assert (got.version, got.train_gap) == (want.version, want.train_gap), where


def run_group(config: PolicyConfig, steps: int = 12, image_shape: tuple[int, int, int] | None = None) -> int:
    """Acts the group and the robots' own policies side by side; returns the robot-steps compared."""
    trained = weights(config, image_shape)
    group = loaded(config, seed=7, trained=trained, image_shape=image_shape)  # the group's seed does not matter
    own = [loaded(config, seed=robot, trained=trained, image_shape=image_shape) for robot in ROBOTS]
    streams = [group.stream(robot) for robot in ROBOTS]
    rng = np.random.default_rng(0)
    compared = 0
    for step in range(steps):
        obs = rng.normal(size=(len(ROBOTS), OBS)).astype(np.float32)
        images = None if image_shape is None else rng.integers(0, 256, (len(ROBOTS), *image_shape), dtype=np.uint8)
        if step == RESET_AT:
            streams[1].reset()
            own[1].reset()
        acting = [0, 1] if step == HELD_AT else [0, 1, 2]  # the worker asks only for the robots on the policy
        outs = group.act_batch(obs[acting], None if images is None else images[acting], [streams[i] for i in acting])
        for out, i in zip(outs, acting, strict=True):
            want = own[i].act(obs[i], None if images is None else images[i])
            assert_same(out, want, f"{config.type} step {step} robot {ROBOTS[i]}")
            compared += 1
    return compared


@pytest.mark.parametrize("family", sorted(SMALL))
def test_one_batched_call_acts_as_each_robots_own_policy(family, one_torch_thread):
    assert run_group(SMALL[family]) == 12 * 3 - 1


def test_an_image_task_acts_as_each_robots_own_policy(one_torch_thread):
    assert run_group(SMALL["diffusion"], steps=9, image_shape=IMAGE) == 9 * 3 - 1


def test_diffusion_draws_only_for_the_robots_whose_plan_is_used_up(monkeypatch, one_torch_thread):
    config = SMALL["diffusion"]  # execute 3: a robot draws at its steps 0, 3, 6, ...
    group = loaded(config, seed=0, trained=weights(config))
    drawn: list[int] = []
    sample = group.sample

    def counted(cond: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        drawn.append(len(cond) // config.samples)
        return sample(cond, generator)

    monkeypatch.setattr(group, "sample", counted)
    streams = [group.stream(robot) for robot in ROBOTS]
    obs = np.zeros((3, OBS), np.float32)
    group.act_batch(obs, None, streams)
    group.act_batch(obs, None, streams)
    assert drawn == [3]  # one pass for all three, none while their plans last
    streams[1].reset()
    group.act_batch(obs, None, streams)
    assert drawn == [3, 1]  # the new episode's robot alone
    group.act_batch(obs, None, streams)
    assert drawn == [3, 1, 2]  # the other two's plans are used up


def test_a_stream_reset_goes_on_with_the_robots_draws():
    """As a robot's own policy: a new episode forgets the plan but does not draw the same noise again."""
    config = SMALL["diffusion"]
    group = loaded(config, seed=0, trained=weights(config))
    stream, obs = group.stream(3), np.zeros((1, OBS), np.float32)
    first = group.act_batch(obs, None, [stream])[0]
    stream.reset()
    again = group.act_batch(obs, None, [stream])[0]
    assert not np.allclose(first.samples, again.samples)
    fresh = group.act_batch(obs, None, [group.stream(3)])[0]  # a new stream starts robot 3's draws over
    np.testing.assert_allclose(fresh.samples, first.samples, rtol=1e-5, atol=1e-6)


def test_a_batch_that_does_not_fit_is_refused():
    ensemble = make_policy(SMALL["mlp-ensemble"], OBS, ACT)
    streams = [ensemble.stream(robot) for robot in ROBOTS]
    with pytest.raises(ValueError, match=r"obs has shape \(2, 4\); 3 streams need \(3, 4\)"):
        ensemble.act_batch(np.zeros((2, OBS)), None, streams)
    with pytest.raises(ValueError, match="appears twice"):
        ensemble.act_batch(np.zeros((2, OBS)), None, [streams[0], streams[0]])
    chunking = make_policy(SMALL["chunking"], OBS, ACT)
    with pytest.raises(TypeError, match="robot 0's stream is a Stream; this chunking policy keeps a ChunkStream"):
        chunking.act_batch(np.zeros((3, OBS)), None, streams)
    assert ensemble.act_batch(np.zeros((0, OBS)), None, []) == []


# -- served ----------------------------------------------------------------------------------------------------------
def served(config: PolicyConfig) -> PolicyServer:
    trained = weights(config)
    return PolicyServer(lambda: loaded(config, seed=0, trained=trained), new_token())


def test_a_batched_request_answers_as_each_robots_own_requests():
    config = SMALL["chunking"]  # episode state on the server: its overlapping chunks
    with served(config) as batched, served(config) as single:
        group = RemotePolicy(batched.address, batched.token, deadline_ms=5000)
        streams = [group.stream(robot) for robot in ROBOTS]
        alone = [RemotePolicy(single.address, single.token, deadline_ms=5000, robot=robot) for robot in ROBOTS]
        rng = np.random.default_rng(1)
        for step in range(8):
            obs = rng.normal(size=(3, OBS)).astype(np.float32)
            if step == RESET_AT:
                streams[1].reset()  # reaches the server
                alone[1].reset()
            outs = group.act_batch(obs, None, streams if step % 2 else ROBOTS)  # streams or ids
            for i, out in enumerate(outs):
                want = alone[i].act(obs[i])
                np.testing.assert_array_equal(out.action, want.action)
                assert out.samples is not None and want.samples is not None
                np.testing.assert_array_equal(out.samples, want.samples)
                assert (out.spread, out.safety, out.p_safe, out.risk, out.version) == \
                    (want.spread, want.safety, want.p_safe, want.risk, want.version)
        assert group.version == 2
        assert sorted(batched.policies) == ROBOTS  # one policy (one episode) per robot on the server
        group.close()
        for remote in alone:
            remote.close()


class Counter:
    """The steps since reset as the action; obs[0] is how many seconds an act takes."""

    obs_dim, act_dim = 1, 1

    def __init__(self) -> None:
        self.version, self.steps = 0, 0

    def act(self, obs: np.ndarray, image: np.ndarray | None = None) -> PolicyOutput:
        time.sleep(float(obs[0]))
        self.steps += 1
        return PolicyOutput(np.array([float(self.steps)]), 0.0, self.version)

    def reset(self) -> None:
        self.steps = 0

    def load(self, weights: dict) -> None:
        self.version = int(weights["version"])


def test_a_missed_deadline_holds_the_whole_batch_and_a_retry_advances_each_robot_once():
    with PolicyServer(Counter, new_token()) as server:
        group = RemotePolicy(server.address, server.token, deadline_ms=100)
        slow = np.full((2, 1), 0.15)  # two acts of 0.15 s: past the deadline
        with pytest.raises(PolicyTimeout, match="100 ms"):
            group.act_batch(slow, None, [1, 2])
        wait_until(lambda: all(server.policies.get(r) is not None and server.policies[r].steps == 1 for r in (1, 2)),
                   what="the late answers")
        time.sleep(0.1)  # they are on their way back
        assert [out.action[0] for out in group.act_batch(slow, None, [1, 2])] == [1.0, 1.0]  # the late answers
        quick = np.zeros((2, 1))
        assert [out.action[0] for out in group.act_batch(quick, None, [1, 2])] == [2.0, 2.0]
        assert [out.action[0] for out in group.act_batch(quick[:1], None, [2])] == [3.0]
        group.reset(2)
        assert [out.action[0] for out in group.act_batch(quick, None, [1, 2])] == [3.0, 1.0]
        assert group.act(quick[0]).action[0] == 1.0  # the single-robot message still answers (robot 0)


@pytest.mark.parametrize("field, value, why", [
    ("robots", 3, "robots must be a list of 1 to 256 robot ids, got int"),
    ("robots", list(range(MAX_BATCH + 1)), "got 257 ids"),
    ("robots", [], "got 0 ids"),
    ("robots", [0, -1, 2], "robot must be an id >= 0, got -1"),
    ("robots", [0, True, 2], "robot must be an id >= 0, got True"),
    ("robots", [0, 2, 2], "name a robot twice"),
    ("obs", np.zeros((2, OBS), np.float32), r"obs must be numbers \[K, obs_dim\] for K = 3 robots, got float32 \[2, 4"),
    ("obs", np.zeros(3 * OBS, np.float32), r"for K = 3 robots, got float32 \[12\]"),
    ("obs", [[0.0] * OBS] * 3, "obs must be numbers .* got list"),
    ("obs", "zeros", "obs must be numbers .* got str"),
    ("obs", np.zeros((3, OBS), np.complex64), r"obs must be numbers .* got complex64 \[3, 4\]"),
    ("images", np.zeros((3, 8, 8, 3), np.float32), r"images must be uint8 \[K, H, W, 3\] for K = 3 robots, got float"),
    ("images", np.zeros((2, 8, 8, 3), np.uint8), "images must be uint8"),
    ("t", [0, 0], "t must be a list of 3 step counts"),
    ("t", [0, "1", 0], "t must be a list of 3 step counts"),
    ("reset", [1, 0, 0], "reset must be a list of 3 booleans"),
    ("instruction", 5, "instruction must be a string"),
])
def test_a_malformed_batch_gets_an_error_naming_the_field(field, value, why):
    config = SMALL["mlp-ensemble"]
    with served(config) as server:
        remote = RemotePolicy(server.address, server.token, deadline_ms=5000)
        request = {"kind": "act_batch", "robots": [0, 1, 2], "obs": np.zeros((3, OBS), np.float32), field: value}
        with pytest.raises(RemotePolicyError, match=f"act_batch failed: ValueError: .*{why}"):
            remote.call(request, 5.0)
        assert not server.policies  # refused before any robot's policy moved
        outs = remote.act_batch(np.zeros((3, OBS), np.float32), None, [0, 1, 2])  # the server serves on
        assert [out.action.shape for out in outs] == [(ACT,)] * 3
        remote.close()


def test_the_client_refuses_a_batch_it_cannot_send():
    remote = RemotePolicy("127.0.0.1:9", new_token(), deadline_ms=50)  # never reached
    with pytest.raises(ValueError, match="3 robots, 2 observations"):
        remote.act_batch(np.zeros((2, OBS)), None, [0, 1, 2])
    with pytest.raises(ValueError, match="distinct ids"):
        remote.act_batch(np.zeros((2, OBS)), None, [1, 1])
