"""The robot bridge under hostile input. Its readers take any map and any bytes and answer with what they promise or
one BadFrame naming the field (or saying unauthenticated / replayed / stale / not a msgpack message / too large).
A robot agent on real loopback sockets, sent random bytes, wrong HMACs, bad bodies or replays, hangs up on that
connection, counts it under refused_<why>, holds the robot, and serves the next controller; a stale frame is counted
and dropped, never executed. A controller (RemoteRobot) refuses a bad frame from its agent the same way.

    python tests/test_bridge_fuzz.py -max_total_time=60      # the same readers under atheris (coverage-guided)
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import math
import pickle
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import lz4.frame
import numpy as np
import pytest
from hypothesis import Phase, given, settings

from buffers import codec
from buffers.codec import encode
from dagger import wire
from dagger.robots import RobotLate, SimRobot, bridge
from dagger.robots.agent import HELLO_BYTES, RobotAgent
from dagger.robots.remote import RemoteRobot
from dagger.tasks import make_task
from dagger.wire import HEADER, MAX_BYTES, BadFrame, Session, frame, open_frame, read_frame

# an unhandled exception in an agent's thread fails the test (pytest would only warn)
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

TOKEN = bytes(range(32))
PERIOD = 0.01  # the agent's control period (s)
LIVE_S = 60.0  # how long a test waits for what must happen: reached on a loaded machine only when something is broken
OBS, ACT = 6, 2  # the point task's sizes
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
FUZZ = settings(max_examples=50, deadline=None)  # the readers are fast: at least 50 examples each
SOCKETS = settings(max_examples=30, deadline=None, phases=NO_SHRINK)  # a failure costs seconds: no shrinking

# ---- what arrives: anything msgpack carries (the codec's arrays included) ----
ARRAYS = hnp.arrays(st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(endianness="?"),
                              hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(endianness="?"),
                              hnp.complex_number_dtypes()),
                    hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=7))
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=8),
                   st.binary(max_size=20), ARRAYS, ARRAYS.filter(lambda a: a.ndim == 0).map(lambda a: a[()]))
VALUES = st.recursive(LEAVES, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids,
                                                                                        max_size=4), max_leaves=10)
FIELDS = sorted({"kind", "seq", "ts", "nonce", "client_nonce", "t0", "offset", "seed", "episode", "action", "tick",
                 "cmd", "held", "state_tick", "origin", "state", "reward", "success", "constraint", "done", "image",
                 "expert", "spec", *bridge.SPEC_KEYS})
MAPS = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), VALUES, max_size=8)
KINDS = st.one_of(ARRAYS, st.text(max_size=8), VALUES)
MISSING = object()  # a field left out

SPEC = {"name": "point", "instruction": "", "obs_dim": OBS, "act_dim": ACT, "dt": 0.05, "period": 0.0125,
        "image_shape": [4, 5, 3], "ends_on_success": True, "expert": True}
OBS_SPEC = {**SPEC, "image_shape": (4, 5, 3)}
VALID_OBS = {"kind": "obs", "episode": 0, "tick": 3, "cmd": 2, "held": False, "state_tick": 3, "origin": 2,
             "state": np.zeros(OBS, np.float32), "reward": -0.5, "success": False, "constraint": False, "done": False,
             "action": np.zeros(ACT), "image": np.zeros((4, 5, 3), np.uint8), "expert": [0.5, -1]}


def refused(call: Callable[[], Any], fields: set[str]) -> Any:
    """call()'s answer, or None when it raised a BadFrame naming one of `fields` (anything else escapes)."""
    try:
        return call()
    except BadFrame as e:
        named = re.search(r"field '([\w.]+)'", str(e))
        assert named, f"no field named in {e}"
        assert named.group(1).split(".")[-1] in fields, f"{e} (expected one of {sorted(fields)})"
        assert e.why == "malformed" and len(str(e)) < 400
        return None


def finite(a: Any, shape: tuple[int, ...], dtype: Any) -> bool:
    return isinstance(a, np.ndarray) and a.shape == shape and a.dtype == dtype and bool(np.all(np.isfinite(a)))


def read_everything(message: dict) -> None:
    """Every reader on one map: each returns what it promises or raises BadFrame naming its field."""
    assert refused(lambda: bridge.kind(message, bridge.TO_AGENT), {"kind"}) in (None, *bridge.TO_AGENT)
    t0 = refused(lambda: bridge.number(message, "t0", -1.0, 1.0), {"t0"})
    assert t0 is None or (type(t0) is float and -1.0 <= t0 <= 1.0)
    seed = refused(lambda: bridge.integer(message, "seed", 0), {"seed"})
    assert seed is None or (type(seed) is int and seed >= 0)
    assert refused(lambda: bridge.flag(message, "held"), {"held"}) in (None, True, False)
    nonce = refused(lambda: bridge.blob(message, "nonce"), {"nonce"})
    assert nonce is None or (type(nonce) is bytes and len(nonce) == 16)
    action = refused(lambda: bridge.vector(message, "action", ACT), {"action"})
    assert action is None or finite(action, (ACT,), np.float64)
    state = refused(lambda: bridge.array(message, "state", (OBS,), "float32"), {"state"})
    assert state is None or finite(state, (OBS,), np.float32)
    read = refused(lambda: bridge.read_obs(message, OBS_SPEC), {"episode", "tick", "cmd", "held", "state_tick",
                                                         "origin", "state", "action", "image", "expert", "reward",
                                                         "success", "constraint", "done"})
    if read is not None:
        obs, meta = read
        assert finite(obs.obs, (OBS,), np.float32) and math.isfinite(obs.reward)
        assert obs.action is None or finite(obs.action, (ACT,), np.float64)
        assert obs.expert is None or finite(obs.expert, (ACT,), np.float64)
        assert all(type(v) is int for k, v in meta.items() if k != "held")
    spec = refused(lambda: bridge.read_spec(message), {"spec", *bridge.SPEC_KEYS})
    if spec is not None:
        assert spec["obs_dim"] >= 1 and spec["act_dim"] >= 1 and 0 < spec["period"] <= 10


# ---- the readers ----
@FUZZ
@given(MAPS, KINDS | st.just(MISSING))
def test_readers_take_any_map(message: dict, what: Any) -> None:
    read_everything(message if what is MISSING else {**message, "kind": what})


@settings(max_examples=150, deadline=None)
@given(st.one_of(LEAVES, VALUES, KINDS, st.binary(min_size=15, max_size=17)))
def test_readers_take_any_value(value: Any) -> None:
    read_everything({field: value for field in FIELDS})  # every reader meets the value in its own field


@FUZZ
@given(st.sampled_from(sorted(VALID_OBS)), VALUES | st.just(MISSING))
def test_one_bad_field_of_an_observation_is_named(field: str, value: Any) -> None:
    assert bridge.read_obs(VALID_OBS, OBS_SPEC)[1]["cmd"] == 2  # the message is valid as it is
    message = {k: v for k, v in {**VALID_OBS, field: value}.items() if v is not MISSING}
    try:
        bridge.read_obs(message, OBS_SPEC)
    except BadFrame as e:
        assert f"'{field}'" in str(e)


@FUZZ
@given(st.sampled_from(bridge.SPEC_KEYS), VALUES | st.just(MISSING))
def test_one_bad_field_of_a_spec_is_named(key: str, value: Any) -> None:
    assert bridge.read_spec({"spec": SPEC})["image_shape"] == (4, 5, 3)
    spec = {k: v for k, v in {**SPEC, key: value}.items() if v is not MISSING}
    try:
        bridge.read_spec({"spec": spec})
    except BadFrame as e:
        assert key in str(e)


@FUZZ
@given(seq=VALUES | st.integers(0, 8), ts=VALUES | st.floats(-2.0, 2.0), measured=st.booleans())
def test_session_check_names_the_rule(seq: Any, ts: Any, measured: bool) -> None:
    session = Session(TOKEN, max_age_s=0.5, clock=lambda: 0.0)
    session.received, session.offset = 4, (0.0 if measured else None)
    try:
        session.check({"seq": seq, "ts": ts})
    except BadFrame as e:
        if type(seq) is not int:
            assert "'seq'" in str(e)
        elif seq != 5:
            assert e.why == ("replayed" if seq <= 4 else "out_of_order") and str(e).startswith(e.why.replace("_", " "))
        elif type(ts) is not float or not math.isfinite(ts):
            assert "'ts'" in str(e)
        else:  # a stale frame still counts in the numbering: the reader may drop it and read on
            assert measured and abs(ts) > 0.5 and e.why == "stale" and str(e).startswith("stale")
            assert session.received == 5
            return
        assert session.received == 4  # any other refused frame does not move the sequence on
        return
    assert (seq, type(ts), session.received) == (5, float, 5) and (not measured or abs(ts) <= 0.5)


@FUZZ
@given(mac=st.binary(max_size=40), body=st.binary(max_size=300), inner=st.binary(max_size=300))
def test_open_frame_takes_any_bytes(mac: bytes, body: bytes, inner: bytes) -> None:
    with pytest.raises(BadFrame, match="^unauthenticated") as refusal:
        open_frame(TOKEN, mac, body)
    assert refusal.value.why == "unsigned"
    for payload in (body, b"\x01" + lz4.frame.compress(inner)):  # signed: past the HMAC, into the decoder
        try:
            read_everything(open_frame(TOKEN, sign(payload), payload))
        except BadFrame as e:
            assert e.why == "not_msgpack" and str(e).startswith("not a msgpack message")


@FUZZ
@given(st.binary(max_size=200) | st.builds(lambda n, rest: n.to_bytes(4, "big") + rest,
                                            st.integers(0, 2**32 - 1), st.binary(max_size=200)))
def test_read_frame_takes_any_bytes(data: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        try:
            message = read_frame(b, TOKEN)
        except BadFrame as e:
            assert e.why == refusal_of(data) and str(e).startswith({"unsigned": "unauthenticated",
                                                                    "too_large": "too large"}[e.why])
            return
        assert message is None and refusal_of(data) is None  # it hung up before a whole frame


def sign(body: bytes) -> bytes:
    return hmac.new(TOKEN, body, hashlib.sha256).digest()


def signed(body: bytes, token: bytes = TOKEN) -> bytes:
    """A frame around any body, signed with `token`."""
    return len(body).to_bytes(4, "big") + hmac.new(token, body, hashlib.sha256).digest() + body


def refusal_of(data: bytes, limit: int = MAX_BYTES) -> str | None:
    """What a reader makes of these bytes and then the end of the stream: the refusal's why, or None (a hang-up)."""
    if len(data) < HEADER:
        return None
    size = int.from_bytes(data[:4], "big")
    if size > limit:
        return "too_large"
    return "unsigned" if len(data) >= HEADER + size else None  # a random HMAC never matches


# ---- the agent, over loopback ----
class Log(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.refusals: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "refused a frame" in record.getMessage():
            self.refusals.append(record.getMessage())


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[RobotAgent, Log]]:
    agent = RobotAgent(SimRobot(make_task("point")), TOKEN, period=PERIOD).start()
    log, logger = Log(), logging.getLogger("dagger.robots.agent")
    logger.addHandler(log)
    yield agent, log
    logger.removeHandler(log)
    agent.close()


class Controller:
    """A controller speaking the bridge by hand, in RemoteRobot's order: challenge -> hello -> welcome -> offset."""

    def __init__(self, agent: RobotAgent):
        host, port = agent.address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=LIVE_S)
        self.session = Session(TOKEN)

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, message: dict) -> bytes:
        data = self.session.seal(message)
        self.sock.sendall(data)
        return data

    def forge(self, message: dict, seq: int | None = None, ts: float | None = None) -> bytes:
        """A frame signed for this connection with this sequence number and time (default: the next one, now)."""
        if seq is None:
            self.session.sent += 1
        return frame(self.session.token, {**message, "seq": self.session.sent if seq is None else seq,
                             "ts": time.time() if ts is None else ts})

    def expect(self, what: str, ready: Callable[[dict], bool] = lambda _: True) -> dict:
        end = time.monotonic() + LIVE_S
        while time.monotonic() < end:
            message = self.session.read(self.sock)
            assert message is not None, f"the agent hung up while we waited for {what!r}"
            if message["kind"] == what and ready(message):
                return message
        raise AssertionError(f"no {what!r} from the agent within {LIVE_S:g} s")

    def handshake(self, agent: RobotAgent) -> None:
        """Challenge, hello, welcome, the clock offset, then a fresh episode (the robot stands, held)."""
        nonce, client_nonce = self.expect("challenge")["nonce"], secrets.token_bytes(16)
        self.send({"kind": "hello", "nonce": nonce, "client_nonce": client_nonce})
        self.session.bind(nonce, client_nonce)
        self.expect("welcome")
        self.send({"kind": "offset", "offset": 0.0})
        episode = agent.episode + 1
        self.send({"kind": "reset", "seed": episode, "episode": episode})
        self.expect("obs", lambda m: m["episode"] == episode)

    def act_until_moving(self, action: list[float]) -> bytes:
        """Sends the act again each few periods until the robot executes it (on a busy machine the robot's period
        can come after the watchdog deadline); the frame that moved it."""
        for _ in range(100):
            data = self.send({"kind": "act", "action": action})
            seq = self.session.sent
            for _ in range(3):
                obs = self.expect("obs")
                if obs["cmd"] == seq and not obs["held"]:
                    return data
        raise AssertionError("the robot never executed a valid act")

    def hung_up(self) -> bool:
        """Whether the agent closes this connection within LIVE_S (what it sends meanwhile is read and dropped)."""
        end = time.monotonic() + LIVE_S
        try:
            while self.sock.recv(1 << 16):
                if time.monotonic() > end:
                    return False
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True


def refusals(agent: RobotAgent) -> collections.Counter[str]:
    return collections.Counter({k: v for k, v in agent.counts.items() if k.startswith("refused_")})


def steps_of(agent: RobotAgent) -> int:
    """The steps the agent's simulated robot has executed."""
    assert isinstance(agent.robot, SimRobot)
    return agent.robot.steps


def held_and_serving(agent: RobotAgent, steps: int | None, closed_at: int | None = None) -> None:
    """The robot holds: it has made `steps` steps, if given, and at most one (a period under way) after the link
    closed at step `closed_at`; a well-behaved controller then connects and steps."""
    end = time.monotonic() + LIVE_S
    while agent.moving or agent.health()["connected"]:
        assert time.monotonic() < end, "the robot still moves, or the agent still counts the controller connected"
        time.sleep(PERIOD / 2)
    before = steps_of(agent)
    time.sleep(3 * PERIOD)
    assert steps_of(agent) == before == (before if steps is None else steps)
    assert closed_at is None or before <= closed_at + 1, f"{before - closed_at} steps after the link closed"
    robot = RemoteRobot(agent.address, TOKEN, watchdog_periods=20)
    robot.connect()
    try:
        robot.reset(seed=0)
        for _ in range(100):  # on a busy machine a command can come past the agent's deadline: the robot holds
            robot.send_action(robot.expert_action())
            try:
                robot.get_observation()
            except RobotLate:
                continue
            if steps_of(agent) >= before + 3:
                break
        assert steps_of(agent) >= before + 3, "a well-behaved controller could not move the robot"
    finally:
        robot.disconnect()


def attack(served: tuple[RobotAgent, Log], send: Callable[[Controller], None], why: str, says: str,
           moves: bool = False) -> None:
    """After a handshake, send(controller) sends something bad: the agent hangs up, counts refused_<why> once,
    logs a reason containing `says`, and holds the robot (which made no step since the handshake unless `moves`)."""
    agent, log = served
    before, logged = refusals(agent), len(log.refusals)
    with Controller(agent) as controller:
        controller.handshake(agent)
        steps = steps_of(agent)
        send(controller)
        assert controller.hung_up(), "the agent kept the connection open"
        closed_at = steps_of(agent)
    assert refusals(agent) - before == collections.Counter({f"refused_{why}": 1})
    said_or_counted(agent, log, logged, says)
    held_and_serving(agent, None if moves else steps, closed_at)


def said_or_counted(agent: RobotAgent, log: Log, logged: int, says: str) -> None:
    """The refusal's reason was logged, or counted to be said once (the same reason from the same host as the line
    before: a stranger cannot flood the log)."""
    new = [line for line in log.refusals[logged:] if "(repeated" not in line]
    assert len(new) <= 1, new
    said = new[-1] if new else agent.refusals.text
    assert says in said and (new or agent.refusals.count), (new, agent.refusals.text)


class Touch:
    """Unpickling this creates `path`: what an agent that unpickled its input would run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


# exists only if the agent unpickled something
PICKLED = Path(tempfile.gettempdir()) / f"dagger-bridge-fuzz-{secrets.token_hex(4)}"
NEVER_VALID = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.binary(max_size=16),
                        st.lists(st.text(max_size=3), min_size=1, max_size=3),
                        st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2),
                        st.just(pickle.dumps(Touch(PICKLED))))
NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
BAD_NUMBERS = NEVER_VALID | NOT_FINITE
BAD_INTEGERS = NEVER_VALID | st.integers(-(2**63), -1) | st.floats()
NAN_ACTIONS = st.one_of(
    st.lists(st.floats(-1, 1) | NOT_FINITE, min_size=ACT, max_size=ACT).filter(lambda v: not np.all(np.isfinite(v))),
    hnp.arrays(hnp.floating_dtypes(), ACT).filter(lambda a: not np.all(np.isfinite(a))),
)
WRONG_LENGTHS = st.one_of(
    st.lists(st.floats(-1, 1), max_size=6).filter(lambda v: len(v) != ACT),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)).filter(lambda a: a.shape != (ACT,)),
)


def command(what: str, field: str, values: st.SearchStrategy) -> st.SearchStrategy:
    """Messages of kind `what` whose `field` is one of `values` (never valid), and what the refusal names."""
    return values.map(lambda v: ({"kind": what, "seed": 1, "episode": 10**6, field: v}, f"field '{field}'"))


COMMANDS = {  # signed, in sequence, fresh: refused for what they say
    "ping t0": command("ping", "t0", BAD_NUMBERS),
    "offset": command("offset", "offset", BAD_NUMBERS | st.floats(1e6, 1e300, exclude_min=True)),
    "reset seed": command("reset", "seed", BAD_INTEGERS),
    "reset episode": command("reset", "episode", BAD_INTEGERS),
    "action types": command("act", "action", NEVER_VALID | ARRAYS.filter(lambda a: a.dtype.kind not in "iuf")),
    "action NaN": command("act", "action", NAN_ACTIONS),
    "action lengths": command("act", "action", WRONG_LENGTHS),
    "action pickle": command("act", "action", st.just(pickle.dumps(Touch(PICKLED)))),
    "unknown kind": st.builds(lambda fields, what: ({**fields, "kind": what}, "field 'kind'"), MAPS,
                              KINDS.filter(lambda v: not (isinstance(v, str) and v in bridge.TO_AGENT[1:]))),
}
BODIES = st.one_of(  # signed bodies refused before they are read as a message
    st.binary(max_size=100).map(lambda b: (b, "not_msgpack", "not a msgpack message")),
    VALUES.filter(lambda v: not isinstance(v, dict)).map(lambda v: (encode(v), "not_msgpack", "not a msgpack")),
    st.just((pickle.dumps(Touch(PICKLED)), "not_msgpack", "not a msgpack message")),
    MAPS.filter(lambda m: "seq" not in m).map(lambda m: (encode(m), "malformed", "field 'seq'")),
)


@SOCKETS
@given(st.one_of(
    st.binary(max_size=120),
    st.builds(lambda body, mac: len(body).to_bytes(4, "big") + mac + body, st.binary(max_size=80),
              st.binary(min_size=32, max_size=32)),
    st.integers(MAX_BYTES + 1, 2**32 - 1).map(lambda n: n.to_bytes(4, "big") + bytes(32)),
))
def test_the_agent_hangs_up_on_random_bytes(served: tuple[RobotAgent, Log], data: bytes) -> None:
    agent, _ = served
    before, connects = refusals(agent), agent.counts["connects"]
    with Controller(agent) as controller:
        controller.sock.sendall(data)
        controller.sock.shutdown(socket.SHUT_WR)
        assert controller.hung_up()
    why = refusal_of(data, HELLO_BYTES)  # before the handshake a frame is short
    assert refusals(agent) - before == collections.Counter({f"refused_{why}": 1} if why else {})
    assert agent.counts["connects"] == connects  # never taken for a controller
    held_and_serving(agent, None)


@SOCKETS
@given(token=st.binary(min_size=16, max_size=40).filter(lambda t: t != TOKEN), at=st.integers(4, 200),
       bit=st.integers(0, 7), how=st.sampled_from(["hello", "flipped", "token", "unbound"]))
def test_the_agent_refuses_a_wrong_hmac(served: tuple[RobotAgent, Log], token: bytes, at: int, bit: int,
                                        how: str) -> None:
    if how == "hello":  # before the handshake: a hello signed with another secret
        agent, _ = served
        before = refusals(agent)
        with Controller(agent) as controller:
            controller.expect("challenge")
            controller.sock.sendall(frame(token, {"kind": "hello", "nonce": bytes(16), "client_nonce": bytes(16),
                                                  "seq": 1, "ts": time.time()}))
            assert controller.hung_up()
        assert refusals(agent) - before == collections.Counter({"refused_unsigned": 1})
        held_and_serving(agent, None)
        return

    def send(controller: Controller) -> None:
        good = controller.forge({"kind": "act", "action": np.full(ACT, 0.5)})
        flipped = bytearray(good)
        flipped[min(at, len(good) - 1)] ^= 1 << bit  # in the HMAC or the body
        act = {"kind": "act", "action": np.full(ACT, 0.5), "seq": controller.session.sent, "ts": time.time()}
        # another secret; or the shared one, not this connection's key (a frame made for another connection)
        bad = {"flipped": bytes(flipped), "token": frame(token, act), "unbound": frame(TOKEN, act)}[how]
        controller.sock.sendall(bad)

    attack(served, send, "unsigned", "unauthenticated")


@pytest.mark.parametrize("what", COMMANDS)
@settings(max_examples=8, deadline=None, phases=NO_SHRINK)
@given(data=st.data())
def test_the_agent_refuses_bad_commands(served: tuple[RobotAgent, Log], what: str, data: st.DataObject) -> None:
    message, says = data.draw(COMMANDS[what])
    attack(served, lambda controller: controller.sock.sendall(controller.forge(message)), "malformed", says)
    assert not PICKLED.exists()


@SOCKETS
@given(BODIES)
def test_the_agent_refuses_bad_bodies(served: tuple[RobotAgent, Log], case: tuple[bytes, str, str]) -> None:
    body, why, says = case
    attack(served, lambda controller: controller.sock.sendall(signed(body, controller.session.token)), why, says)
    assert not PICKLED.exists()


@SOCKETS
@given(act=st.booleans(), again=st.booleans(), action=st.lists(st.floats(-1, 1), min_size=ACT, max_size=ACT))
def test_the_agent_refuses_a_replay(served: tuple[RobotAgent, Log], act: bool, again: bool,
                                    action: list[float]) -> None:
    def send(controller: Controller) -> None:
        if act:  # the robot moves on it, then must hold as soon as the link is cut
            data = controller.act_until_moving(action)
            controller.send({"kind": "act", "action": action})  # the newest command is fresh when the link is cut
        else:
            data = controller.send({"kind": "ping", "t0": 0.0})
            controller.expect("pong")
        replay = data if again else controller.forge({"kind": "hold"}, seq=controller.session.sent)
        controller.sock.sendall(replay)

    attack(served, send, "replayed", "replayed", moves=act)


@SOCKETS
@given(age=st.floats(1.0, 1000.0) | st.floats(-1000.0, -1.0), action=st.lists(st.floats(-1, 1), min_size=ACT,
                                                                               max_size=ACT))
def test_the_agent_drops_a_stale_command(served: tuple[RobotAgent, Log], age: float, action: list[float]) -> None:
    """A stale frame (the controller stalled, or the network) is counted and dropped, never executed; the link lives
    on, and the numbering goes on past it."""
    agent, log = served
    before, logged = refusals(agent), len(log.refusals)
    with Controller(agent) as controller:
        controller.handshake(agent)
        steps = steps_of(agent)
        controller.sock.sendall(controller.forge({"kind": "act", "action": action}, ts=time.time() - age))
        controller.send({"kind": "ping", "t0": 0.0})
        controller.expect("pong")
        time.sleep(3 * PERIOD)
        assert steps_of(agent) == steps and not agent.moving
    assert refusals(agent) - before == collections.Counter({"refused_stale": 1})
    said_or_counted(agent, log, logged, "stale")
    held_and_serving(agent, steps)


AGENT_SAYS = st.one_of(  # what a (buggy) agent could send a controller after the handshake, and the refusal's why
    BAD_NUMBERS.map(lambda t0: ({"kind": "pong", "t0": t0, "health": {}}, "malformed")),
    (ARRAYS | st.text(max_size=4)).filter(lambda a: not finite(a, (OBS,), np.float32))
    .map(lambda state: ({**VALID_OBS, "state": state}, "malformed")),
    KINDS.filter(lambda v: not (isinstance(v, str) and v in ("pong", "obs"))).map(lambda v: ({"kind": v}, "malformed")),
    st.binary(min_size=HEADER, max_size=80).map(lambda b: (len(b[HEADER:]).to_bytes(4, "big") + b[4:], "unsigned")),
)


@SOCKETS
@given(AGENT_SAYS)
def test_the_controller_refuses_bad_frames(case: tuple[dict | bytes, str]) -> None:
    said, why = case
    with socket.create_server(("127.0.0.1", 0)) as server:
        robot = RemoteRobot(f"127.0.0.1:{server.getsockname()[1]}", TOKEN, connect_timeout_s=LIVE_S)
        connecting = threading.Thread(target=robot.connect)
        connecting.start()
        conn, _ = server.accept()
        with conn:
            conn.settimeout(LIVE_S)
            session = Session(TOKEN)  # the agent's side of the handshake, by hand
            conn.sendall(session.seal({"kind": "challenge", "nonce": bytes(16)}))
            hello = session.read(conn)
            assert hello is not None
            session.bind(bytes(16), hello["client_nonce"])
            conn.sendall(session.seal({"kind": "welcome", "client_nonce": hello["client_nonce"], "spec": SPEC,
                                       "episode": -1, "obs": None}))
            while (message := session.read(conn)) is not None and message["kind"] == "ping":
                conn.sendall(session.seal({"kind": "pong", "t0": message["t0"], "health": {}}))
            connecting.join()
            assert robot.health()["connected"] and robot.counts == {}
            conn.sendall(said if isinstance(said, bytes) else session.seal(said))
            end = time.monotonic() + LIVE_S
            while robot.health()["connected"]:
                assert time.monotonic() < end, "the controller kept the link"
                time.sleep(0.005)
    assert robot.counts == {f"refused_{why}": 1}


# ---- atheris: the same readers, coverage-guided (optional) ----
def fuzz_one(data: bytes) -> None:
    """One atheris input: the first byte picks raw bytes (unsigned) or a signed msgpack body for the decoder."""
    if not data:
        return
    payload = data[1:] if data[0] & 1 else b"\x01" + lz4.frame.compress(data[1:])
    mac = data[1:33] if data[0] & 2 else sign(payload)
    try:
        message = open_frame(TOKEN, mac, payload)
    except BadFrame as e:
        assert e.why in ("unsigned", "not_msgpack"), e
        return
    read_everything(message)
    try:
        Session(TOKEN).check(message)
    except BadFrame as e:
        assert re.match(r"(field '(seq|ts)'|replayed|out of order)", str(e)), e


def test_atheris_finds_nothing() -> None:
    pytest.importorskip("atheris")
    run = subprocess.run([sys.executable, __file__, "-max_total_time=5", "-rss_limit_mb=4096"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done" in run.stderr, run.stderr[-3000:]


def instrument(atheris: Any) -> None:
    """Coverage for the code under test only (atheris.instrument_all takes minutes over numpy and hypothesis)."""
    for module in (sys.modules[__name__], bridge, wire, codec):
        for obj in vars(module).values():
            for function in [obj, *vars(obj).values()] if isinstance(obj, type) else [obj]:
                if isinstance(function, types.FunctionType) and function.__module__ == module.__name__:
                    atheris.instrument_func(function)


if __name__ == "__main__":
    import atheris

    instrument(atheris)
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()
