"""remote: a policy served by another process over TCP, the way a large pretrained policy (a VLA such as π0 or
OpenVLA on a GPU machine) plugs in. The robot never waits past its deadline: a late answer raises PolicyTimeout and
the robot holds that step.

    server = PolicyServer(lambda: EnsemblePolicy(10, 2), token).start()      # on the GPU machine
    policy = RemotePolicy(server.address, token, deadline_ms=100, robot=0)   # on the robot
    out = policy.act(obs, image)                                             # or PolicyTimeout: hold this step

Wire (dagger.wire): authenticated msgpack frames, each a map with a "kind": act | reset | load | hello.
Reference (../shared/REFERENCES.md, "Large pretrained (VLA) policies"): LeRobot's async inference serves policies
over gRPC but unpickles its input and has no watchdog; DROID serves them over websocket + msgpack. The HMAC
authenticates, it neither encrypts nor stops a replay by someone on the path: keep the link on a trusted network
(or an SSH tunnel / VPN).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from dagger.core import Policy, PolicyOutput, PolicyTimeout
from dagger.wire import (
    HEADER,
    MAX_BYTES,
    BadFrame,
    checked_token,
    frame,
    open_frame,
    read_frame,
    too_large,
)

KINDS = ("act", "reset", "load", "hello")
IDLE_S = 60.0  # the server hangs up on a connection silent this long (a robot reconnects on its next call)

log = logging.getLogger(__name__)


class RemotePolicyError(RuntimeError):
    """The server refused a request, or answered with something this side cannot trust."""


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # close() must not wait for a policy call that hangs (a stalled GPU)
    allow_reuse_address = True  # a restarted server takes its port back at once
    owner: PolicyServer


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        cast(_Listener, self.server).owner.serve(self.request, self.client_address)


class PolicyServer:
    """Hosts a policy for many robots, one thread per connection. Each robot id has its own policy (its episode
    state: queued chunks, past observations), made by `make` on the robot's first request and given the newest
    weights loaded so far; a lock runs one policy call at a time (the robots share one model, one GPU)."""

    def __init__(self, make: Callable[[], Policy], token: bytes, host: str = "127.0.0.1", port: int = 0,
                 accept_weights: bool = True):
        self.make, self.token, self.accept_weights = make, checked_token(token), accept_weights
        self.policies: dict[int, Policy] = {}
        # robot -> (its answers this episode when asked, the observation, the answer): a request repeated after a
        # timeout (the robot held: same count, same observation) gets the same answer, so a policy with episode
        # state (queued chunks, past observations) advances once per robot step, not once per try
        self.answered: dict[int, tuple[int, np.ndarray, dict]] = {}
        self.weights: dict | None = None  # the newest weights loaded: a robot's policy made later takes them
        self.lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        self.closed = False
        self.listener = _Listener((host, port), _Handler)
        self.listener.owner = self
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.listener.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> PolicyServer:
        self.thread = threading.Thread(target=self.listener.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"policy-server {self.address}", daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        """Stops accepting and hangs up on every client (they see the server down)."""
        with self.conns_lock:
            self.closed = True
            conns = list(self.conns)
        if self.thread is not None:
            self.listener.shutdown()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone
        self.listener.server_close()

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, weights: dict) -> int:
        """Gives every robot's policy the weights (each takes only newer ones); returns robot 0's version."""
        if not isinstance(weights, dict):
            raise ValueError(f"weights must be a map, got {type(weights).__name__}")
        with self.lock:
            policy = self.policy(0)
            for p in self.policies.values():
                p.load(weights)
            if self.weights is None or weights.get("version", 0) > self.weights.get("version", 0):
                self.weights = weights
            return policy.version

    def policy(self, robot: int) -> Policy:
        """Robot `robot`'s policy, made on first use (call with the lock held)."""
        if robot not in self.policies:
            policy = self.make()
            if self.weights is not None:
                policy.load(self.weights)
            self.policies[robot] = policy
        return self.policies[robot]

    def serve(self, conn: socket.socket, peer: Any = None) -> None:
        """One client's connection: answer each request; a bad frame gets an error naming why, then a hang-up."""
        with self.conns_lock:
            if self.closed:
                return
            self.conns.add(conn)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(IDLE_S)  # a peer that stalls (mid-frame, or silent) does not hold a thread for ever
            while True:
                try:
                    message = self.receive(conn)
                except BadFrame as e:
                    log.warning("policy server %s: refused a frame from %s: %s", self.address, peer, e)
                    conn.sendall(frame(self.token, {"error": str(e)}))
                    return
                if message is None:
                    return
                conn.sendall(self.answer(message))
        except OSError:
            return  # the client went away
        finally:
            with self.conns_lock:
                self.conns.discard(conn)

    def receive(self, conn: socket.socket) -> dict | None:
        message = read_frame(conn, self.token)
        if message is None:
            return None
        if message.get("kind") not in KINDS:
            raise BadFrame(f"unknown kind {message.get('kind')!r}: expected one of {', '.join(KINDS)}")
        return message

    def answer(self, message: dict) -> bytes:
        """The answer frame, echoing the request's seq; a failed request answers {"error": why}."""
        seq = message.get("seq")
        try:
            return frame(self.token, {**self.handle(message), "seq": seq})
        except Exception as e:  # noqa: BLE001 - the client hears why; the server goes on serving
            return frame(self.token, {"error": f"{message['kind']} failed: {type(e).__name__}: {e}", "seq": seq})

    def handle(self, message: dict) -> dict:
        kind, robot = message["kind"], message.get("robot", 0)
        if kind == "load":
            if not self.accept_weights:
                raise PermissionError("this server refuses weights (accept_weights=False)")
            return {"version": self.load(message["weights"])}
        if not isinstance(robot, int) or isinstance(robot, bool) or robot < 0:
            raise ValueError(f"robot must be an id >= 0, got {robot!r}")
        with self.lock:
            policy = self.policy(robot)
            if kind == "hello":
                return {"version": policy.version, **{k: getattr(policy, k) for k in ("obs_dim", "act_dim")
                                                      if hasattr(policy, k)}}
            if kind == "reset" or message.get("reset"):
                policy.reset()
                self.answered.pop(robot, None)
            if kind == "reset":
                return {}
            t, obs = message.get("t"), np.asarray(message["obs"])
            last = self.answered.get(robot)
            if t is not None and last is not None and last[0] == t and np.array_equal(last[1], obs):
                return last[2]
            image = message.get("image")
            # a language-conditioned policy takes act(obs, image, instruction=...); others are never passed one
            extra: dict[str, Any] = {"instruction": message["instruction"]} if message.get("instruction") else {}
            out = policy.act(obs, None if image is None else np.asarray(image), **extra)
            answer = {"action": np.asarray(out.action), "spread": out.spread, "version": out.version,
                      "samples": None if out.samples is None else np.asarray(out.samples), "safety": out.safety,
                      "p_safe": out.p_safe, "risk": out.risk, "train_gap": out.train_gap}
            if t is not None:
                self.answered[robot] = (t, obs, answer)
        return answer


class RemotePolicy:
    """The Policy protocol on the robot's side of a PolicyServer. At most one request is in flight: a call first
    takes (and drops) the answer to one that timed out, so requests never queue up on a slow server; every answer
    carries its request's seq, so a late answer is never taken for the current one. After a broken connection the
    next call reconnects. `timeout_s` bounds load and hello, which are not on the control loop."""

    def __init__(self, address: str, token: bytes, deadline_ms: float, robot: int = 0, instruction: str = "",
                 timeout_s: float = 10.0, act_dim: int | None = None):
        host, _, port = address.rpartition(":")
        self.address, self.host, self.port = address, host.strip("[]"), int(port)
        self.token, self.deadline_ms, self.robot = checked_token(token), deadline_ms, robot
        self.instruction, self.timeout_s, self.act_dim = instruction, timeout_s, act_dim
        self.answered = 0  # answers to act this episode: a retry after a timeout repeats it (see PolicyServer)
        self.version = 0  # the version of the last answer
        self.sock: socket.socket | None = None
        self.inbox = bytearray()  # bytes received that are not a whole frame yet
        self.seq = 0
        self.due: int | None = None  # the request whose answer has not come yet
        self.reset_due = False  # a reset the server has not confirmed: the next act asks for it first
        self.lock = threading.Lock()

    def act(self, obs: np.ndarray, image: np.ndarray | None = None) -> PolicyOutput:
        """The server's answer within deadline_ms, else PolicyTimeout (the robot holds this step)."""
        request: dict[str, Any] = {"kind": "act", "robot": self.robot, "obs": np.asarray(obs), "t": self.answered}
        if image is not None:
            request["image"] = np.asarray(image)
        if self.instruction:
            request["instruction"] = self.instruction
        if self.reset_due:
            request["reset"] = True
        a = self.call(request, self.deadline_ms / 1000)
        self.reset_due = False
        self.answered += 1
        return self.checked(a)

    def checked(self, a: dict) -> PolicyOutput:
        """The answer as a PolicyOutput; RemotePolicyError when it is not one a robot may move on (a missing field,
        an action of the wrong size, not finite)."""
        try:
            action = np.asarray(a["action"], np.float64)
            out = PolicyOutput(action, float(a["spread"]), int(a["version"]), safety=float(a["safety"]),
                               p_safe=float(a["p_safe"]), train_gap=float(a["train_gap"]), risk=float(a["risk"]),
                               samples=None if a["samples"] is None else np.asarray(a["samples"]))
        except (KeyError, TypeError, ValueError) as e:
            raise RemotePolicyError(f"policy server {self.address}: not an answer to act ({type(e).__name__}: {e})") \
                from e
        if action.shape != (self.act_dim or action.size,) or not np.isfinite(action).all():
            raise RemotePolicyError(f"policy server {self.address}: action {action.tolist()} is not "
                                    f"{self.act_dim or 'some'} finite numbers")
        return out

    def reset(self) -> None:
        """A new episode for this robot's policy on the server. Best effort within the deadline; if unconfirmed,
        the next act asks the server to reset first, so an episode never starts on the last one's queued actions."""
        self.reset_due, self.answered = True, 0
        try:
            self.call({"kind": "reset", "robot": self.robot}, self.deadline_ms / 1000)
        except (PolicyTimeout, RemotePolicyError):
            return
        self.reset_due = False

    def load(self, weights: dict) -> None:
        """Pushes weights to the server (RemotePolicyError when it refuses them)."""
        self.call({"kind": "load", "weights": weights}, self.timeout_s)

    def hello(self) -> dict:
        """The server's version (and obs_dim, act_dim when its policy has them)."""
        return self.call({"kind": "hello", "robot": self.robot}, self.timeout_s)

    def close(self) -> None:
        self.drop()

    def call(self, request: dict, timeout_s: float) -> dict:
        end = time.monotonic() + timeout_s
        if not self.lock.acquire(timeout=timeout_s):
            raise self.timeout(timeout_s, "another call on this policy held it")
        try:
            if self.sock is None:
                self.sock = socket.create_connection((self.host, self.port), timeout=max(end - time.monotonic(), 1e-3))
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.due is not None:
                self.await_answer(self.due, end)  # dropped: its caller gave up on it
            self.seq += 1
            self.send(frame(self.token, {**request, "seq": self.seq}), end)
            self.due = self.seq
            answer = self.await_answer(self.seq, end)
        except TimeoutError:
            raise self.timeout(timeout_s, "no answer yet") from None
        except OSError as e:  # refused, reset, closed: the next call reconnects
            self.drop()
            raise PolicyTimeout(f"policy server {self.address}: {e.strerror or e} ({type(e).__name__})") from None
        finally:
            self.lock.release()
        if "version" in answer:
            self.version = int(answer["version"])
        return answer

    def timeout(self, timeout_s: float, why: str) -> PolicyTimeout:
        return PolicyTimeout(f"policy server {self.address}: no answer within {timeout_s * 1000:g} ms ({why})")

    def send(self, data: bytes, end: float) -> None:
        assert self.sock is not None
        try:
            self.sock.settimeout(max(end - time.monotonic(), 1e-3))
            self.sock.sendall(data)
        except OSError:
            self.drop()  # a frame cut short: the stream is lost
            raise

    def await_answer(self, seq: int, end: float) -> dict:
        """The answer to request `seq`; answers to earlier requests are dropped."""
        while True:
            answer = self.receive(end)
            if answer.get("seq") == seq:
                break
            if answer.get("seq") is None:  # the server refused a frame and hangs up
                self.drop()
                raise RemotePolicyError(f"policy server {self.address}: {answer.get('error')}")
        self.due = None
        del answer["seq"]
        if "error" in answer:
            raise RemotePolicyError(f"policy server {self.address}: {answer['error']}")
        return answer

    def receive(self, end: float) -> dict:
        """The next authentic frame's message; TimeoutError at `end` (a partial frame waits for the next call)."""
        assert self.sock is not None
        while True:
            if len(self.inbox) >= HEADER:
                size = int.from_bytes(self.inbox[:4], "big")
                if size > MAX_BYTES:
                    self.refuse(too_large(size))
                if len(self.inbox) >= HEADER + size:
                    mac, body = bytes(self.inbox[4:HEADER]), bytes(self.inbox[HEADER:HEADER + size])
                    del self.inbox[:HEADER + size]
                    try:
                        return open_frame(self.token, mac, body)
                    except BadFrame as e:
                        self.refuse(e)
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.inbox += chunk

    def refuse(self, err: BadFrame) -> None:
        self.drop()
        hint = " (do the robot and the server share the token?)" if "unauthenticated" in str(err) else ""
        raise RemotePolicyError(f"answer from policy server {self.address}: {err}{hint}") from err

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.due = None, None
        self.inbox.clear()
