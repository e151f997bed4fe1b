"""Every policy family in the live loop: trained by the continuous learner, acting in the robots with gates that read
its uncertainty and the learned signals, checkpointed and evaluated alone; and a served policy (policy.type=remote)
through `dagger serve`, with a robot that holds while its policy server is late."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dagger.checkpoint import policy_from, read_checkpoint
from dagger.control import State
from dagger.core import PolicyOutput
from dagger.evaluation import evaluate_policy
from dagger.events import read_events
from dagger.metrics import of_kind
from dagger.policies import POLICIES, EnsemblePolicy, PolicyConfig
from dagger.policies.diffusion import DiffusionPolicy
from dagger.policies.remote import PolicyServer
from dagger.tasks import make_task
from dagger.wire import new_token
from tests.conftest import ROOT, point_config
from tests.one_robot import OneRobot
from workers.buffer import BufferWorker
from workers.launch import run_loop
from workers.transport import LocalEndpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = ["steps=300", "learner.pretrain_updates=30", "learner.batch_size=16", "learner.publish_every=10",
         "policy.chunk=4", "policy.execute=2", "policy.samples=4", "policy.denoise_steps=20",
         "policy.inference_steps=2", "policy.negatives=16", "learner.checkpoint_every=0", "eval.every_versions=0",
         "learner.max_updates_per_s=100"]


@pytest.mark.parametrize("gate", ["auto", "thrifty", "lazy"])
@pytest.mark.parametrize("family", sorted(set(POLICIES) - {"mlp-ensemble"}))  # its gates: test_loop, test_learned_gates
def test_each_family_runs_the_loop_with_a_gate(tmp_path, family, gate):
    """auto reads the family's uncertainty, thrifty the goal critic, lazy the discrepancy classifier."""
    cfg = point_config(*SMALL, f"policy.type={family}", f"gate.name={gate}")
    summary = run_loop(cfg, tmp_path)
    events = read_events(tmp_path / "events.jsonl")
    assert of_kind(events, "run_start")[0]["policy"] == family
    assert summary["steps"] >= cfg.steps and summary["takeovers"] > 0  # the gate asked on the family's signals
    assert summary["learner_updates"] > cfg.learner.pretrain_updates and summary["weights_published"] > 1
    ckpt = read_checkpoint(tmp_path)
    assert ckpt["policy"]["type"] == family
    task = make_task(cfg.task)
    policy = policy_from(ckpt, task)
    assert type(policy) is POLICIES[family] and policy.version == ckpt["version"] > 1
    result = evaluate_policy(policy, task, [900_000, 900_001])
    assert result["episodes"] == 2


@pytest.mark.parametrize("gate, family", [("never", "chunking"), ("random", "diffusion"), ("human", "implicit"),
                                          ("ensemble", "diffusion"), ("ensembledagger", "chunking"),
                                          ("safe", "implicit"), ("auto", "remote")])
def test_every_other_gate_runs_with_another_family(tmp_path, gate, family):
    """The gates not in the matrix above, each with a family other than the ensemble (remote: serving chunking)."""
    cfg = point_config(*SMALL, f"policy.type={family}", "policy.serve=chunking", f"gate.name={gate}",
                       "gate.rate=0.05")
    summary = run_loop(cfg, tmp_path)
    assert summary["steps"] >= cfg.steps and summary["learner_updates"] > cfg.learner.pretrain_updates
    assert (summary["takeovers"] == 0) == (gate == "never")
    assert (summary["human_gated_takeovers"] > 0) == (gate == "human")


def test_a_checkpoint_of_one_family_is_refused_by_another(tmp_path):
    cfg = point_config(*SMALL, "policy.type=implicit", "gate.name=never")
    run_loop(cfg, tmp_path)
    ckpt = read_checkpoint(tmp_path)
    ckpt["policy"]["type"] = "mlp-ensemble"  # as if the file said so: its weights are an implicit policy's
    with pytest.raises(ValueError, match="'implicit' policy cannot load into a 'mlp-ensemble'"):
        policy_from(ckpt, make_task(cfg.task))


class Slow:
    """A hosted policy that answers after `delay` seconds (a policy server on a busy GPU)."""

    def __init__(self, delay: float) -> None:
        self.inner, self.delay = EnsemblePolicy(6, 2, PolicyConfig(members=2, hidden=8)), delay
        self.version, self.answered = 0, 0

    def act(self, obs: np.ndarray, image: np.ndarray | None = None, instruction: str = "") -> PolicyOutput:
        time.sleep(self.delay)
        self.answered += 1
        return self.inner.act(obs)

    def reset(self) -> None:
        self.inner.reset()

    def load(self, weights: dict) -> None:
        self.inner.load(weights)


def test_a_robot_holds_while_its_policy_server_is_late(tmp_path):
    token = new_token()
    (tmp_path / "token").write_text(token.hex())
    slow = Slow(2.0)
    with PolicyServer(lambda: slow, token) as server:
        cfg = point_config("policy.type=remote", f"policy.address={server.address}",
                           f"policy.token_file={tmp_path / 'token'}", "policy.deadline_ms=50")
        buffer = BufferWorker(tmp_path / "segments")
        robot = OneRobot(0, cfg, LocalEndpoint(buffer))
        robot.set_weights({"version": 1})  # a served robot takes no weights: it leaves its start
        robot.tick()  # the episode starts; the answer is late: no step
        robot.tick()
        assert robot.total_steps == 0 and robot.state is State.AUTONOMOUS
        assert slow.answered == 0  # the robot held at its deadline, without waiting for the answer
        assert [e["ev"] for e in robot.poll()["events"]].count("policy_late") == 1
        slow.delay = 0.0
        deadline = time.monotonic() + 60  # the late answer comes first (2 s), then answers in time
        while robot.total_steps == 0 and time.monotonic() < deadline:
            robot.tick()
        assert robot.total_steps == 1  # answered in time again: it moves
        assert "policy_back" in [e["ev"] for e in robot.poll()["events"]]
        buffer.close()


def test_dagger_serve_hosts_a_checkpoint_for_a_run_of_robots(tmp_path):
    trained = tmp_path / "trained"
    run_loop(point_config(*SMALL, "gate.name=never"), trained)
    serve = subprocess.Popen([sys.executable, "-m", "dagger.app.cli", "serve", str(trained), "--port", "0",
                              "--token-file", str(tmp_path / "token")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        found = re.search(r"at (127\.0\.0\.1:\d+)", line)
        assert found, line
        assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600
        run = tmp_path / "served"
        cfg = point_config("steps=300", "gate.name=never", "policy.type=remote", f"policy.address={found[1]}",
                           f"policy.token_file={tmp_path / 'token'}", "policy.deadline_ms=2000")
        summary = run_loop(cfg, run)
        events = read_events(run / "events.jsonl")
        assert summary["steps"] >= 300
        # the served checkpoint is frozen: the run's learner pushed its weights and was refused, and the robots
        # report the server's version, never their own
        assert len(of_kind(events, "policy_server_refused")) == 1  # said once, not once per version
        served = read_checkpoint(trained)["version"]
        versions = {v for s in of_kind(events, "segment") if s["controller"] == "policy" for v, _ in s["versions"]}
        assert versions == {served}
        # the learning curve scores the policy the robots ran (the server's), not the run's own learner
        assert of_kind(events, "eval") and {e["version"] for e in of_kind(events, "eval")} == {served}
    finally:
        serve.terminate()
        serve.wait(10)


def test_weights_of_another_network_size_are_refused_and_change_nothing():
    five, one = EnsemblePolicy(6, 2, PolicyConfig(members=5)), EnsemblePolicy(6, 2, PolicyConfig(members=1))
    before = [p.detach().clone() for p in five.net.parameters()]
    with pytest.raises(ValueError, match=r"params\[0\] have shape \(1, 6, 64\).*\(5, 6, 64\)"):
        five.load({**one.weights(), "version": 3})
    assert five.version == 0 and all(torch.equal(a, b) for a, b in zip(before, five.net.parameters(), strict=True))


def test_diffusion_leaves_actions_past_a_segments_end_out_of_its_loss():
    """A segment ends at every hand-back: what the edge padding says there ("stay") is no label."""
    policy = DiffusionPolicy(3, 2, PolicyConfig(type="diffusion", chunk=4, obs_steps=1), seed=0)
    rng = np.random.default_rng(0)
    batch = {"obs": torch.from_numpy(rng.normal(size=(1, 8, 3)).astype(np.float32)),
             "action": torch.from_numpy(rng.normal(size=(1, 8, 4, 2)).astype(np.float32)),
             "pad": torch.from_numpy(np.arange(4) >= rng.integers(1, 5, (1, 8, 1)))}
    drawn = policy.noise.get_state()

    def loss(actions: torch.Tensor) -> float:
        policy.noise.set_state(drawn)
        return policy.bc_loss({**batch, "action": actions}, None).item()

    with torch.no_grad():  # by hand: the same noise, the ε error at the live positions only
        policy.noise.set_state(drawn)
        t = torch.randint(0, len(policy.alpha_bar), (8,), generator=policy.noise)
        eps = torch.randn((8, 4, 2), generator=policy.noise)
        alpha = policy.alpha_bar[t][:, None, None]
        noisy = alpha.sqrt() * batch["action"][0] + (1 - alpha).sqrt() * eps
        err = ((policy.net(noisy, t, policy.condition(batch["obs"], None).reshape(8, -1)) - eps) ** 2).mean(-1)
    live = ~batch["pad"][0]
    assert not live.all() and live.any()
    assert loss(batch["action"]) == pytest.approx(err[live].mean().item(), rel=1e-5)
    assert abs(err.mean().item() - err[live].mean().item()) > 1e-4  # the mask matters here


def test_a_run_serving_its_own_policy_gives_the_server_each_version(tmp_path):
    cfg = point_config(*SMALL, "policy.type=remote", "policy.serve=chunking", "gate.name=auto")
    summary = run_loop(cfg, tmp_path)
    events = read_events(tmp_path / "events.jsonl")
    assert summary["steps"] >= cfg.steps and not of_kind(events, "policy_server_refused")
    assert (tmp_path / "policy_token").stat().st_mode & 0o777 == 0o600
    assert read_checkpoint(tmp_path)["policy"]["type"] == "chunking"  # what the learner trained and served
    served = {v for s in of_kind(events, "segment") if s["controller"] == "policy" for v, _ in s["versions"]}
    assert max(served) > 1  # the robots acted on versions the supervisor pushed to the server
