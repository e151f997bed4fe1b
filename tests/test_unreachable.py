"""A run whose policy server or robot agent does not answer says so in one line: at start, before anything is written,
and mid-run on the console, then stops with the reason instead of sitting at the same step count for ever."""

import socket
import subprocess

import pytest
from rich.console import Console

from dagger.app.dashboard import Dashboard
from dagger.app.live import LiveStats
from dagger.events import read_events
from dagger.metrics import of_kind
from dagger.policies import EnsemblePolicy, PolicyConfig
from dagger.policies.remote import PolicyServer
from dagger.wire import new_token, new_token_file
from tests.conftest import point_config, run_dagger
from workers.launch import run_loop
from workers.supervisor import MAX_HELD_S


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_policy_server_that_does_not_answer_is_one_line_before_anything_is_written(tmp_path):
    new_token_file(tmp_path / "token")
    port = free_port()
    done = run_dagger("start", "--task", "point", "--policy", "remote", f"policy.address=127.0.0.1:{port}",
                      f"policy.token_file={tmp_path / 'token'}", "--run-dir", str(tmp_path / "run"), timeout=60)
    line = one_error_line(done)
    assert f"policy.address 127.0.0.1:{port}: nothing answers" in line and "dagger serve" in line
    assert not (tmp_path / "run").exists()


def test_a_policy_server_with_another_token_or_other_spaces_is_one_line(tmp_path):
    new_token_file(tmp_path / "token")
    with PolicyServer(lambda: EnsemblePolicy(5, 3, PolicyConfig()), new_token()) as other_token:
        done = run_dagger("start", "--task", "point", "--policy", "remote", f"policy.address={other_token.address}",
                          f"policy.token_file={tmp_path / 'token'}", "--run-dir", str(tmp_path / "a"), timeout=60)
        assert "unauthenticated" in one_error_line(done)
    token = new_token_file(tmp_path / "token2")
    with PolicyServer(lambda: EnsemblePolicy(5, 3, PolicyConfig()), token) as wrong_dims:
        done = run_dagger("start", "--task", "point", "--policy", "remote", f"policy.address={wrong_dims.address}",
                          f"policy.token_file={tmp_path / 'token2'}", "--run-dir", str(tmp_path / "b"), timeout=60)
        assert "5-d observations to 3-d actions; task point has 6 and 2" in one_error_line(done)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_robot_agent_that_is_not_running_is_one_line_before_ray_starts(tmp_path):
    new_token_file(tmp_path / "token")
    port = free_port()
    done = run_dagger("start", "--task", "point", f"robot.agents=[127.0.0.1:{port}]",
                      f"robot.token_file={tmp_path / 'token'}", "--run-dir", str(tmp_path / "run"), timeout=60)
    line = one_error_line(done)
    assert f"robot 0: robot agent 127.0.0.1:{port}: nothing answers" in line and "dagger robot-agent" in line
    assert "Ray" not in done.stdout and not (tmp_path / "run").exists()


def test_a_run_whose_policy_server_goes_away_shows_held_robots_then_stops_saying_why(tmp_path):
    token = new_token_file(tmp_path / "token")
    with PolicyServer(lambda: EnsemblePolicy(6, 2, PolicyConfig()), token) as gone:
        address = gone.address  # a server that was there, and is not any more
    cfg = point_config("policy.type=remote", f"policy.address={address}", f"policy.token_file={tmp_path / 'token'}",
                       "eval.every_versions=0", "steps=100000", "robot.speed=1")
    seen: list[dict] = []
    summary = run_loop(cfg, tmp_path / "run", on_status=seen.append)
    end = of_kind(read_events(tmp_path / "run" / "events.jsonl"), "run_end")[-1]
    assert end["reason"] == "failed" and summary["steps"] == 0
    assert f"every robot has held for {MAX_HELD_S:g} s: policy late" in end["error"]
    assert "Connection refused" in end["error"]
    # the console said so all along: held robots, in red words, not "autonomous"
    status = seen[-1]
    assert all(r["held"] == "policy" and "Connection refused" in r["held_why"] for r in status["robots"].values())
    board = Dashboard(cfg, LiveStats(), Console(width=100, height=24, record=True, force_terminal=True))
    board.console.print(board.render(status))
    text = board.console.export_text()
    assert text.count("held: policy late") == 2 and "autonomous" not in text and "Connection refused" in text
    assert "held: policy late" in board.plain(status)



def test_a_held_robot_whose_budget_is_given_back_is_not_held_any_more(tmp_path):
    """At a run's end a held robot gives back its unused steps; spent, it holds for the budget, not for its late
    policy, so the supervisor counts it among the robots it may give steps to again."""
    from tests.one_robot import OneRobot
    from workers.buffer import BufferWorker
    from workers.transport import LocalEndpoint

    new_token_file(tmp_path / "token")
    cfg = point_config("policy.type=remote", f"policy.address=127.0.0.1:{free_port()}",
                       f"policy.token_file={tmp_path / 'token'}")
    buffer = BufferWorker(tmp_path / "segments")
    robot = OneRobot(0, cfg, LocalEndpoint(buffer), budgeted=True)
    robot.set_weights({"version": 1})
    robot.allow(5, 1)
    robot.tick()  # a new episode
    robot.tick()  # no policy answer: held
    assert robot.poll()["status"]["held"] == "policy"
    robot.allow(robot.total_steps, 2)  # the supervisor takes its unused steps back
    robot.tick()
    assert robot.poll()["status"]["held"] == ""
    buffer.close()


def test_robot_agents_are_checked_only_when_the_robots_run_on_this_machine(tmp_path, monkeypatch):
    from dagger.app.errors import UserError
    from dagger.app.preflight import check_outside_parts

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    new_token_file(tmp_path / "token")
    agents = [f"robot.agents=[127.0.0.1:{free_port()}]", f"robot.token_file={tmp_path / 'token'}"]
    with pytest.raises(UserError, match="robot 0: robot agent .* nothing answers"):
        check_outside_parts(point_config(*agents))
    # on a cluster the robot workers reach their agents from their own nodes (often those nodes' loopback)
    check_outside_parts(point_config(*agents, "address=10.0.0.1:6379"))
    check_outside_parts(point_config(*agents, "robot.node_label=role=robots"))
