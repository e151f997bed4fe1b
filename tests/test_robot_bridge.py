"""The robot bridge end to end over loopback TCP: a RobotWorker drives a robot agent's simulator; unsigned, replayed,
stale and pickled messages are refused and counted; the watchdog holds a robot whose commands stop; a dropped link
is reopened and the episode goes on; clock offsets between hosts are measured at connect.

The agent runs in real time, but no test races it: a test waits up to LIVE_S for what must happen, and its
controllers wait as long for an observation (how fast the bridge answers is benchmarks/robot_bridge.py's to say)."""

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
from tests.conftest import hung_up
from tests.one_robot import OneRobot, Workers
from workers.buffer import BufferWorker
from workers.robot import RobotWorker
from workers.supervisor import Supervisor
from workers.transport import LocalEndpoint

TOKEN = new_token()
PERIOD = 0.01
LIVE_S = 60.0
"""how long a test waits for what must happen: reached on a loaded machine only when something is broken"""


class TracedRobot(SimRobot):
    """The agent's simulator, noting each (state, action) it executed."""

    def __init__(self, task):
        super().__init__(task)
        self.executed: set[bytes] = set()

    def send_action(self, action):
        before = np.asarray(self.get_observation().obs, np.float32)
        executed = super().send_action(action)
        self.executed.add(before.tobytes() + np.asarray(executed, np.float32).tobytes())
        return executed


@pytest.fixture
def agent():
    agent = RobotAgent(TracedRobot(make_task("point")), TOKEN, period=PERIOD).start()
    yield agent
    agent.close()


def run_worker(agent, tmp_path, monkeypatch, until):
    """A RobotWorker driving the agent's robot in its own thread until `until(worker)`; its final poll."""
    monkeypatch.setenv("DAGGER_ROBOT_TOKEN", TOKEN.hex())
    cfg = load_config(None, ["task=point", f"robot.agents=[{agent.address}]", "gate.name=never"])
    buffer = BufferWorker(str(tmp_path / "segments"), 0.0, 0)
    robot = OneRobot(0, cfg, LocalEndpoint(buffer))
    weights = make_policy(cfg.policy, robot.robot.obs_dim, robot.robot.act_dim).weights()
    robot.set_weights({**weights, "version": 1})
    robot.start()
    wait_for(lambda: until(robot), 60)
    assert robot.thread is not None and robot.thread.is_alive() and not robot.failure
    return robot, robot.stop()


def stored_steps(tmp_path) -> list[tuple[bytes, bytes]]:
    """(state, action) of every step in the run's segment log, as float32 bytes."""
    segments = [decode_segment(payload) for payload in SegmentLog.read(tmp_path / "segments")]
    return [(seg.obs[i].astype(np.float32).tobytes(), seg.action[i].astype(np.float32).tobytes())
            for seg in segments for i in range(len(seg))]


def connected(address: str) -> RemoteRobot:
    """A controller on the agent that waits up to LIVE_S for each observation, not its 3 periods (the worker's hold
    when a robot is late is tested in test_unreachable.py)."""
    robot = RemoteRobot(address, TOKEN)
    robot.connect()
    robot.watchdog_periods = LIVE_S / robot.period
    return robot


def wait_for(condition, timeout_s: float = LIVE_S) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def handshake(agent: RobotAgent, token: bytes = TOKEN) -> tuple[socket.socket, Session]:
    """A controller speaking the protocol by hand, up to its first command."""
    host, port = agent.address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=LIVE_S)
    session = Session(token)
    challenge = session.read(sock)
    assert challenge is not None and challenge["kind"] == "challenge"
    sock.sendall(session.seal({"kind": "hello", "nonce": challenge["nonce"], "client_nonce": b"c" * 16}))
    session.bind(challenge["nonce"], b"c" * 16)
    welcome = session.read(sock)
    assert welcome is not None and welcome["kind"] == "welcome" and welcome["spec"]["name"] == "point"
    return sock, session


def test_a_worker_runs_episodes_over_the_bridge_and_records_only_what_the_robot_did(agent, tmp_path, monkeypatch):
    robot, final = run_worker(agent, tmp_path, monkeypatch, lambda worker: worker.episodes >= 3)
    status, health = final["status"], agent.health()
    stored = stored_steps(tmp_path)
    assert status["steps"] > 0 and health["episode"] == robot.episode
    assert len(stored) == status["steps"] - status["unrecorded"]
    # every recorded (state, action) is one the agent's robot executed, from that very state
    assert all(obs + action in agent.robot.executed for obs, action in stored)
    assert 0 < status["io"]["rtt_ms_p50"] and 0 < status["io"]["command_ms_p50"] <= status["io"]["command_ms_p99"]


def test_a_worker_outlives_an_agent_that_restarts(agent, tmp_path, monkeypatch):
    """The link goes down for a while, then comes back to a fresh agent that lost the episode: the worker's loop
    goes on, ends that episode and runs new ones; no step the new robot did not take is recorded."""
    port = int(agent.address.split(":")[1])
    replacement = []

    def restart(worker) -> bool:
        if not replacement and worker.episodes >= 1 and worker.ep_stats["steps"] >= 3:
            agent.close()
            time.sleep(1.2)  # a couple of failed reconnects
            replacement.append(RobotAgent(TracedRobot(make_task("point")), TOKEN, port=port, period=PERIOD).start())
        return bool(replacement) and replacement[0].health()["episode"] >= 2

    try:
        robot, final = run_worker(agent, tmp_path, monkeypatch, restart)
        executed = agent.robot.executed | replacement[0].robot.executed
        assert final["status"]["io"]["reconnects"] >= 1 and replacement[0].health().get("control_errors", 0) == 0
        assert all(obs + action in executed for obs, action in stored_steps(tmp_path))
    finally:
        for extra in replacement:
            extra.close()


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
    assert hung_up(sock, LIVE_S)
    wait_for(lambda: agent.health().get("refused_unsigned") == 1)


def test_a_replayed_command_is_refused(agent):
    sock, session = handshake(agent)
    sock.sendall(session.seal({"kind": "reset", "seed": 0, "episode": 0}))
    act = session.seal({"kind": "act", "action": [0.5, 0.0]})
    sock.sendall(act)
    sock.sendall(act)  # the same signed frame again
    assert hung_up(sock, LIVE_S)
    wait_for(lambda: agent.health().get("refused_replayed") == 1)


def test_a_stale_command_is_dropped_and_the_robot_holds(agent):
    sock, session = handshake(agent)
    sock.sendall(session.seal({"kind": "offset", "offset": 0.0}))
    sock.sendall(session.seal({"kind": "reset", "seed": 0, "episode": 0}))
    clock = session.clock
    session.clock = lambda: time.time() - 10.0  # a command that spent 10 s on the way
    sock.sendall(session.seal({"kind": "act", "action": [0.5, 0.0]}))
    wait_for(lambda: agent.health().get("refused_stale") == 1)
    time.sleep(5 * PERIOD)
    assert agent.robot.steps == 0 and agent.health()["connected"]  # dropped, never executed; the link stays
    session.clock = clock
    sock.sendall(session.seal({"kind": "act", "action": [0.5, 0.0]}))
    wait_for(lambda: agent.robot.steps >= 1)


def test_a_pickle_is_never_unpickled(agent):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch /tmp/dagger-bridge-pwned",))

    sock, session = handshake(agent)
    body = pickle.dumps(Boom())
    import hashlib
    import hmac

    mac = hmac.new(session.token, body, hashlib.sha256).digest()  # signed with this connection's key
    sock.sendall(len(body).to_bytes(4, "big") + mac + body)
    assert hung_up(sock, LIVE_S)
    wait_for(lambda: agent.health().get("refused_not_msgpack") == 1)
    assert not Path("/tmp/dagger-bridge-pwned").exists()
    sock, session = handshake(agent)  # a pickle as a field of a signed msgpack map: not an action
    sock.sendall(session.seal({"kind": "act", "action": body}))
    assert hung_up(sock, LIVE_S)
    wait_for(lambda: agent.health().get("refused_malformed") == 1)
    assert agent.robot.steps == 0


def test_a_replayed_hello_does_not_open_a_session(agent):
    sock, _ = handshake(agent)
    host, port = agent.address.split(":")
    other = socket.create_connection((host, int(port)), timeout=5)
    other.recv(1 << 16)  # its own challenge, with a fresh nonce
    session = Session(TOKEN)
    other.sendall(session.seal({"kind": "hello", "nonce": b"\0" * 16, "client_nonce": b"c" * 16}))
    assert hung_up(other, LIVE_S)
    wait_for(lambda: agent.health().get("refused_replayed") == 1)
    assert agent.health()["connects"] == 1


def test_the_watchdog_holds_a_robot_whose_commands_stop(agent):
    robot = connected(agent.address)
    robot.reset(seed=0)
    for _ in range(5):
        robot.send_action(np.array([1.0, 0.0]))
        robot.get_observation()
    steps = agent.robot.steps
    assert steps >= 5
    # the controller goes quiet (its link stays up); a hold is counted only when it stops a moving robot
    wait_for(lambda: agent.health().get("watchdog_holds") == 1)
    health = agent.health()
    assert not health["moving"] and health["connected"]
    # it executed the last command at most for the deadline (3 periods; fewer on a busy machine), then stood still
    assert steps <= agent.robot.steps <= steps + 4
    held = agent.robot.steps
    time.sleep(5 * PERIOD)
    assert agent.robot.steps == held
    robot.disconnect()


def test_a_dropped_link_is_reopened_and_the_episode_goes_on(agent):
    robot = connected(agent.address)
    robot.reset(seed=0)
    robot.send_action(np.array([0.5, 0.0]))
    before = robot.get_observation().obs.copy()
    agent.controller.close()  # the link dies under the controller
    wait_for(lambda: robot.sock is None and agent.health()["connected"] is False)
    obs = None
    end = time.monotonic() + LIVE_S
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
        robot = connected(agent.address)
        # as NTP: the agent read its clock between our send and receive, so the error is at most half that round trip
        assert abs(robot.offset - skew) <= robot.rtts[0] / 2 + 1e-6
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
                             "--token-file", str(token_file), "--seconds", "600"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        address = line.split(" at ")[1].split(",")[0]
        robot = connected(address)
        robot.reset(seed=3)
        for _ in range(20):
            robot.send_action(robot.expert_action())
            robot.get_observation()
        robot.disconnect()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=LIVE_S)
    health = json.loads(out.strip().splitlines()[-1])
    assert health["robot"] == 0 and health["connects"] == 1 and health["episode"] == 0 and health["ticks"] > 20


def test_the_supervisor_measures_each_robots_clock_and_logs_on_its_own(tmp_path):
    """A robot on another host keeps its own wall clock: its events are logged on the supervisor's, and an operator's
    readings reach it on its own (the stale-input rule compares them with its clock)."""
    cfg = load_config(None, ["task=point", "robots=1"])
    buffer = LocalEndpoint(BufferWorker(str(tmp_path / "segments"), 0.0, 0))
    robot = RobotWorker(0, cfg, buffer, clock=lambda: 1050.0)  # 50 s ahead of ours (clocks that stand still)
    log = EventLog(tmp_path / "events.jsonl")
    sent = []
    robot.operator_input = lambda robot_id, reading: sent.append(reading)
    supervisor = Supervisor(cfg, Workers([robot], buffer), log, clock=lambda: 1000.0)
    assert supervisor.offsets[0] == 50.0
    robot.emit("weights_loaded", robot=0, version=1)
    supervisor.handle(robot.poll()[0])
    log.close()
    probe = next(e for e in read_events(tmp_path / "events.jsonl") if e["ev"] == "weights_loaded")
    assert probe["t"] == 1000.0
    supervisor.send_input(0, {"action": [0.0, 0.0], "t_report": 1000.0, "t_input": 999.0})
    [reading] = sent
    assert abs(reading["t_report"] - 1050.0) < 0.01 and abs(reading["t_input"] - 1049.0) < 0.01


def test_a_command_before_any_episode_is_held_and_the_loop_goes_on(agent):
    sock, session = handshake(agent)
    sock.sendall(session.seal({"kind": "act", "action": [0.5, 0.0]}))  # no reset yet: there is no episode
    ticks = agent.health()["ticks"]
    wait_for(lambda: agent.health()["ticks"] > ticks + 5)
    assert agent.robot.steps == 0 and agent.health().get("control_errors", 0) == 0


def test_a_frame_from_another_connection_does_not_verify(agent):
    """Frames are signed with a key of their connection's own: one recorded on a first connection, replayed at the
    same place in a second, is refused as unsigned."""
    first, session = handshake(agent)
    recorded = session.seal({"kind": "reset", "seed": 0, "episode": 0})
    first.close()
    second, _ = handshake(agent)
    second.sendall(recorded)
    assert hung_up(second, LIVE_S)
    wait_for(lambda: agent.health().get("refused_unsigned") == 1)


def test_peers_that_never_finish_the_handshake_are_cut_off_and_capped(agent, monkeypatch):
    import dagger.robots.agent as agent_module

    # no idle limit a test could wait out: a silent peer hung up on within LIVE_S was cut off by the handshake
    monkeypatch.setattr(agent_module, "IDLE_S", 100 * LIVE_S)
    host, port = agent.address.split(":")
    idle = [socket.create_connection((host, int(port)), timeout=LIVE_S) for _ in range(agent_module.HANDSHAKES + 4)]
    wait_for(lambda: agent.health().get("refused_busy", 0) == 4)  # past the cap: the 4 oldest pushed out at once
    for sock in idle[:4]:
        assert hung_up(sock, LIVE_S)
    for sock in idle[4:]:  # silent peers: cut off when the handshake's time is up
        assert hung_up(sock, LIVE_S)
    robot = connected(agent.address)  # the agent still serves a real controller
    robot.disconnect()


def test_a_closed_agent_accepts_no_one():
    agent = RobotAgent(SimRobot(make_task("point")), TOKEN, period=PERIOD).start()
    agent.close()
    with pytest.raises(ConnectionError):
        RemoteRobot(agent.address, TOKEN, connect_timeout_s=1).connect()


def test_a_controller_that_stalls_drops_stale_observations_and_keeps_its_link(agent):
    robot = connected(agent.address)
    robot.reset(seed=0)
    clock = robot.session.clock
    robot.session.clock = lambda: time.time() + 2.0  # as if this process had been paused for 2 s
    wait_for(lambda: robot.health().get("refused_stale", 0) >= 3)
    robot.session.clock = clock
    assert robot.sock is not None and robot.health().get("reconnects", 0) == 0
    robot.send_action(np.array([0.5, 0.0]))
    assert robot.get_observation().action is not None  # observations flow again on the same link
    robot.disconnect()


def test_a_command_after_the_episode_ended_is_answered_with_its_end(agent):
    robot = connected(agent.address)
    robot.reset(seed=0)
    obs = robot.get_observation()
    while not obs.done:
        robot.send_action(robot.expert_action())
        obs = robot.get_observation()
    steps = agent.robot.steps
    robot.send_action(np.array([1.0, 0.0]))  # sent before this controller knew the episode was over
    late = robot.get_observation()  # answered at once, not a RobotLate
    assert late.done and not late.fresh and agent.robot.steps == steps
    robot.disconnect()
