"""The robot bridge end to end over loopback TCP: a RobotWorker drives a robot agent's simulator; unsigned, replayed,
stale and pickled messages are refused and counted; the watchdog holds a robot whose commands stop; a dropped link
is reopened and the episode goes on; clock offsets between hosts are measured at connect."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from buffers.codec import decode_segment
from buffers.segment_log import SegmentLog
from dagger.config import load_config
from dagger.events import EventLog, read_events
from dagger.policies import make_policy
from dagger.robots.agent import RobotAgent
from dagger.robots.base import RobotLate, SimRobot
from dagger.robots.remote import RemoteRobot
from dagger.tasks import make_task
from dagger.wire import Session, frame, new_token
from workers.buffer import BufferWorker
from workers.robot import RobotWorker
from workers.supervisor import Supervisor
from workers.transport import LocalEndpoint

TOKEN = new_token()
PERIOD = 0.01


@pytest.fixture
def agent():
    agent = RobotAgent(SimRobot(make_task("point")), TOKEN, period=PERIOD).start()
    yield agent
    agent.close()


def wait_for(condition, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def handshake(agent: RobotAgent, token: bytes = TOKEN) -> tuple[socket.socket, Session]:
    """A controller speaking the protocol by hand, up to its first command."""
    host, port = agent.address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    session = Session(token)
    challenge = session.read(sock)
    assert challenge is not None and challenge["kind"] == "challenge"
    sock.sendall(session.seal({"kind": "hello", "nonce": challenge["nonce"], "client_nonce": b"c" * 16}))
    welcome = session.read(sock)
    assert welcome is not None and welcome["kind"] == "welcome" and welcome["spec"]["name"] == "point"
    return sock, session


def hung_up(sock: socket.socket) -> bool:
    """The agent closed this connection (whatever it sent before is read and dropped)."""
    sock.settimeout(5)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass
    return True


def test_a_worker_runs_episodes_over_the_bridge_and_ships_them(agent, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGGER_ROBOT_TOKEN", TOKEN.hex())
    cfg = load_config(None, ["task=point", f"robot.agents=[{agent.address}]", "gate.name=never"])
    buffer = BufferWorker(str(tmp_path / "segments"), 0.0, 0)
    robot = RobotWorker(0, cfg, LocalEndpoint(buffer))
    weights = make_policy(cfg.policy, robot.robot.obs_dim, robot.robot.act_dim).weights()
    robot.set_weights({**weights, "version": 1})
    robot.start()
    wait_for(lambda: robot.episodes >= 3, 30)
    final = robot.stop()
    health = agent.health()
    steps = final["status"]["steps"]
    # every step the worker recorded was executed by the agent's robot, once (a repeat is a late controller)
    assert steps > 0 and health["episode"] == robot.episode
    io = final["status"]["io"]
    assert steps <= agent.robot.steps <= steps + health.get("repeats", 0) + io.get("late", 0)
    stored = sum(len(decode_segment(payload)) for payload in SegmentLog.read(tmp_path / "segments"))
    assert stored == steps
    assert io["rtt_ms_p50"] > 0 and io["command_ms_p99"] < 3 * PERIOD * 1000 + 5


def test_a_controller_with_another_secret_is_refused_both_ways(agent):
    robot = RemoteRobot(agent.address, new_token())
    with pytest.raises(ConnectionError, match="unauthenticated"):  # the agent's challenge fails its HMAC check
        robot.connect()
    assert agent.health().get("connects", 0) == 0


def test_a_wrong_token_is_refused(agent):
    host, port = agent.address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.recv(1 << 16)  # the challenge
    sock.sendall(frame(new_token(), {"kind": "hello", "seq": 1, "ts": time.time()}))
    assert hung_up(sock)
    wait_for(lambda: agent.health().get("refused_unsigned") == 1)


def test_a_replayed_command_is_refused(agent):
    sock, session = handshake(agent)
    sock.sendall(session.seal({"kind": "reset", "seed": 0, "episode": 0}))
    act = session.seal({"kind": "act", "action": [0.5, 0.0]})
    sock.sendall(act)
    sock.sendall(act)  # the same signed frame again
    assert hung_up(sock)
    assert agent.health()["refused_replayed"] == 1


def test_a_stale_command_is_refused_once_the_offset_is_known(agent):
    sock, session = handshake(agent)
    sock.sendall(session.seal({"kind": "offset", "offset": 0.0}))
    session.clock = lambda: time.time() - 10.0  # a message that spent 10 s on the way
    sock.sendall(session.seal({"kind": "act", "action": [0.5, 0.0]}))
    assert hung_up(sock)
    assert agent.health()["refused_stale"] == 1


def test_a_pickle_is_never_unpickled(agent):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch /tmp/dagger-bridge-pwned",))

    sock, session = handshake(agent)
    body = pickle.dumps(Boom())
    import hashlib
    import hmac

    sock.sendall(len(body).to_bytes(4, "big") + hmac.new(TOKEN, body, hashlib.sha256).digest() + body)  # signed
    assert hung_up(sock)
    assert agent.health()["refused_not_msgpack"] == 1 and not Path("/tmp/dagger-bridge-pwned").exists()
    sock, session = handshake(agent)  # a pickle as a field of a signed msgpack map: not an action
    sock.sendall(session.seal({"kind": "act", "action": body}))
    assert hung_up(sock)
    assert agent.health()["refused_malformed"] == 1 and agent.robot.steps == 0


def test_a_replayed_hello_does_not_open_a_session(agent):
    sock, _ = handshake(agent)
    host, port = agent.address.split(":")
    other = socket.create_connection((host, int(port)), timeout=5)
    other.recv(1 << 16)  # its own challenge, with a fresh nonce
    session = Session(TOKEN)
    other.sendall(session.seal({"kind": "hello", "nonce": b"\0" * 16, "client_nonce": b"c" * 16}))
    assert hung_up(other)
    assert agent.health()["refused_replayed"] == 1 and agent.health()["connects"] == 1


def test_the_watchdog_holds_a_robot_whose_commands_stop(agent):
    robot = RemoteRobot(agent.address, TOKEN)
    robot.connect()
    robot.reset(seed=0)
    for _ in range(5):
        robot.send_action(np.array([1.0, 0.0]))
        robot.get_observation()
    assert agent.health()["moving"]
    steps = agent.robot.steps
    time.sleep(10 * PERIOD)  # the controller goes quiet (its link stays up)
    health = agent.health()
    assert not health["moving"] and health["watchdog_holds"] == 1 and health["connected"]
    # it executed the last command at most for the deadline (3 periods), then stood still
    assert steps <= agent.robot.steps <= steps + 4
    held = agent.robot.steps
    time.sleep(5 * PERIOD)
    assert agent.robot.steps == held
    robot.disconnect()


def test_a_dropped_link_is_reopened_and_the_episode_goes_on(agent):
    robot = RemoteRobot(agent.address, TOKEN)
    robot.connect()
    robot.reset(seed=0)
    robot.send_action(np.array([0.5, 0.0]))
    before = robot.get_observation().obs.copy()
    agent.controller.close()  # the link dies under the controller
    with pytest.raises(RobotLate):
        robot.send_action(np.array([0.5, 0.0]))
        robot.get_observation()
    wait_for(lambda: agent.health()["connected"] is False)
    obs = None
    end = time.monotonic() + 5
    while obs is None and time.monotonic() < end:
        try:
            robot.send_action(np.array([0.5, 0.0]))
            obs = robot.get_observation()
        except RobotLate:
            pass
    assert obs is not None and robot.health()["reconnects"] == 1 and agent.health()["connects"] == 2
    assert agent.health()["episode"] == 0 and not obs.done  # the same episode, not restarted
    assert obs.obs[0] > before[0]  # and the robot moved on from where it was
    robot.disconnect()


def test_clock_offset_between_hosts_is_measured_at_connect():
    skew = 100.0  # the agent's host clock runs 100 s ahead
    agent = RobotAgent(SimRobot(make_task("point")), TOKEN, period=PERIOD, clock=lambda: time.time() + skew).start()
    try:
        robot = RemoteRobot(agent.address, TOKEN)
        robot.connect()
        assert abs(robot.offset - skew) < 0.05
        robot.reset(seed=0)
        robot.send_action(np.array([0.5, 0.0]))
        robot.get_observation()  # neither side took the other's messages for stale
        assert agent.health().get("refused_stale", 0) == 0 and robot.health().get("refused_stale", 0) == 0
        robot.disconnect()
    finally:
        agent.close()


def test_robot_agent_command_serves_and_reports(tmp_path):
    token_file = tmp_path / "robot.token"
    token_file.write_text(TOKEN.hex())
    proc = subprocess.Popen([sys.executable, "-m", "dagger.app.cli", "robot-agent", "--task", "point", "--port", "0",
                             "--token-file", str(token_file), "--seconds", "30"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        address = line.split(" at ")[1].split(",")[0]
        robot = RemoteRobot(address, TOKEN)
        robot.connect()
        robot.reset(seed=3)
        for _ in range(20):
            robot.send_action(robot.expert_action())
            robot.get_observation()
        robot.disconnect()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    health = json.loads(out.strip().splitlines()[-1])
    assert health["robot"] == 0 and health["connects"] == 1 and health["episode"] == 0 and health["ticks"] > 20


def test_the_supervisor_measures_each_robots_clock_and_logs_on_its_own(tmp_path):
    """A robot on another host keeps its own wall clock: its events are logged on the supervisor's, and an operator's
    readings reach it on its own (the stale-input rule compares them with its clock)."""
    cfg = load_config(None, ["task=point", "robots=1"])
    buffer = LocalEndpoint(BufferWorker(str(tmp_path / "segments"), 0.0, 0))
    robot = RobotWorker(0, cfg, buffer, clock=lambda: time.time() + 50.0)  # 50 s ahead of ours
    log = EventLog(tmp_path / "events.jsonl")
    supervisor = Supervisor(cfg, [LocalEndpoint(robot)], buffer, None, log)
    assert abs(supervisor.offsets[0] - 50.0) < 0.01
    robot._emit("probe")
    supervisor.handle(robot.poll())
    log.close()
    probe = next(e for e in read_events(tmp_path / "events.jsonl") if e["ev"] == "probe")
    assert abs(probe["t"] - time.time()) < 1.0
    supervisor.send(0, "operator_input", {"action": [0.0, 0.0], "t_report": 1000.0, "t_input": 999.0})
    _, reading = robot.inbox.get_nowait()
    assert abs(reading["t_report"] - 1050.0) < 0.01 and abs(reading["t_input"] - 1049.0) < 0.01
