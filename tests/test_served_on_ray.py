"""The README's "Serving a policy" flow on real Ray actors: the run's weights reach the policy server, the robots act
with rising versions, and the learning curve scores the policy the robots ran."""

import json
import re
import subprocess
import sys

import pytest

from dagger.events import read_events
from dagger.metrics import of_kind
from tests.conftest import ROOT, point_config
from workers.launch import run_loop

pytestmark = pytest.mark.slow

RUN = ["--task", "point", "--robots", "2", "--steps", "1200", "demos=2", "learner.pretrain_updates=50",
       "learner.batch_size=32", "learner.publish_every=10", "gate.threshold=0.002", "robot.speed=10.0",
       "eval.episodes=5", "eval.every_versions=5", "policy.deadline_ms=2000"]


def start_on_ray(address: str, run, *extra: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "dagger.app.cli", "start", "--address", address, "--policy", "remote",
                           *RUN, "--run-dir", str(run), *extra], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["steps"] == 1200  # the budget, exactly (it overran)
    return read_events(run / "events.jsonl")


def acted_versions(events: list[dict]) -> list[int]:
    """The weights versions the robots' policy steps were taken with, in the order their segments ended."""
    segments = sorted((s for s in of_kind(events, "segment") if s["controller"] == "policy"), key=lambda s: s["t_end"])
    return [v for s in segments for v, _ in s["versions"]]


def assert_served_weights_rose(events: list[dict]) -> None:
    assert not of_kind(events, "policy_server_refused"), of_kind(events, "policy_server_refused")[:1]
    versions = acted_versions(events)
    published = max(e["version"] for e in of_kind(events, "weights_published"))
    assert versions[0] < versions[-1] and len(set(versions)) > 2, "the robots acted with one version all run"
    assert max(versions) > published // 2
    evals = of_kind(events, "eval")
    assert len(evals) >= 2 and evals[-1]["version"] > evals[0]["version"]
    assert evals[-1]["version"] == published  # the run's final version, served and scored at its end


def test_a_run_that_serves_its_own_policy_on_ray_updates_it(ray_cluster, tmp_path):
    events = start_on_ray(ray_cluster, tmp_path / "run")
    assert_served_weights_rose(events)


def test_dagger_serve_accepting_weights_is_trained_by_a_run_on_ray(ray_cluster, tmp_path):
    trained = tmp_path / "trained"
    run_loop(point_config("steps=200", "gate.name=never", "eval.every_versions=0"), trained)
    serve = subprocess.Popen([sys.executable, "-m", "dagger.app.cli", "serve", str(trained), "--port", "0",
                              "--token-file", str(tmp_path / "token"), "--accept-weights"],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        found = re.search(r"at (127\.0\.0\.1:\d+)", line)
        assert found, line
        events = start_on_ray(ray_cluster, tmp_path / "run", f"policy.address={found[1]}",
                              f"policy.token_file={tmp_path / 'token'}")
        assert_served_weights_rose(events)
    finally:
        serve.terminate()
        serve.wait(10)
