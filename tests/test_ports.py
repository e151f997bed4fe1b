"""Ports out of range are one line and exit 2, on the command line and in the config; a robot agent that holds again
and again says so once, then how many times (dagger.log_once)."""

from __future__ import annotations

import argparse
import logging
import socket
import time

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from dagger.app.ports import port
from dagger.config import ConfigError, load_config
from dagger.log_once import LogOnce
from dagger.robots.agent import RobotAgent
from dagger.robots.base import SimRobot
from dagger.robots.remote import RemoteRobot
from dagger.tasks import make_task
from dagger.wire import frame, new_token
from tests.conftest import run_dagger

TOKEN = new_token()
PERIOD = 0.01


@pytest.mark.parametrize("args, named", [
    (["robot-agent", "--port", "70000"], ["--port", "70000", "0..65535"]),
    (["robot-agent", "--port", "-1"], ["--port", "-1", "0..65535"]),
    (["robot-agent", "--port", "65534", "--robots", "4"], ["--port 65534", "--robots 4", "65535"]),
    (["serve", "runs/none", "--token-file", "policy.token", "--port", "70000"], ["--port", "70000", "0..65535"]),
])
def test_a_port_out_of_range_is_one_line_and_exit_2(tmp_path, args, named):
    (tmp_path / "robot.token").write_text(TOKEN.hex())
    if args[0] == "robot-agent":
        args = [*args, "--token-file", "robot.token", "--seconds", "1"]
    result = run_dagger(*args, cwd=tmp_path, timeout=120)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and all(word in errors[0] for word in named), result.stderr
    assert not (tmp_path / "policy.token").exists()  # refused before anything was made


@given(st.integers(0, 65535))
def test_every_port_in_range_is_taken(value):
    assert port(str(value)) == value


@given(st.text(max_size=12))
def test_anything_else_is_refused_with_the_range(text):
    if text.isascii() and text.isdigit() and int(text) <= 65535:
        assert port(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=r"is not a port: give 0\.\.65535"):
            port(text)


@pytest.mark.parametrize("overrides, key", [
    (["robot.agents=[robot-host:70000]"], "robot.agents"),
    (["robot.agents=[robot-host:0]"], "robot.agents"),
    (["robots=4", "robot.agents=[robot-host:65534]"], "robot.agents"),  # robot 3 would be at 65537
    (["policy.address=gpu-host:70000", "policy.token_file=policy.token"], "policy.address"),
    (["policy.address=gpu-host:http", "policy.token_file=policy.token"], "policy.address"),
])
def test_a_config_port_out_of_range_names_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert f"'{key}'" in str(err.value) and "65535" in str(err.value) and "\n" not in str(err.value)


def test_config_ports_in_range_are_taken():
    cfg = load_config(None, ["robots=4", "robot.agents=[robot-host:65532]", "policy.address='[::1]:7000'",
                             "policy.token_file=policy.token"])
    assert cfg.robot.agents == ["robot-host:65532"] and cfg.policy.address == "[::1]:7000"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_log_once_says_a_repeat_once_then_its_count(caplog):
    clock = Clock()
    holds = LogOnce(logging.getLogger("test.log_once"), every_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.log_once"):
        assert holds.warning("robot %d: holding", 0)
        assert not any(holds.warning("robot %d: holding", 0) for _ in range(99))
        clock.now = 5.0
        assert holds.warning("robot %d: moving", 0)  # another state: the count, then the new message
        holds.flush()
        holds.flush()
    assert lines(caplog) == ["robot 0: holding", "robot 0: holding (repeated 99 times in 5 s)", "robot 0: moving"]


def test_log_once_says_the_count_every_minute_and_a_message_back_after_a_quiet_minute(caplog):
    clock = Clock()
    holds = LogOnce(logging.getLogger("test.log_once"), every_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.log_once"):
        holds.warning("holding")
        for _ in range(10):
            clock.now += 1.0
            holds.warning("holding")
        holds.flush(due=True)  # not a minute yet: still counted
        clock.now = 60.0
        holds.flush(due=True)
        clock.now = 200.0  # a quiet while: the message is news again
        holds.warning("holding")
        holds.warning("holding")
        clock.now = 261.0
        holds.warning("holding")  # a minute since the last line: said at this repeat
    assert lines(caplog) == ["holding", "holding (repeated 10 times in 60 s)", "holding",
                             "holding (repeated 2 times in 61 s)"]


def test_log_once_groups_by_key_and_shows_the_newest(caplog):
    refusals = LogOnce(logging.getLogger("test.log_once"), clock=Clock())
    with caplog.at_level(logging.WARNING, logger="test.log_once"):
        for peer in range(5):
            refusals.warning("refused a frame from port %d", peer, key="unsigned")
        refusals.flush()
    assert lines(caplog) == ["refused a frame from port 0", "refused a frame from port 4 (repeated 4 times in 0 s)"]


@pytest.fixture
def agent():
    agent = RobotAgent(SimRobot(make_task("point")), TOKEN, period=PERIOD).start()
    yield agent
    agent.close()


def test_an_agent_that_holds_again_and_again_logs_it_once_then_counts(agent, caplog):
    cycles = 8
    with caplog.at_level(logging.WARNING, logger="dagger.robots.agent"):
        robot = RemoteRobot(agent.address, TOKEN)
        robot.connect()
        robot.reset(seed=0)
        for _ in range(cycles):  # a controller that moves the robot, then goes quiet past the watchdog
            robot.send_action(np.array([0.2, 0.0]))
            robot.get_observation()
            time.sleep(10 * PERIOD)
        holds = agent.health()["watchdog_holds"]
        robot.disconnect()
        agent.close()
    holding = [line for line in lines(caplog) if "holding" in line]
    assert holds == cycles
    assert len(holding) == 2 and holding[0].endswith("no valid command for 30 ms: holding")
    assert holding[1].startswith(holding[0]) and f"(repeated {cycles - 1} times in" in holding[1]


def test_refusals_from_one_host_for_one_reason_are_logged_once_then_counted(agent, caplog):
    with caplog.at_level(logging.WARNING, logger="dagger.robots.agent"):
        host, port_ = agent.address.split(":")
        for _ in range(4):  # a peer with the wrong secret, again and again
            sock = socket.create_connection((host, int(port_)), timeout=5)
            sock.recv(1 << 16)  # the challenge
            sock.sendall(frame(new_token(), {"kind": "hello", "seq": 1, "ts": time.time()}))
            sock.settimeout(5)
            assert sock.recv(1 << 16) == b""  # hung up on
        end = time.monotonic() + 60  # a liveness bound: the agent counts them as soon as it runs
        while agent.health().get("refused_unsigned") != 4:
            assert time.monotonic() < end, agent.health()
            time.sleep(0.005)
        agent.close()
    refused = [line for line in lines(caplog) if "refused a frame" in line]
    assert len(refused) == 2 and "(repeated 3 times in" in refused[1]
