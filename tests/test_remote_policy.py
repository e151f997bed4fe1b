"""The served policy over real loopback sockets: answers match the hosted policy, weights travel, bad frames are
refused (pickles never unpickled), a late or absent server raises PolicyTimeout within the deadline and a late
answer is never taken for a later request, and episode state is kept per robot.

No test here races the clock: a deadline a test expects to be missed is missed for certain (the hosted policy waits
for the test to release it), and one it expects to be met is ANSWERED_MS, which a loaded machine never misses."""

from __future__ import annotations

import hashlib
import hmac
import pickle
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from buffers.codec import encode
from dagger.core import PolicyOutput, PolicyTimeout
from dagger.policies import EnsemblePolicy, PolicyConfig
from dagger.policies.remote import PolicyServer, RemotePolicy, RemotePolicyError
from dagger.wire import Session, answer_challenge, frame, new_token, read_token
from tests.conftest import wait_until

CONFIG = PolicyConfig(members=3, hidden=16)
OBS, ACT = 4, 2
ANSWERED_MS = 60_000
"""the deadline where a test expects an answer: these tests are about what is answered, not how fast"""


def ensemble(seed: int = 0) -> EnsemblePolicy:
    return EnsemblePolicy(OBS, ACT, CONFIG, seed=seed)


def obs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=OBS).astype(np.float32)


class Held:
    """Hosts an ensemble; each act is counted and answers only once the test sets `release`."""

    def __init__(self) -> None:
        self.inner, self.calls, self.answered, self.version = ensemble(), 0, 0, 0
        self.release = threading.Event()

    def act(self, obs: np.ndarray, image: np.ndarray | None = None) -> PolicyOutput:
        self.calls += 1
        assert self.release.wait(120), "the test never released the held policy"
        out = self.inner.act(obs, image)
        self.answered += 1
        return out

    def reset(self) -> None:
        self.inner.reset()

    def load(self, weights: dict) -> None:
        self.inner.load(weights)
        self.version = self.inner.version


class Counter:
    """Episode state made visible: the action is the number of steps since reset. An act with obs[0] > 0 answers only
    once `release` is set; it records the image and instruction it was given."""

    def __init__(self, release: threading.Event | None = None) -> None:
        self.version, self.steps = 0, 0
        self.seen: dict[str, Any] = {}
        self.release = release or threading.Event()

    def act(self, obs: np.ndarray, image: np.ndarray | None = None, instruction: str = "") -> PolicyOutput:
        if obs[0] > 0:
            assert self.release.wait(120), "the test never released the held act"
        self.steps += 1
        self.seen = {"image": image, "instruction": instruction}
        return PolicyOutput(np.array([float(self.steps)]), 0.0, self.version)

    def reset(self) -> None:
        self.steps = 0

    def load(self, weights: dict) -> None:
        self.version = int(weights["version"])


class Deaf(Counter):
    """A policy whose act takes no instruction."""

    def act(self, obs: np.ndarray, image: np.ndarray | None = None) -> PolicyOutput:  # type: ignore[override]
        return super().act(obs, image)


class Touch:
    """Unpickling this creates `path`: what a server that unpickles its input would run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


def exchange(address: str, data: bytes | Callable[[Session], bytes], token: bytes) -> tuple[dict, bytes]:
    """Sends raw bytes to the server, in place of the hello (bytes) or after the handshake (a function of the
    connection's session); returns its answer and what follows it (b"": it hung up)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        session = Session(token)
        challenge = session.read(conn)
        assert challenge is not None and challenge["kind"] == "challenge"
        if callable(data):
            client_nonce = answer_challenge(conn, session, challenge)
            welcome = session.read(conn)
            assert welcome is not None and welcome["client_nonce"] == client_nonce
            data = data(session)
        conn.sendall(data)
        answer = session.read(conn)
        assert answer is not None
        return answer, conn.recv(1)


def signed(token: bytes, body: bytes) -> bytes:
    """A frame around any body, with a valid HMAC."""
    return len(body).to_bytes(4, "big") + hmac.new(token, body, hashlib.sha256).digest() + body


def test_act_matches_the_hosted_policy():
    token = new_token()
    with PolicyServer(ensemble, token) as server:
        remote, direct = RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS), ensemble()
        assert remote.hello() == {"version": 0, "obs_dim": OBS, "act_dim": ACT}
        for seed in range(5):
            out, ref = remote.act(obs(seed)), direct.act(obs(seed))
            np.testing.assert_array_equal(out.action, ref.action)
            assert out.samples is not None and ref.samples is not None
            np.testing.assert_array_equal(out.samples, ref.samples)
            assert (out.spread, out.safety, out.p_safe, out.risk, out.train_gap, out.version) == \
                (ref.spread, ref.safety, ref.p_safe, ref.risk, ref.train_gap, ref.version)
        remote.close()


def test_load_reaches_every_robot_and_changes_the_version():
    token = new_token()
    trained = ensemble(seed=1)
    trained.version = 3
    with PolicyServer(ensemble, token) as server:
        robot0 = RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS, robot=0)
        before = robot0.act(obs(0))
        robot0.load(trained.weights())
        assert robot0.version == 3
        robot1 = RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS, robot=1)  # its policy: made after load
        for remote in (robot0, robot1):
            out = remote.act(obs(0))
            assert out.version == 3
            np.testing.assert_array_equal(out.action, trained.act(obs(0)).action)
        assert not np.array_equal(before.action, out.action)


def test_a_server_may_refuse_weights():
    token = new_token()
    trained = ensemble(seed=1)
    trained.version = 3
    with PolicyServer(ensemble, token, accept_weights=False) as server:
        remote = RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS)
        with pytest.raises(RemotePolicyError, match="refuses weights"):
            remote.load(trained.weights())
        assert remote.act(obs(0)).version == 0  # still serving, weights unchanged


@pytest.mark.parametrize("case", ["wrong token", "missing token", "pickle with a valid HMAC", "too large",
                                  "unknown kind"])
def test_bad_frames_are_refused_and_the_server_serves_on(case, tmp_path):
    token, marker = new_token(), tmp_path / "pwned"
    hello = encode({"kind": "hello"})
    data, why = {
        "wrong token": (frame(new_token(), {"kind": "hello"}), "unauthenticated"),
        "missing token": (len(hello).to_bytes(4, "big") + bytes(32) + hello, "unauthenticated"),
        "pickle with a valid HMAC": (lambda session: signed(session.token, pickle.dumps(Touch(marker))),
                                     "not a msgpack message"),
        "too large": ((1 << 31).to_bytes(4, "big") + bytes(32), "too large"),  # 2 GiB claimed, never read
        "unknown kind": (lambda session: session.seal({"kind": "eval", "code": "__import__('os').system('true')"}),
                         "unknown kind"),
    }[case]
    with PolicyServer(ensemble, token) as server:
        answer, after = exchange(server.address, data, token)
        assert why in answer["error"]
        assert after == b""  # it hung up on the bad client
        assert RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS).act(obs(0)).action.shape == (ACT,)
    assert not marker.exists()


def test_pickles_are_never_unpickled(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Touch(proof)))  # the payload is live: unpickling it does create the file
    assert proof.exists()
    token, marker = new_token(), tmp_path / "pwned"
    with PolicyServer(ensemble, token) as server:
        remote = RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS)
        with pytest.raises(RemotePolicyError, match="weights must be a map"):
            remote.load(pickle.dumps(Touch(marker)))
        with pytest.raises(RemotePolicyError, match="act failed"):
            remote.call({"kind": "act", "robot": 0, "obs": pickle.dumps(Touch(marker))}, ANSWERED_MS / 1000)
        assert remote.act(obs(0)).action.shape == (ACT,)
    assert not marker.exists()


def test_a_client_with_the_wrong_token_gets_a_clear_error():
    with PolicyServer(ensemble, new_token()) as server:
        with pytest.raises(RemotePolicyError, match="share the token"):
            RemotePolicy(server.address, new_token(), deadline_ms=ANSWERED_MS).act(obs(0))


def test_a_late_answer_times_out_and_is_never_taken_for_a_later_request():
    token = new_token()
    hosted = Held()
    with PolicyServer(lambda: hosted, token) as server:
        remote, direct = RemotePolicy(server.address, token, deadline_ms=50), ensemble()
        remote.hello()  # connected (hello waits timeout_s): the request below is sent for certain
        with pytest.raises(PolicyTimeout, match=f"{server.address}.*50 ms"):
            remote.act(obs(1))
        assert hosted.answered == 0  # the robot gave up at its deadline, not when the answer came
        wait_until(lambda: hosted.calls == 1, timeout=60, what="the request reaching the policy")
        with pytest.raises(PolicyTimeout):
            remote.act(obs(2))  # the first answer is still due: nothing new is sent
        hosted.release.set()
        wait_until(lambda: hosted.answered == 1, timeout=60, what="the late answer")
        remote.deadline_ms = ANSWERED_MS  # the late answer to obs(1) comes first: dropped, then obs(2)'s
        out = remote.act(obs(2))
        np.testing.assert_array_equal(out.action, direct.act(obs(2)).action)
        assert not np.array_equal(out.action, direct.act(obs(1)).action)
        assert hosted.calls == 2  # obs(1) and the last obs(2): requests never queue behind a slow server


def test_a_server_that_is_down_times_out_and_is_used_again_when_back():
    token = new_token()
    server = PolicyServer(ensemble, token).start()
    address, port = server.address, int(server.address.rsplit(":", 1)[1])
    remote = RemotePolicy(address, token, deadline_ms=ANSWERED_MS)
    remote.act(obs(0))
    server.close()
    for _ in range(2):  # the connection drops, then reconnecting is refused: said at once, not waited out (a minute)
        with pytest.raises(PolicyTimeout, match=address) as failed:
            remote.act(obs(0))
        assert "no answer within" not in str(failed.value) and "Error" in str(failed.value), failed.value
    with PolicyServer(ensemble, token, port=port):
        np.testing.assert_array_equal(remote.act(obs(0)).action, ensemble().act(obs(0)).action)


def test_episode_state_is_kept_per_robot():
    token = new_token()
    with PolicyServer(Counter, token) as server:
        robot0, robot1 = (RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS, robot=r) for r in (0, 1))
        quick = np.zeros(1)
        assert [robot0.act(quick).action[0] for _ in range(3)] == [1, 2, 3]
        assert [robot1.act(quick).action[0] for _ in range(2)] == [1, 2]
        robot0.reset()
        assert robot0.act(quick).action[0] == 1
        assert robot1.act(quick).action[0] == 3


def test_an_unconfirmed_reset_happens_before_the_next_act():
    token = new_token()
    with PolicyServer(Counter, token) as server:
        remote = RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS)
        remote.act(np.zeros(1))
        remote.act(np.zeros(1))
        for guest in list(server.door.inside):  # the link breaks; the server and its policies stay up
            guest.hang_up()
        remote.reset()  # not confirmed: no error, the robot starts its episode anyway
        assert remote.act(np.zeros(1)).action[0] == 1  # not 3: the server reset this robot's policy first


def test_image_and_instruction_reach_the_hosted_policy():
    token = new_token()
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with PolicyServer(Counter, token) as server:
        asking = RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS, instruction="pick up the cup")
        asking.act(np.zeros(1), image)
        seen = server.policies[0].seen
        assert seen["instruction"] == "pick up the cup"
        np.testing.assert_array_equal(seen["image"], image)
    with PolicyServer(Deaf, token) as server:  # a policy that takes no instruction says so
        with pytest.raises(RemotePolicyError, match="instruction"):
            RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS, instruction="pick").act(np.zeros(1))
    with PolicyServer(ensemble, token) as server:  # the families here take the instruction and ignore it
        out = RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS, instruction="pick").act(obs(0))
        assert out.action.shape == (2,)


def test_tokens(tmp_path):
    token = new_token()
    assert len(token) == 32 and token != new_token()
    (tmp_path / "token").write_text(token.hex() + "\n")
    assert read_token(tmp_path / "token") == token
    for text in ("not hex", "abcd"):
        (tmp_path / "bad").write_text(text)
        with pytest.raises(ValueError, match="hex, at least 16 bytes"):
            read_token(tmp_path / "bad")


def test_a_robot_retrying_after_a_timeout_advances_the_served_policy_once():
    """The robot held (same observation, no answer counted): the server answers the retry with the late answer
    instead of acting again, so a policy with episode state (Counter: steps since reset) stays in step."""
    token, release = new_token(), threading.Event()
    with PolicyServer(lambda: Counter(release), token) as server:
        remote = RemotePolicy(server.address, token, deadline_ms=50)
        remote.hello()
        slow = np.array([1.0])  # obs[0] > 0: the act answers once released
        with pytest.raises(PolicyTimeout):
            remote.act(slow)
        release.set()
        wait_until(lambda: server.policies[0].steps == 1, timeout=60, what="the late answer")
        remote.deadline_ms = ANSWERED_MS
        assert remote.act(slow).action[0] == 1.0  # the late answer, not a second step
        assert remote.act(np.array([0.0])).action[0] == 2.0  # the robot moved on: a new step
        assert server.policies[0].steps == 2
        remote.reset()
        assert remote.act(np.array([0.0])).action[0] == 1.0


def test_an_answer_a_robot_cannot_move_on_is_refused():
    token = new_token()
    with PolicyServer(Counter, token) as server:
        with pytest.raises(RemotePolicyError, match="not 2 finite numbers"):
            RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS, act_dim=2).act(np.zeros(1))  # Counter: 1-d
    nan = Counter()
    nan.act = lambda obs, image=None: PolicyOutput(np.array([np.nan]), 0.0, 0)  # type: ignore[method-assign]
    with PolicyServer(lambda: nan, token) as server:
        with pytest.raises(RemotePolicyError, match="finite"):
            RemotePolicy(server.address, token, deadline_ms=ANSWERED_MS, act_dim=1).act(np.zeros(1))
