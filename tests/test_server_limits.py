"""Servers a stranger cannot exhaust (issue 27): the policy server and the robot agent under the attacks that took
them down, over loopback. A stranger's frame is short and refused before it is read whole; a frame must come whole
within its deadline however its bytes trickle; connections are capped and a peer that holds the token always gets
in; requests replayed, out of order or unnumbered are refused; what a frame inflates to is bounded by what a message
of its kind can hold; the policy server keeps a bounded number of robots and forgets silent ones; TLS where a
certificate is given.

No test times anything: each waits up to LIVE_S for what must happen (a legitimate client getting in under a flood,
a trickling peer being cut off), which a loaded machine reaches only when something is broken."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import hypothesis.strategies as st
import lz4.frame
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings

from buffers import codec
from dagger import wire
from dagger.policies.remote import PolicyServer, RemotePolicy, RemotePolicyError, request_bytes
from dagger.robots.agent import HANDSHAKES, RobotAgent
from dagger.robots.base import SimRobot
from dagger.robots.remote import RemoteRobot
from dagger.tasks import make_task
from dagger.wire import HEADER, Session, answer_challenge, new_token
from tests.conftest import hung_up
from tests.test_policy_batch import Counter as Steps  # its action: its steps since reset

TOKEN = new_token()
LIVE_S = 30.0
"""how long a test waits for what must happen: reached on a loaded machine only when something is broken"""


def wait_for(condition, what: str) -> None:
    end = time.monotonic() + LIVE_S
    while not condition():
        assert time.monotonic() < end, f"not within {LIVE_S:g} s: {what}"
        time.sleep(0.01)


def dial(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=LIVE_S)


def joined(address: str, token: bytes = TOKEN) -> tuple[socket.socket, Session]:
    """A client through the handshake by hand: challenge, hello, welcome."""
    sock, session = dial(address), Session(token)
    challenge = session.read(sock)
    assert challenge is not None and challenge["kind"] == "challenge"
    client_nonce = answer_challenge(sock, session, challenge)
    welcome = session.read(sock)
    assert welcome is not None and welcome["client_nonce"] == client_nonce
    return sock, session


def refusal(sock: socket.socket, session: Session) -> str:
    """The error a server sent before hanging up (its cause)."""
    while (answer := session.read(sock)) is not None:
        if "refused" in answer:
            assert hung_up(sock, LIVE_S)
            return str(answer["refused"])
    raise AssertionError("hung up without saying why")


@pytest.fixture
def server() -> Iterator[PolicyServer]:
    with PolicyServer(Steps, TOKEN, slots=8, unproven=4, max_robots=4) as server:
        yield server


@pytest.fixture
def agent() -> Iterator[RobotAgent]:
    agent = RobotAgent(SimRobot(make_task("point")), TOKEN, period=0.01).start()
    yield agent
    agent.close()


def trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Sends data a byte at a time, each byte well within any idle limit, until stopped or hung up on."""
    for byte in data:
        if stop.wait(0.05):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


# ---- the policy server ----
def test_a_strangers_long_frame_is_refused_before_it_is_read(server):
    """It buffered up to 64 MiB of a frame before checking its HMAC: now a stranger's frame is HELLO_BYTES at most."""
    sock, session = dial(server.address), Session(TOKEN)
    assert session.read(sock)["kind"] == "challenge"
    sock.sendall((64 << 20).to_bytes(4, "big") + bytes(32) + bytes(1 << 16))  # 64 MiB claimed, 64 KiB sent
    assert refusal(sock, session) == "too_large"
    assert server.health()["refused_too_large"] == 1


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=120) | st.builds(lambda n, rest: n.to_bytes(4, "big") + rest, st.integers(0, 2**32 - 1),
                                           st.binary(max_size=120)))
def test_a_strangers_bytes_are_refused_by_what_they_claim(data):
    """Whatever a stranger sends in place of a hello: a claimed length past HELLO_BYTES is refused unread, a whole
    frame is refused unsigned, a part of one is dropped when it hangs up; the server serves on."""
    with PolicyServer(Steps, TOKEN) as server:
        sock, session = dial(server.address), Session(TOKEN)
        assert session.read(sock)["kind"] == "challenge"
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        assert hung_up(sock, LIVE_S)
        size = int.from_bytes(data[:4], "big") if len(data) >= HEADER else 0
        why = None if len(data) < HEADER else "too_large" if size > wire.HELLO_BYTES else \
            "unsigned" if len(data) >= HEADER + size else None
        wait_for(lambda: server.door.held() == (0, 0), "the stranger gone")
        assert {k: v for k, v in server.health().items() if k.startswith("refused_")} == \
            ({f"refused_{why}": 1} if why else {})
        assert RemotePolicy(server.address, TOKEN, deadline_ms=LIVE_S * 1000).act(np.zeros(1)).action[0] == 1.0


def test_connections_are_capped_and_a_peer_with_the_token_always_gets_in(server):
    strangers = [dial(server.address) for _ in range(40)]  # silent: they never answer the challenge
    wait_for(lambda: server.health().get("accepted") == 40, "the strangers let in, one after another")
    assert server.health()["unauthenticated"] <= 4 and server.health()["connections"] <= 8
    remote = RemotePolicy(server.address, TOKEN, deadline_ms=LIVE_S * 1000)
    assert remote.act(np.zeros(1)).action[0] == 1.0  # the newest connection pushed the oldest stranger out
    assert sum(hung_up(s, LIVE_S) for s in strangers[:36]) == 36  # the oldest were hung up on to make room
    for sock in strangers:
        sock.close()


SERVE_WITH_FEW_FDS = """
import resource, sys, threading
from dagger.policies.remote import PolicyServer
from tests.test_server_limits import Steps
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
server = PolicyServer(Steps, bytes.fromhex(sys.argv[1]), slots=64, unproven=64).start()
print(server.address, flush=True)
sys.stdin.read()
"""


def test_a_server_out_of_file_descriptors_frees_one_and_lets_a_peer_with_the_token_in():
    """At its file-descriptor limit legitimate robots timed out 3 of 3 while the accept loop spun."""
    proc = subprocess.Popen([sys.executable, "-c", SERVE_WITH_FEW_FDS, TOKEN.hex()], cwd=Path(__file__).parent.parent,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        strangers = [dial(address) for _ in range(60)]  # more than the server has descriptors for
        remote = RemotePolicy(address, TOKEN, deadline_ms=LIVE_S * 1000)
        assert remote.act(np.zeros(1)).action[0] == 1.0
        remote.close()
        for sock in strangers:
            sock.close()
    finally:
        proc.kill()
        proc.wait()


def test_a_peer_with_the_token_gets_in_under_a_flood(server):
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            try:
                dial(server.address).close()
            except OSError:
                pass

    flooders = [threading.Thread(target=flood, daemon=True) for _ in range(2)]
    for thread in flooders:
        thread.start()
    try:
        for robot in range(5):  # each retries (a reconnect on its next call) until it is in
            remote = RemotePolicy(server.address, TOKEN, deadline_ms=LIVE_S * 1000, robot=robot)
            end = time.monotonic() + LIVE_S
            while True:
                try:
                    assert remote.act(np.zeros(1)).action[0] == 1.0
                    break
                except (RemotePolicyError, OSError) as e:
                    assert time.monotonic() < end, f"robot {robot} never got in: {e}"
            remote.close()
    finally:
        stop.set()
        for thread in flooders:
            thread.join()


@pytest.mark.parametrize("before", ["handshake", "request"])
def test_a_frame_that_trickles_is_cut_off_whatever_each_recv_waits(server, monkeypatch, before):
    """Its idle timeout bounded each recv, not a frame: 1 byte a second held a connection for ever."""
    monkeypatch.setattr(wire, "FRAME_S", 1.0)
    monkeypatch.setattr(wire, "HANDSHAKE_S", 1.0)
    stop = threading.Event()
    if before == "handshake":
        sock = dial(server.address)
        data = wire.frame(TOKEN, {"kind": "hello", "pad": bytes(1000)})
    else:
        sock, session = joined(server.address)
        data = session.seal({"kind": "act", "robot": 0, "obs": np.zeros(1), "pad": bytes(1000)})
    sender = threading.Thread(target=trickle, args=(sock, data, stop), daemon=True)
    sender.start()
    try:
        assert hung_up(sock, LIVE_S)  # 1,000 bytes at 20 a second would take 50 s; IDLE_S would never cut it
    finally:
        stop.set()
        sender.join()
    wait_for(lambda: server.health().get("refused_slow", 0) == 1, "the slow frame counted")


@pytest.mark.parametrize("seq", [7, "replay", 0, -1, "x", 2.0, None])
def test_requests_replayed_out_of_order_or_unnumbered_are_refused(server, seq):
    sock, session = joined(server.address)
    first = session.seal({"kind": "act", "robot": 0, "obs": np.zeros(1)})
    sock.sendall(first)
    assert session.read(sock)["action"][0] == 1.0
    if seq == "replay":
        sock.sendall(first)  # the same signed frame again
    else:
        sock.sendall(wire.frame(session.token, {"kind": "act", "robot": 0, "obs": np.zeros(1), "seq": seq,
                                                "ts": time.time()}))
    why = refusal(sock, session)
    assert why == {7: "out_of_order", "replay": "replayed", 0: "replayed", -1: "replayed"}.get(seq, "malformed")
    assert server.policies[0].steps == 1  # never acted on


def test_a_frame_from_another_connection_does_not_verify(server):
    first, session = joined(server.address)
    recorded = session.seal({"kind": "act", "robot": 0, "obs": np.zeros(1)})
    first.close()
    second, other = joined(server.address)
    second.sendall(recorded)
    assert refusal(second, other) == "unsigned"


def test_the_robots_kept_are_bounded_and_silent_ones_forgotten():
    """It kept 339 KB for every robot id a client named, for ever."""
    now = [0.0]
    with PolicyServer(Steps, TOKEN, max_robots=4, robot_ttl_s=60.0, clock=lambda: now[0]) as server:
        remote = RemotePolicy(server.address, TOKEN, deadline_ms=LIVE_S * 1000)
        for robot in range(50):
            remote.robot = robot
            remote.act(np.zeros(1))
            assert len(server.policies) <= 4
        assert list(server.policies) == [46, 47, 48, 49]  # the least recently used went first
        now[0] = 61.0
        remote.robot = 100
        remote.act(np.zeros(1))
        assert list(server.policies) == [100]  # the silent ones forgotten
        assert server.health()["robots_forgotten"] == 50  # 46 pushed out, then 4 silent


def test_a_request_that_inflates_past_what_its_kind_holds_is_refused():
    limit = request_bytes(obs_dim=1, image_shape=None, batch=1)
    with PolicyServer(Steps, TOKEN, max_request=limit) as server:
        sock, session = joined(server.address)
        sock.sendall(session.seal({"kind": "act", "robot": 0, "obs": np.zeros(1), "pad": bytes(4 * limit)}))
        assert refusal(sock, session) == "too_large"
        assert server.policies == {}


# ---- the robot agent ----
def test_strangers_holding_every_handshake_slot_do_not_lock_the_controller_out(agent):
    """Its 8 pre-authentication slots let a peer without the token lock the controller out."""
    strangers = [dial(agent.address) for _ in range(HANDSHAKES)]
    wait_for(lambda: agent.door.counts["accepted"] == HANDSHAKES, "the strangers let in")
    robot = RemoteRobot(agent.address, TOKEN, connect_timeout_s=LIVE_S)
    robot.connect()  # pushes the oldest stranger out
    assert robot.health()["connected"] and agent.health()["refused_busy"] >= 1
    assert hung_up(strangers[0], LIVE_S)
    robot.disconnect()
    for sock in strangers:
        sock.close()


def test_a_controller_gets_in_under_a_flood_of_slow_strangers(agent):
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            try:
                sock = dial(agent.address)
                stop.wait(0.05)  # each holds its slot a while, as a slow peer does
                sock.close()
            except OSError:
                pass

    flooders = [threading.Thread(target=flood, daemon=True) for _ in range(2 * HANDSHAKES)]
    for thread in flooders:
        thread.start()
    try:
        for _ in range(5):
            robot = RemoteRobot(agent.address, TOKEN, connect_timeout_s=LIVE_S)
            end = time.monotonic() + LIVE_S
            while True:
                try:
                    robot.connect()
                    break
                except ConnectionError as e:
                    assert time.monotonic() < end, f"never got in: {e}"
            robot.disconnect()
    finally:
        stop.set()
        for thread in flooders:
            thread.join()
    assert agent.health()["connects"] == 5


def test_a_controllers_frame_inflating_past_a_command_is_refused(agent):
    """With the token, one 412 KB frame inflated to +860 MB: now a command inflates to what a command holds."""
    robot = RemoteRobot(agent.address, TOKEN, connect_timeout_s=LIVE_S)
    robot.connect()
    assert robot.session is not None and robot.sock is not None
    bomb = robot.session.seal({"kind": "hold", "pad": bytes(64 << 20)})  # 64 MiB of zeros: a 256 KiB frame
    assert len(bomb) < 1 << 20
    robot.sock.sendall(bomb)
    wait_for(lambda: agent.health().get("refused_too_large", 0) == 1, "the bomb refused")
    wait_for(lambda: not agent.health()["connected"], "the controller hung up on")


def test_a_controllers_frame_that_trickles_is_cut_off(agent, monkeypatch):
    monkeypatch.setattr(wire, "FRAME_S", 1.0)
    host, port = agent.address.rsplit(":", 1)
    robot = RemoteRobot(agent.address, TOKEN, connect_timeout_s=LIVE_S)
    robot.connect()
    assert robot.session is not None and robot.sock is not None
    stop = threading.Event()
    data = robot.session.seal({"kind": "ping", "t0": time.time(), "pad": bytes(range(256)) * 4})
    sender = threading.Thread(target=trickle, args=(robot.sock, data, stop), daemon=True)
    sender.start()
    try:
        wait_for(lambda: agent.health().get("refused_slow", 0) == 1, "the trickling controller cut off")
    finally:
        stop.set()
        sender.join()


# ---- TLS ----
@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), and its key."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dagger",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_the_policy_server_speaks_tls_where_given_a_certificate(certificate):
    cert, key = certificate
    with PolicyServer(Steps, TOKEN, tls=wire.server_tls(cert, key)) as server:
        remote = RemotePolicy(server.address, TOKEN, deadline_ms=LIVE_S * 1000, tls=wire.client_tls(cert))
        assert [remote.act(np.zeros(1)).action[0] for _ in range(3)] == [1.0, 2.0, 3.0]
        plain = dial(server.address)
        plain.sendall(wire.frame(TOKEN, {"kind": "hello"}))  # not TLS: the server never reads it as a frame
        assert hung_up(plain, LIVE_S)
        wait_for(lambda: server.health().get("refused_tls", 0) == 1, "the plain client counted")


def test_the_robot_agent_speaks_tls_where_given_a_certificate(certificate):
    cert, key = certificate
    agent = RobotAgent(SimRobot(make_task("point")), TOKEN, period=0.01, tls=wire.server_tls(cert, key)).start()
    try:
        robot = RemoteRobot(agent.address, TOKEN, connect_timeout_s=LIVE_S, tls=wire.client_tls(cert))
        robot.connect()
        robot.watchdog_periods = LIVE_S / robot.period
        robot.reset(seed=0)
        robot.send_action(np.array([0.5, 0.0]))
        assert robot.get_observation().action is not None
        robot.disconnect()
    finally:
        agent.close()


# ---- the codec's bound ----
@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 1 << 16), fill=st.integers(0, 255), slack=st.integers(-64, 64))
def test_decode_never_inflates_past_its_bound(size, fill, slack):
    payload = codec.encode({"pad": bytes([fill]) * size})
    inflated = len(msgpack.packb({"pad": bytes([fill]) * size}, use_bin_type=True))
    bound = max(inflated + slack, 1)
    if bound >= inflated:
        assert codec.decode(payload, bound) == {"pad": bytes([fill]) * size}
    else:
        with pytest.raises(codec.CodecError, match=f"inflates past {bound} bytes"):
            codec.decode(payload, bound)


@settings(max_examples=40, deadline=None)
@given(inflated=st.integers(1 << 10, 1 << 22), limit=st.integers(64, 1 << 16))
def test_an_authentic_bomb_is_refused_as_too_large(inflated, limit):
    body = bytes([codec.FORMAT_VERSION]) + lz4.frame.compress(msgpack.packb({"pad": bytes(inflated)}))
    mac = wire.hmac.new(TOKEN, body, wire.hashlib.sha256).digest()
    if inflated + 16 <= limit:
        assert wire.open_frame(TOKEN, mac, body, limit)["pad"] == bytes(inflated)
    else:
        with pytest.raises(wire.BadFrame) as refused:
            wire.open_frame(TOKEN, mac, body, limit)
        assert refused.value.why == "too_large"
    assert len(body) < HEADER + inflated  # zeros compress: the bound is on what it inflates to, not its length


def inflated(message: dict) -> int:
    """What a sealed message inflates to, as a reader's bound counts it."""
    session = Session(TOKEN)
    body = session.seal(message)[HEADER:]
    return len(lz4.frame.decompress(body[1:]))


DIMS = st.integers(1, 64)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 8), obs_dim=DIMS, image=st.none() | st.tuples(st.integers(1, 32), st.integers(1, 32)),
       dtype=st.sampled_from([np.float32, np.float64, np.int64]))
def test_a_policy_request_of_the_tasks_shapes_is_never_refused_as_too_large(k, obs_dim, image, dtype):
    """The bound is what a request can hold: act_batch of K robots' observations (any numeric dtype up to 8 bytes)
    and images at most, with every field; act and reset fit inside it."""
    shape = None if image is None else (*image, 3)
    request = {"kind": "act_batch", "robots": list(range(10**6, 10**6 + k)), "obs": np.ones((k, obs_dim), dtype),
               "t": [2**40] * k, "reset": [True] * k, "instruction": "pick up the red block and put it in the bin"}
    if shape is not None:
        request["images"] = np.full((k, *shape), 255, np.uint8)
    assert inflated(request) <= request_bytes(obs_dim, shape, batch=k)


@settings(max_examples=30, deadline=None)
@given(obs_dim=DIMS, act_dim=DIMS, image=st.none() | st.tuples(st.integers(1, 64), st.integers(1, 64)))
def test_what_the_bridge_says_is_never_refused_as_too_large(obs_dim, act_dim, image):
    """A controller's largest command (an act, as floats or a list) and an agent's largest observation fit their
    readers' bounds."""
    from dagger.robots.agent import command_bytes
    from dagger.robots.base import Observation
    from dagger.robots.bridge import obs_message
    from dagger.robots.remote import observation_bytes

    act = np.full(act_dim, -0.123456789)
    assert inflated({"kind": "act", "action": act}) <= command_bytes(act_dim)
    assert inflated({"kind": "act", "action": act.tolist()}) <= command_bytes(act_dim)
    shape = None if image is None else (*image, 3)
    obs = Observation(np.full(obs_dim, 1.5, np.float32), -1e300, True, True, True, act,
                      None if shape is None else np.full(shape, 255, np.uint8))
    message = obs_message(obs, act, episode=2**40, tick=2**40, cmd=2**40, held=True, state_tick=2**40,
                          origin=2**40)
    spec = {"obs_dim": obs_dim, "act_dim": act_dim, "image_shape": shape}
    assert inflated(message) <= observation_bytes(spec)


def test_a_refusal_is_logged_once_per_cause_and_counted(server, caplog):
    for _ in range(5):
        sock = dial(server.address)
        sock.sendall(wire.frame(new_token(), {"kind": "hello"}))
        assert hung_up(sock, LIVE_S)
    wait_for(lambda: server.health().get("refused_unsigned") == 5, "five refusals counted")
    assert sum("refused a frame" in r.getMessage() for r in caplog.records) == 1


def test_the_readme_serves_on_loopback():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    serves = [line for line in readme.splitlines() if "dagger serve" in line or "robot-agent --" in line]
    assert serves and not any("0.0.0.0" in line for line in serves), serves
