"""remote: a policy served by another process over TCP, the way a large pretrained policy (a VLA such as π0 or
OpenVLA on a GPU machine) plugs in. The robot never waits past its deadline: a late answer raises PolicyTimeout and
the robot holds that step.

    server = PolicyServer(lambda: EnsemblePolicy(10, 2), token).start()      # on the GPU machine
    policy = RemotePolicy(server.address, token, deadline_ms=100, robot=0)   # on the robot
    out = policy.act(obs, image)                                             # or PolicyTimeout: hold this step
    outs = policy.act_batch(obs, images, robots=[0, 3, 5])   # one request for three robots (or streams below)
    streams = [policy.stream(robot) for robot in range(4)]; streams[2].reset()   # a reset reaches the server

Wire (dagger.wire, the robot bridge's rules): a challenge, a hello signing it, a welcome; then msgpack frames signed
with the connection's own key and numbered each way, each a map with a "kind": act | act_batch | reset | load |
hello, each answered in order by a map naming the request's number ("re").
act_batch carries K robots' observations in one frame ({robots: [K ids], obs: [K, obs_dim], images: [K, H, W, 3] or
absent, t: [K], reset: [K bools]}) and is answered {outputs: [K answers to act]}; the server acts for each robot as
an act of its own would.
Reference (../shared/REFERENCES.md, "Large pretrained (VLA) policies"): LeRobot's async inference serves policies
over gRPC but unpickles its input and has no watchdog; DROID serves them over websocket + msgpack. The HMAC
authenticates and the numbering stops replays; neither encrypts: give the server a certificate (tls=wire.server_tls,
`dagger serve --tls-cert`) and the robots its CA (policy.tls_ca), or keep the link on a tunnel / VPN.
"""

from __future__ import annotations

import collections
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from dagger.core import Policy, PolicyOutput, PolicyTimeout
from dagger.listener import Guest, Listener
from dagger.log_once import LogOnce
from dagger.wire import (
    HEADER,
    BadFrame,
    Session,
    answer_challenge,
    checked_token,
    dial,
    greet,
    open_frame,
    too_large,
)

KINDS = ("act", "act_batch", "reset", "load", "hello")
MAX_BATCH = 256  # robots in one act_batch request
IDLE_S = 60.0  # the server hangs up on a connection silent this long (a robot reconnects on its next call)
SLOTS = 64  # connections at once (a robot group, or a robot, holds one)
UNPROVEN = 16  # of which not yet authenticated; a newer one pushes the oldest out
MAX_ROBOTS = 1024  # robots whose policy (episode state) the server keeps; the least recently used goes first
ROBOT_TTL_S = 3600.0  # a robot not heard from this long is forgotten (it starts afresh if it comes back)

log = logging.getLogger(__name__)


def request_bytes(obs_dim: int = 1024, image_shape: Sequence[int] | None = (480, 640, 3), weights: int = 0,
                  batch: int = MAX_BATCH) -> int:
    """The most a request can hold, inflated: an act_batch of `batch` robots' observations (obs_dim numbers of at
    most 8 bytes) and images, or a load of `weights` bytes, and 64 KiB of fields around them. A frame is never
    inflated past it."""
    image = math.prod(image_shape) if image_shape else 0
    return (64 << 10) + max(batch * (8 * obs_dim + image + 256), 2 * weights)


class RemotePolicyError(RuntimeError):
    """The server refused a request, or answered with something this side cannot trust."""


class PolicyServer:
    """Hosts a policy for many robots, one thread per connection (SLOTS at most, dagger.listener). Each robot id has
    its own policy (its episode state: queued chunks, past observations), made by `make` on the robot's first
    request and given the newest weights loaded so far; at most `max_robots` are kept, and one not heard from for
    `robot_ttl_s` is forgotten. A lock runs one policy call at a time (the robots share one model, one GPU).

    A connection is the bridge's (dagger.wire): a challenge, a hello signing it, then every frame signed with the
    connection's own key and numbered; a request replayed, out of order or unnumbered is refused and its connection
    closed. Requests inflate to `max_request` bytes at most (request_bytes: set it from the task's shapes)."""

    def __init__(self, make: Callable[[], Policy], token: bytes, host: str = "127.0.0.1", port: int = 0,
                 accept_weights: bool = True, tls: ssl.SSLContext | None = None, max_request: int | None = None,
                 max_robots: int = MAX_ROBOTS, robot_ttl_s: float = ROBOT_TTL_S, slots: int = SLOTS,
                 unproven: int = UNPROVEN, clock: Callable[[], float] = time.monotonic):
        self.make, self.token, self.accept_weights = make, checked_token(token), accept_weights
        self.max_request = max_request or request_bytes()
        self.max_robots, self.robot_ttl_s, self.clock = max_robots, robot_ttl_s, clock
        self.policies: collections.OrderedDict[int, Policy] = collections.OrderedDict()  # least recently used first
        self.heard: dict[int, float] = {}  # robot -> when it was last asked for (clock)
        # robot -> (its answers this episode when asked, the observation, the answer): a request repeated after a
        # timeout (the robot held: same count, same observation) gets the same answer, so a policy with episode
        # state (queued chunks, past observations) advances once per robot step, not once per try
        self.answered: dict[int, tuple[int, np.ndarray, dict]] = {}
        self.weights: dict | None = None  # the newest weights loaded: a robot's policy made later takes them
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.refusals = LogOnce(log)
        self.door = Listener(host, port, self.serve, "policy server", slots, unproven, tls)

    @property
    def address(self) -> str:
        return self.door.address

    def start(self) -> PolicyServer:
        self.door.start()
        return self

    def close(self) -> None:
        """Stops accepting and hangs up on every client (they see the server down)."""
        self.door.close()
        self.refusals.flush()

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        """What the server holds and what it refused: connections, robots kept, counts by cause."""
        waiting, inside = self.door.held()
        return {"connections": waiting + inside, "unauthenticated": waiting, "robots": len(self.policies),
                **dict(self.door.counts), **dict(self.counts)}

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
        """Robot `robot`'s policy, made on first use (call with the lock held); the least recently used robots past
        max_robots, and those silent for robot_ttl_s, are forgotten first."""
        now = self.clock()
        if robot in self.policies:
            self.policies.move_to_end(robot)
        else:
            while self.policies:
                oldest = next(iter(self.policies))
                if len(self.policies) < self.max_robots and now - self.heard[oldest] < self.robot_ttl_s:
                    break
                self.forget(oldest)
            policy = self.make()
            if self.weights is not None:
                policy.load(self.weights)
            self.policies[robot] = policy
        self.heard[robot] = now
        return self.policies[robot]

    def forget(self, robot: int) -> None:
        self.policies.pop(robot, None)
        self.heard.pop(robot, None)
        self.answered.pop(robot, None)
        self.counts["robots_forgotten"] += 1

    def serve(self, guest: Guest) -> None:
        """One client's connection: the handshake, then an answer to each request; a refused frame gets an error
        naming why, then a hang-up."""
        conn, session = guest.sock, Session(self.token)
        try:
            try:
                client_nonce = greet(conn, session)
                if not guest.proven():
                    return  # evicted while it answered
                session.allow(self.max_request)
                conn.sendall(session.seal({"kind": "welcome", "client_nonce": client_nonce}))
                conn.settimeout(IDLE_S)  # between requests; each one must come whole within wire.FRAME_S
                while (message := session.read(conn)) is not None:
                    if message.get("kind") not in KINDS:
                        raise BadFrame(f"unknown kind {str(message.get('kind'))[:40]!r}: expected one of "
                                       f"{', '.join(KINDS)}", "unknown_kind")
                    conn.sendall(session.seal(self.answer(message)))
            except BadFrame as e:
                self.refused(e, guest.peer)
                conn.sendall(session.seal({"error": str(e), "refused": e.why}))
        except TimeoutError:
            self.counts["refused_slow"] += 1  # silent past IDLE_S, or a frame not whole within its deadline
        except OSError:
            return  # the client went away

    def refused(self, e: BadFrame, peer: Any) -> None:
        self.counts[f"refused_{e.why}"] += 1
        self.refusals.warning("policy server %s: refused a frame from %s: %s; hung up", self.address, peer, e,
                              key=e.why)

    def answer(self, message: dict) -> dict:
        """The answer, naming the request's number ("re"); a failed request answers {"error": why}."""
        try:
            return {**self.handle(message), "re": message["seq"]}
        except Exception as e:  # noqa: BLE001 - the client hears why; the server goes on serving
            return {"error": f"{message['kind']} failed: {type(e).__name__}: {e}"[:2000], "re": message["seq"]}

    def handle(self, message: dict) -> dict:
        kind = message["kind"]
        if kind == "load":
            if not self.accept_weights:
                raise PermissionError("this server refuses weights (accept_weights=False)")
            return {"version": self.load(message["weights"])}
        if kind == "act_batch":
            return self.act_batch(message)
        robot = checked_robot(message.get("robot", 0))
        with self.lock:
            policy = self.policy(robot)
            if kind == "hello":
                return {"version": policy.version, **{k: getattr(policy, k) for k in ("obs_dim", "act_dim")
                                                      if hasattr(policy, k)}}
            if kind == "reset":
                self.reset(robot)
                return {}
            image = message.get("image")
            return self.act(robot, np.asarray(message["obs"]), None if image is None else np.asarray(image),
                            message.get("t"), bool(message.get("reset")), message.get("instruction") or "")

    def act_batch(self, message: dict) -> dict:
        """One act per robot of an act_batch request, every field checked before any robot's policy moves."""
        robots = message.get("robots")
        if not isinstance(robots, list) or not 1 <= len(robots) <= MAX_BATCH:
            got = f"{len(robots)} ids" if isinstance(robots, list) else type(robots).__name__
            raise ValueError(f"robots must be a list of 1 to {MAX_BATCH} robot ids, got {got}")
        robots = [checked_robot(r) for r in robots]
        k = len(robots)
        if len(set(robots)) != k:
            raise ValueError(f"robots {robots} name a robot twice")
        obs = batch_field(message, "obs", k, "numbers [K, obs_dim]",
                          lambda a: a.ndim == 2 and a.shape[1] > 0 and a.dtype.kind in "biuf")
        images = None if message.get("images") is None else batch_field(
            message, "images", k, "uint8 [K, H, W, 3]",
            lambda a: a.ndim == 4 and a.shape[3] == 3 and a.dtype == np.uint8)
        t = message.get("t")
        if t is not None and not (isinstance(t, list) and len(t) == k
                                  and all(isinstance(n, int) and not isinstance(n, bool) for n in t)):
            raise ValueError(f"t must be a list of {k} step counts, one per robot")
        resets = message.get("reset")
        if resets is not None and not (isinstance(resets, list) and len(resets) == k
                                       and all(isinstance(r, bool) for r in resets)):
            raise ValueError(f"reset must be a list of {k} booleans, one per robot")
        instruction = message.get("instruction") or ""
        if not isinstance(instruction, str):
            raise ValueError(f"instruction must be a string, got {type(instruction).__name__}")
        with self.lock:
            outputs = [self.act(robot, obs[i], None if images is None else images[i], None if t is None else t[i],
                                bool(resets and resets[i]), instruction) for i, robot in enumerate(robots)]
        return {"outputs": outputs, "version": outputs[-1]["version"]}

    def reset(self, robot: int) -> None:
        """A new episode for robot `robot`'s policy (call with the lock held)."""
        self.policy(robot).reset()
        self.answered.pop(robot, None)

    def act(self, robot: int, obs: np.ndarray, image: np.ndarray | None, t: int | None, reset: bool,
            instruction: str) -> dict:
        """Robot `robot`'s answer to one act (call with the lock held): a retry of its last step (same count `t`,
        same obs) gets that step's answer again; `reset` starts a new episode first."""
        policy = self.policy(robot)
        if reset:
            self.reset(robot)
        last = self.answered.get(robot)
        if t is not None and last is not None and last[0] == t and np.array_equal(last[1], obs):
            return last[2]
        # a language-conditioned policy takes act(obs, image, instruction=...); others are never passed one
        extra: dict[str, Any] = {"instruction": instruction} if instruction else {}
        out = policy.act(obs, image, **extra)
        answer = {"action": np.asarray(out.action), "spread": out.spread, "version": out.version,
                  "samples": None if out.samples is None else np.asarray(out.samples), "safety": out.safety,
                  "p_safe": out.p_safe, "risk": out.risk, "train_gap": out.train_gap}
        if t is not None:
            self.answered[robot] = (t, obs, answer)
        return answer


def checked_robot(robot: Any) -> int:
    if not isinstance(robot, int) or isinstance(robot, bool) or robot < 0:
        raise ValueError(f"robot must be an id >= 0, got {robot!r}"[:200])
    return robot


def batch_field(message: dict, name: str, k: int, what: str, fits: Callable[[np.ndarray], bool]) -> np.ndarray:
    """Field `name` of an act_batch request: an array with K rows that `fits`; else a ValueError saying what it is."""
    value = message.get(name)
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be {what}, got {type(value).__name__}")
    if len(value.shape) == 0 or value.shape[0] != k or not fits(value):
        raise ValueError(f"{name} must be {what} for K = {k} robots, got {value.dtype} {list(value.shape)}")
    return value


@dataclass(eq=False)
class RemoteStream:
    """One robot's episode on a policy server, as a group's RemotePolicy sees it: `reset` reaches the server."""

    robot: int
    reset_robot: Callable[[int], None]  # the client's reset(robot)

    def reset(self) -> None:
        self.reset_robot(self.robot)


class RemotePolicy:
    """The Policy protocol on the robot's side of a PolicyServer. At most one request is in flight: a call first
    takes (and drops) the answer to one that timed out, so requests never queue up on a slow server; every answer
    carries its request's seq, so a late answer is never taken for the current one. After a broken connection the
    next call reconnects. `timeout_s` bounds load and hello, which are not on the control loop."""

    def __init__(self, address: str, token: bytes, deadline_ms: float, robot: int = 0, instruction: str = "",
                 timeout_s: float = 10.0, act_dim: int | None = None, tls: ssl.SSLContext | None = None):
        host, _, port = address.rpartition(":")
        self.address, self.host, self.port = address, host.strip("[]"), int(port)
        self.token, self.deadline_ms, self.robot = checked_token(token), deadline_ms, robot
        self.instruction, self.timeout_s, self.act_dim, self.tls = instruction, timeout_s, act_dim, tls
        # robot -> answers to act this episode: a retry after a timeout repeats the count (see PolicyServer)
        self.answered: dict[int, int] = {}
        self.version = 0  # the version of the last answer
        self.sock: socket.socket | None = None
        self.session: Session | None = None  # this connection's key and numbering, once the handshake is done
        self.inbox = bytearray()  # bytes received that are not a whole frame yet
        self.due: int | None = None  # the request whose answer has not come yet
        self.reset_due: set[int] = set()  # robots whose reset the server has not confirmed: their next act asks first
        self.lock = threading.Lock()

    def act(self, obs: np.ndarray, image: np.ndarray | None = None) -> PolicyOutput:
        """The server's answer within deadline_ms, else PolicyTimeout (the robot holds this step)."""
        robot = self.robot
        request: dict[str, Any] = {"kind": "act", "robot": robot, "obs": np.asarray(obs),
                                   "t": self.answered.get(robot, 0)}
        if image is not None:
            request["image"] = np.asarray(image)
        if self.instruction:
            request["instruction"] = self.instruction
        if robot in self.reset_due:
            request["reset"] = True
        a = self.call(request, self.deadline_ms / 1000)
        self.reset_due.discard(robot)
        self.answered[robot] = self.answered.get(robot, 0) + 1
        return self.checked(a)

    def stream(self, robot: int) -> RemoteStream:
        """Robot `robot`'s episode for act_batch; its reset() resets the robot's policy on the server."""
        return RemoteStream(robot, self.reset)

    def act_batch(self, obs: np.ndarray, images: np.ndarray | None,
                  robots: Sequence[int] | Sequence[RemoteStream]) -> list[PolicyOutput]:
        """act() for K robots in ONE request: obs [K, obs_dim], images [K, H, W, 3] or None, robots the K robot ids
        (or their streams). Within deadline_ms, else PolicyTimeout for all K (they hold this step; a retry of the
        same step gets the same answers)."""
        ids = [r.robot if isinstance(r, RemoteStream) else int(r) for r in robots]
        obs = np.asarray(obs)
        if not 1 <= len(ids) <= MAX_BATCH or len(set(ids)) != len(ids):
            raise ValueError(f"act_batch: robots must be 1 to {MAX_BATCH} distinct ids, got {ids}")
        if len(obs) != len(ids) or (images is not None and len(images) != len(ids)):
            raise ValueError(f"act_batch: {len(ids)} robots, {len(obs)} observations"
                             + ("" if images is None else f", {len(images)} images"))
        request: dict[str, Any] = {"kind": "act_batch", "robots": ids, "obs": obs,
                                   "t": [self.answered.get(r, 0) for r in ids],
                                   "reset": [r in self.reset_due for r in ids]}
        if images is not None:
            request["images"] = np.asarray(images)
        if self.instruction:
            request["instruction"] = self.instruction
        a = self.call(request, self.deadline_ms / 1000)
        self.reset_due.difference_update(ids)
        for r in ids:
            self.answered[r] = self.answered.get(r, 0) + 1
        outputs = a.get("outputs")
        if not isinstance(outputs, list) or len(outputs) != len(ids) or not all(isinstance(o, dict) for o in outputs):
            raise RemotePolicyError(f"policy server {self.address}: not an answer to act_batch for {len(ids)} robots")
        return [self.checked(o) for o in outputs]

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

    def reset(self, robot: int | None = None) -> None:
        """A new episode for this robot's policy on the server (or robot `robot`'s). Best effort within the deadline;
        if unconfirmed, the robot's next act asks the server to reset first, so an episode never starts on the last
        one's queued actions."""
        robot = self.robot if robot is None else robot
        self.reset_due.add(robot)
        self.answered[robot] = 0
        try:
            self.call({"kind": "reset", "robot": robot}, self.deadline_ms / 1000)
        except (PolicyTimeout, RemotePolicyError):
            return
        self.reset_due.discard(robot)

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
                self.connect(end)
            if self.due is not None:
                self.await_answer(self.due, end)  # dropped: its caller gave up on it
            assert self.session is not None
            self.send(self.session.seal(request), end)
            self.due = self.session.sent
            answer = self.await_answer(self.session.sent, end)
        except TimeoutError:
            if self.session is None:  # a handshake cut short: the next call starts a new one
                self.drop()
            raise self.timeout(timeout_s, "no answer yet") from None
        except OSError as e:  # refused, reset, closed: the next call reconnects
            self.drop()
            raise PolicyTimeout(f"policy server {self.address}: {e.strerror or e} ({type(e).__name__})") from None
        finally:
            self.lock.release()
        if "version" in answer:
            self.version = int(answer["version"])
        return answer

    def connect(self, end: float) -> None:
        """A new connection: TCP (TLS when given), then the challenge answered and the welcome checked."""
        sock = dial(self.host, self.port, max(end - time.monotonic(), 1e-3), self.tls)
        self.sock, self.session = sock, None
        session = Session(self.token)
        challenge = self.receive(end, session)
        if challenge.get("kind") != "challenge":
            self.refuse(BadFrame(f"expected a challenge, got {str(challenge.get('kind'))[:40]!r}"))
        client_nonce = answer_challenge(sock, session, challenge)
        welcome = self.receive(end, session)
        if welcome.get("kind") != "welcome" or welcome.get("client_nonce") != client_nonce:
            self.refuse(BadFrame("not a welcome for this connection's hello (a replayed welcome?)", "replayed"))
        self.session = session

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
        assert self.session is not None
        while True:
            answer = self.receive(end, self.session)
            if "refused" in answer:  # the server refused a frame and hangs up
                self.drop()
                raise RemotePolicyError(f"policy server {self.address}: {answer.get('error')}")
            if answer.get("re") == seq:
                break
        self.due = None
        del answer["re"], answer["seq"], answer["ts"]
        if "error" in answer:
            raise RemotePolicyError(f"policy server {self.address}: {answer['error']}")
        return answer

    def receive(self, end: float, session: Session) -> dict:
        """The next authentic frame's message, in sequence; TimeoutError at `end` (a partial frame waits for the
        next call)."""
        assert self.sock is not None
        while True:
            if len(self.inbox) >= HEADER:
                size = int.from_bytes(self.inbox[:4], "big")
                if size > session.limit:
                    self.refuse(too_large(size, session.limit))
                if len(self.inbox) >= HEADER + size:
                    mac, body = bytes(self.inbox[4:HEADER]), bytes(self.inbox[HEADER:HEADER + size])
                    del self.inbox[:HEADER + size]
                    try:
                        return session.check(open_frame(session.token, mac, body, session.decoded))
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

    def refuse(self, err: BadFrame) -> NoReturn:
        self.drop()
        hint = " (do the robot and the server share the token?)" if "unauthenticated" in str(err) else ""
        raise RemotePolicyError(f"answer from policy server {self.address}: {err}{hint}") from err

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.session, self.due = None, None, None
        self.inbox.clear()
