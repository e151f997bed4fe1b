"""The robot bridge and a 2-node Ray cluster across real hosts: network namespaces joined by veth pairs
(tests/netfaults.py), with a fault-injecting proxy between a robot agent and its worker (delay, jitter, loss as TCP
sees it) and partitions made by taking a host's link down.

Behaviour only: each test waits up to LIVE_S for what must happen; how fast the bridge is across a bad network is
benchmarks/network.py's to say. Needs root and `ip netns` (but the proxy's own test); skipped otherwise."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
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
from dagger.events import read_events
from dagger.policies import make_policy
from dagger.wire import new_token
from tests.conftest import ROOT
from tests.netfaults import RTO_S, Faults, FaultyProxy, Network, unavailable
from tests.one_robot import OneRobot
from tests.two_hosts import TwoHosts, command_ages, recording_sends
from workers.buffer import BufferWorker
from workers.transport import LocalEndpoint

WHY_NOT = unavailable()
needs_netns = pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)

TOKEN = new_token()
PERIOD = 0.05  # the point task at real time: a 150 ms watchdog, longer than the link's 50 ms one way
LIVE_S = 60.0
"""how long a test waits for what must happen: reached on a loaded machine only when something is broken"""
SLACK_S = PERIOD
"""an execution's age may pass the watchdog deadline by the agent's clock-offset estimate and this much (its control
thread taken off the CPU between its check and the robot's step); a command held up by a lost segment is 200 ms late"""


def wait_for(condition, timeout_s: float = LIVE_S) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def start_worker(hosts: TwoHosts, tmp_path: Path, monkeypatch) -> OneRobot:
    """A RobotWorker on the worker host driving the agent's robot through the proxy, in a thread of its own."""
    monkeypatch.setenv("DAGGER_ROBOT_TOKEN", TOKEN.hex())
    cfg = load_config(None, ["task=point", f"robot.agents=[{hosts.address}]", "gate.name=never"])
    with hosts.worker.inside():  # its connection, and the thread that reopens it, live on the worker host
        robot = OneRobot(0, cfg, LocalEndpoint(BufferWorker(str(tmp_path / "segments"), 0.0, 0)))
        weights = make_policy(cfg.policy, robot.robot.obs_dim, robot.robot.act_dim).weights()
        robot.set_weights({**weights, "version": 1})
        robot.start()
    return robot


def stored_steps(tmp_path: Path) -> list[bytes]:
    """(state, action) of every step in the run's segment log, as float32 bytes."""
    segments = [decode_segment(payload) for payload in SegmentLog.read(tmp_path / "segments")]
    return [seg.obs[i].astype(np.float32).tobytes() + seg.action[i].astype(np.float32).tobytes()
            for seg in segments for i in range(len(seg))]


def check_the_record(hosts: TwoHosts, sent: dict, final: dict, tmp_path: Path) -> None:
    """No command executed past the watchdog deadline; every recorded step one the robot took, from that state."""
    status = final["status"]
    deadline = hosts.agent.deadline + abs(status["io"]["offset_ms"]) / 1000 + SLACK_S
    ages = command_ages(hosts.traced.runs, sent)
    assert ages and max(ages) <= deadline, f"stale commands executed: {sorted(ages)[-5:]} s old"
    stored = stored_steps(tmp_path)
    assert stored and len(stored) == status["steps"] - status["unrecorded"]
    assert all(step in hosts.traced.executed for step in stored)


def test_the_fault_proxy_loses_as_tcp_does_late_and_in_order_and_resets_when_told():
    """On loopback: what goes through arrives whole and in order, a lost segment (and all behind it) a retransmission
    timeout late; a drop hangs up both sides."""
    server = socket.create_server(("127.0.0.1", 0))
    upstream = f"127.0.0.1:{server.getsockname()[1]}"
    proxy = FaultyProxy("127.0.0.1", upstream, Faults(delay_s=0.01, loss=0.3), seed=1)
    try:
        host, port = proxy.address.split(":")
        client = socket.create_connection((host, int(port)), timeout=LIVE_S)
        far, _ = server.accept()
        far.settimeout(LIVE_S)
        arrivals, sent = [], time.monotonic()
        for i in range(20):
            client.sendall(bytes([i]))
            time.sleep(0.005)  # chunks of their own
        got = b""
        while len(got) < 20:
            got += far.recv(100)
            arrivals.append(time.monotonic() - sent)
        assert got == bytes(range(20)) and proxy.counts["lost"] >= 1
        assert max(arrivals) >= RTO_S  # held up a retransmission timeout at least
        proxy.faults = Faults(drop=1.0)
        client.sendall(b"x")
        with contextlib.suppress(ConnectionResetError):
            assert far.recv(100) == b""  # hung up on (closed, or reset)
        assert proxy.counts["dropped"] == 1
    finally:
        proxy.close()
        server.close()


@needs_netns
def test_a_robot_behind_a_slow_lossy_link_keeps_its_controller(tmp_path, monkeypatch):
    """50 ms +- 10 ms each way and 2 % of segments lost (each held up a retransmission timeout, 200 ms and more): the
    worker keeps its one connection, holds when an observation misses the watchdog, and the robot never executes a
    command older than its deadline."""
    faults = Faults(delay_s=0.05, jitter_s=0.01, loss=0.02)
    with TwoHosts(TOKEN, faults, period=PERIOD) as hosts, recording_sends() as sent:
        worker = start_worker(hosts, tmp_path, monkeypatch)
        try:
            # steps it can record are few: with a round trip past the period, the robot repeats the last command
            # until the next arrives, and that one runs from a state the worker did not see (benchmarks/network.py)
            wait_for(lambda: worker.episodes >= 2 and hosts.proxy.counts["lost"] >= 3
                     and worker.total_steps - worker.unrecorded >= 3)
            assert worker.thread is not None and worker.thread.is_alive() and not worker.failure
        finally:
            final = worker.stop()
        io, agent = final["status"]["io"], hosts.agent.health()
        assert io.get("reconnects", 0) == 0 and agent["connects"] == 1 and hosts.proxy.counts["connections"] == 1
        assert io.get("late", 0) >= 1  # held up by a lost segment, the worker held rather than waited
        assert agent.get("control_errors", 0) == 0
        check_the_record(hosts, sent, final, tmp_path)


@needs_netns
def test_a_partition_holds_the_robot_and_the_run_resumes_when_it_heals(tmp_path, monkeypatch):
    """The robot's link is down for 10 s: its watchdog holds it within its deadline and it stays still; commands
    queued on the way are never executed late; once the link is back the worker reconnects and the robot moves on."""
    with TwoHosts(TOKEN, period=PERIOD) as hosts, recording_sends() as sent:
        worker = start_worker(hosts, tmp_path, monkeypatch)
        try:
            wait_for(lambda: worker.total_steps >= 10)
            hosts.robot.link(up=False)
            time.sleep(1.0)  # the watchdog's deadline is 150 ms
            held = hosts.traced.steps
            assert hosts.agent.health().get("watchdog_holds", 0) >= 1 and not hosts.agent.health()["moving"]
            time.sleep(9.0)
            assert hosts.traced.steps == held  # a robot cut off stays still
            hosts.robot.link(up=True)
            wait_for(lambda: hosts.traced.steps >= held + 20 and worker.total_steps >= 30)
            assert worker.thread is not None and worker.thread.is_alive() and not worker.failure
        finally:
            hosts.robot.link(up=True)
            final = worker.stop()
        assert final["status"]["io"].get("reconnects", 0) >= 1
        check_the_record(hosts, sent, final, tmp_path)


# ---- a Ray worker node on another host ----

RAY = str(Path(sys.executable).parent / "ray")


def start_node(host_argv: list[str], folder: Path, name: str, env: dict, *args: str) -> subprocess.Popen:
    """`ray start --block` (on another host when host_argv is `ip netns exec NS`) in a process group of its own, so
    that only its processes are stopped; returns it once it runs."""
    log = folder / f"{name}.log"
    env = {**env, "PYTHONUNBUFFERED": "1", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    with open(log, "w") as out:
        node = subprocess.Popen([*host_argv, RAY, "start", "--block", "--temp-dir", str(folder / "ray"),
                                 "--num-cpus", "1", "--disable-usage-stats", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "Ray runtime started" in log.read_text() or node.poll() is not None, 3 * LIVE_S)
        assert node.poll() is None, log.read_text()[-3000:]
    except BaseException:
        stop_node(node, signal.SIGKILL)
        raise
    return node


def stop_node(node: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)  # whatever of its group is left
    node.wait()


def events_of(path: Path) -> list[dict]:
    return read_events(path) if path.is_file() else []


@pytest.fixture(scope="module")
def ray_hosts(tmp_path_factory):
    """A Ray head here and a node labelled role=robots on another host, both with token authentication on (HOME is a
    temp dir: ~/.ray is not read); a node with another token was refused first. Yields the head's address, the
    environment with the token, the folder, the robots' host, the node's `ray start` arguments, and the nodes."""
    folder = tmp_path_factory.mktemp("rn")  # short: Ray's socket paths in it must stay under 108 bytes
    (folder / "home").mkdir()
    (folder / "token").write_text(secrets.token_hex(32))
    (folder / "wrong").write_text("0" * 64)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    env.update(HOME=str(folder / "home"), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(folder / "token"),
               RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3")  # a lost node in seconds
    nodes: list[subprocess.Popen] = []
    with Network() as net:
        robots = net.host()
        with socket.socket() as probe:
            probe.bind(("", 0))
            head = f"{robots.gateway}:{probe.getsockname()[1]}"
        try:
            nodes.append(start_node([], folder, "head", env, "--head", "--node-ip-address", robots.gateway,
                                    "--port", head.rpartition(":")[2], "--include-dashboard", "false",
                                    "--labels", "role=learner"))
            node_args = ("--address", head, "--node-ip-address", robots.ip, "--labels", "role=robots")
            refused = subprocess.run(robots.command(RAY, "start", "--temp-dir", str(folder / "ray"),
                                                    "--disable-usage-stats", *node_args),
                                     env={**env, "RAY_AUTH_TOKEN_PATH": str(folder / "wrong")}, capture_output=True,
                                     text=True, timeout=3 * LIVE_S)
            folder.joinpath("refused.log").write_text(refused.stdout + refused.stderr)
            if refused.returncode == 0:
                pytest.fail(f"a node with another token joined: {refused.stdout[-2000:]}")
            nodes.append(start_node(robots.command(), folder, "robots", env, *node_args))
            yield head, env, folder, robots, node_args, nodes
        finally:
            for node in reversed(nodes):
                stop_node(node)


def dagger_start(head: str, env: dict, run_dir: Path, *args: str) -> subprocess.Popen:
    """A run whose robots live on the robots' host and whose learner and buffer live here."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagger.app.cli", "start", "--address", head, "--task", "point", "--robots", "2",
         "--run-dir", str(run_dir), "demos=2", "learner.pretrain_updates=20", "learner.batch_size=32",
         "eval.every_versions=0", "robot.per_actor=2", "robot.node_label=role=robots",
         "learner.node_label=role=learner", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def placed_robots(run_dir: Path) -> list[dict]:
    return [e for e in events_of(run_dir / "events.jsonl") if e["ev"] == "placed" and e["role"] == "robot"]


@needs_netns
@pytest.mark.slow
def test_a_ray_node_on_another_host_joins_with_the_token_and_runs_the_robots(ray_hosts):
    head, env, folder, robots, _, _ = ray_hosts
    assert "Ray runtime started" in (folder / "robots.log").read_text()  # joined across the link, with the token
    assert "Ray runtime started" not in (folder / "refused.log").read_text()  # without it: refused
    run = dagger_start(head, env, folder / "joined", "--steps", "300", "robot.speed=10.0")
    _, err = run.communicate(timeout=3 * LIVE_S)
    assert run.returncode == 0, err[-3000:]
    placed = placed_robots(folder / "joined")
    assert placed and {e["ip"] for e in placed} == {robots.ip}, placed
    events = read_events(folder / "joined" / "events.jsonl")
    assert events[-1]["ev"] == "run_end" and events[-1]["reason"] == "budget"


@needs_netns
@pytest.mark.slow
def test_a_ray_node_lost_mid_run_is_survived_like_an_actor(ray_hosts):
    """The robots' host's Ray is killed mid-run (its processes, at once): the group is lost, and restarted on the node
    that takes its place on that host; the run reaches its budget."""
    head, env, folder, robots, node_args, nodes = ray_hosts
    run_dir = folder / "lost"
    run = dagger_start(head, env, run_dir, "--steps", "1500", "robot.speed=4.0")
    try:
        wait_for(lambda: any(e["ev"] == "segment" for e in events_of(run_dir / "events.jsonl"))
                 or run.poll() is not None, 3 * LIVE_S)
        assert run.poll() is None and placed_robots(run_dir), f"the run never got going: {run.communicate()[1][-3000:]}"
        stop_node(nodes.pop(), signal.SIGKILL)  # as in a power cut
        wait_for(lambda: any(e["ev"] == "robot_lost" for e in events_of(run_dir / "events.jsonl"))
                 or run.poll() is not None)
        assert any(e["ev"] == "robot_lost" for e in events_of(run_dir / "events.jsonl")), "no robot_lost"
        nodes.append(start_node(robots.command(), folder, "robots-again", env, *node_args))
        _, stderr = run.communicate(timeout=3 * LIVE_S)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, stderr[-3000:]
    events = read_events(run_dir / "events.jsonl")
    placed = placed_robots(run_dir)
    assert {e["ip"] for e in placed} == {robots.ip} and len({e["node"] for e in placed}) == 2  # then its successor
    assert sorted(e["robot"] for e in events if e["ev"] == "robot_lost") == [0, 1]
    assert sorted(e["robot"] for e in events if e["ev"] == "robot_restarted") == [0, 1]
    # the budget is the fleet's steps taken (the lost node's last unshipped steps among them; the report counts only
    # the stored ones)
    assert events[-1]["ev"] == "run_end" and events[-1]["reason"] == "budget"
