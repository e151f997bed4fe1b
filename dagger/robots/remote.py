"""A robot behind a robot agent (dagger.robots.agent), as the RobotWorker drives it: the controller's end of the
bridge. The robot keeps time: get_observation waits for the robot's next period, never longer than the watchdog
deadline (RobotLate: the worker holds). A dropped link is reopened on the next call and the run goes on.

    robot = RemoteRobot("10.0.0.7:7700", read_token("robot.token")); robot.connect()
    obs = robot.reset(seed=0); robot.send_action(a); obs = robot.get_observation()

At connect, the agent's clock offset is measured the way NTP does (the ping with the shortest round trip), so each
side can tell a stale message from a fresh one across two hosts' clocks.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import socket
import ssl
import threading
import time
from typing import Any

import numpy as np

from dagger.robots.base import Observation, RobotLate
from dagger.robots.bridge import TO_CONTROLLER, blob, integer, kind, number, read_obs, read_spec
from dagger.wire import BadFrame, Session, answer_challenge, checked_token, dial

PINGS = 8  # round trips measured at connect; the shortest gives the clock offset
PING_EVERY_S = 0.5  # a ping keeps the round-trip time, and the agent's health, current
RETRY_S = 0.5  # a dropped link is tried again at most this often
RESET_S = 5.0  # the longest a reset may take (a simulator, or an operator putting the scene back)

log = logging.getLogger(__name__)


def observation_bytes(spec: dict) -> int:
    """The most an agent's message can hold once its robot is known: an observation (state, action, expert, image)
    or a pong with the agent's health, with room for fields."""
    image = math.prod(spec["image_shape"]) if spec["image_shape"] else 0
    return (16 << 10) + 8 * spec["obs_dim"] + 16 * spec["act_dim"] + image


def _percentiles(values: collections.deque[float], name: str) -> dict[str, float]:
    if not values:
        return {}
    p50, p99 = np.percentile(np.asarray(values) * 1000, [50, 99])
    return {f"{name}_ms_p50": round(float(p50), 3), f"{name}_ms_p99": round(float(p99), 3)}


class RemoteRobot:
    paced = True
    horizon = 0  # the bridge's welcome does not carry the task's time limit

    def __init__(self, address: str, token: bytes, max_age_s: float = 0.5, watchdog_periods: float = 3.0,
                 connect_timeout_s: float = 5.0, tls: ssl.SSLContext | None = None):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"robot agent address {address!r}: expected HOST:PORT")
        self.address, self.host, self.port = address, host, int(port)
        self.token, self.max_age_s, self.watchdog_periods = checked_token(token), max_age_s, watchdog_periods
        self.connect_timeout_s, self.tls = connect_timeout_s, tls
        self.spec: dict[str, Any] = {}
        self.cond = threading.Condition()
        self.sock: socket.socket | None = None
        self.session: Session | None = None
        self.newest: tuple[Observation, dict] | None = None  # the agent's newest observation and its bookkeeping
        self.pending = 0  # the sequence number of the newest command sent
        self.episode = -1  # the episode this controller reset the robot to last
        self.agent_episode = -1  # the agent's episode when the link last opened
        self.episode_lost = False  # the agent restarted mid-episode: nothing but a reset is sent
        self.seen = -1  # the state_tick of the newest state the worker was given
        self.kind = ""  # the newest command's kind
        self.lost = ""  # why the link is down
        self.next_try = 0.0
        self.last_ping = 0.0
        self.sent_at: dict[int, float] = {}  # command -> when it was sent (perf_counter), until its observation
        self.rtts: collections.deque[float] = collections.deque(maxlen=10_000)
        self.latencies: collections.deque[float] = collections.deque(maxlen=10_000)  # command -> its observation
        self.counts: collections.Counter[str] = collections.Counter()
        self.agent_health: dict[str, Any] = {}
        self.offset = 0.0  # the agent's clock minus ours

    # ---- the description, from the agent's welcome ----
    def __getattr__(self, name: str) -> Any:
        spec = self.__dict__.get("spec") or {}
        if name in spec:
            return spec[name]
        raise AttributeError(f"{type(self).__name__} has no {name!r}" + ("" if spec else " (not connected yet)"))

    @property
    def period(self) -> float:
        return float(self.spec["period"])

    # ---- the link ----
    def connect(self) -> None:
        """Opens the link (handshake, clock offset); ConnectionError naming the agent when it cannot."""
        try:
            self._open()
        except (OSError, BadFrame) as e:
            raise ConnectionError(f"robot agent {self.address}: {e}") from e

    def _open(self, timeout_s: float | None = None) -> None:
        sock = dial(self.host, self.port, timeout_s or self.connect_timeout_s, self.tls)
        try:
            session = Session(self.token, self.max_age_s)
            challenge = self._expect(session, sock, "challenge")
            client_nonce = answer_challenge(sock, session, challenge)  # this connection's own key from here on
            welcome = self._expect(session, sock, "welcome")
            if blob(welcome, "client_nonce") != client_nonce:
                raise BadFrame("welcome: not an answer to this connection's hello (a replayed welcome?)", "replayed")
            spec, agent_episode = read_spec(welcome), integer(welcome, "episode", -1)
            current = welcome.get("obs")
            if current is not None and not isinstance(current, dict):
                raise BadFrame("field 'obs': expected an observation or nothing")
            if self.spec and spec != self.spec:
                raise BadFrame(f"the agent now serves a different robot ({spec['name']}, was {self.spec['name']})")
            self.spec = spec
            session.allow(observation_bytes(spec))
            samples = []
            for _ in range(PINGS):
                t0 = time.time()
                sock.sendall(session.seal({"kind": "ping", "t0": t0}))
                pong = self._expect(session, sock, "pong")
                t1 = time.time()
                samples.append((t1 - t0, pong["ts"] - (t0 + t1) / 2))
            rtt, self.offset = min(samples)
            self.rtts.append(rtt)
            session.offset = self.offset
            sock.sendall(session.seal({"kind": "offset", "offset": self.offset}))
        except BaseException:
            sock.close()
            raise
        sock.settimeout(max(10 * PING_EVERY_S, self.connect_timeout_s))  # the agent speaks every ping at least
        with self.cond:
            self.sock, self.session, self.lost = sock, session, ""
            self.agent_episode = agent_episode
            self.pending = 0  # commands are numbered per connection
            if self.episode >= 0 and agent_episode != self.episode and self.newest is not None:
                # the agent restarted and lost the episode: it is over; no command is sent until the next reset
                self.episode_lost = True
                self.newest = (dataclasses.replace(self.newest[0], done=True, fresh=False),
                               {**self.newest[1], "cmd": 0})
            elif current is not None:
                self.newest = read_obs(current, self.spec)
            self.cond.notify_all()
        threading.Thread(target=self._read, args=(sock, session), daemon=True,
                         name=f"robot link {self.address}").start()

    def _expect(self, session: Session, sock: socket.socket, what: str) -> dict:
        """The next message of kind `what` during the handshake (observations that come meanwhile are skipped)."""
        while True:
            message = session.read(sock)
            if message is None:
                raise ConnectionError("the agent hung up during the handshake")
            if kind(message, TO_CONTROLLER) == what:
                return message

    def _read(self, sock: socket.socket, session: Session) -> None:
        """The reader thread: observations and pongs in, until the link fails."""
        try:
            while (message := self._next(sock, session)) is not None:
                if kind(message, TO_CONTROLLER) == "obs":
                    self._observed(read_obs(message, self.spec))
                elif message["kind"] == "pong":
                    self.rtts.append(time.time() - number(message, "t0"))  # BadFrame, not a dead reader
                    if isinstance(message.get("health"), dict):
                        self.agent_health = message["health"]
                else:
                    raise BadFrame(f"field 'kind': {message['kind']!r} only once, during the handshake")
            self._drop(sock, "the agent hung up")
        except BadFrame as e:
            self.counts[f"refused_{e.why}"] += 1
            log.warning("robot %s: refused a frame from the agent: %s; hung up", self.address, e)
            self._drop(sock, f"refused a frame: {e}")
        except OSError as e:
            self._drop(sock, f"{type(e).__name__}: {e}")

    def _next(self, sock: socket.socket, session: Session) -> dict | None:
        """The agent's next message; a stale one (this process stalled, or the network) is counted and dropped."""
        while True:
            try:
                return session.read(sock)
            except BadFrame as e:
                if e.why != "stale":
                    raise
                self.counts["refused_stale"] += 1

    def _observed(self, newest: tuple[Observation, dict]) -> None:
        sent = self.sent_at.pop(newest[1]["cmd"], None)
        if sent is not None:
            self.latencies.append(time.perf_counter() - sent)
        with self.cond:
            self.newest = newest
            self.cond.notify_all()

    def _drop(self, sock: socket.socket, why: str) -> None:
        with self.cond:
            if self.sock is sock:
                self.sock, self.lost = None, why
            self.cond.notify_all()
        sock.close()

    def _send(self, message: dict) -> int:
        """Sends a command; its sequence number. RobotLate while the link is down (it is reopened on a later call)."""
        if self.sock is None:
            if time.monotonic() < self.next_try:
                time.sleep(self.period)  # the robot's period passes: the worker's loop keeps its pace
                raise RobotLate(f"robot {self.address}: link down ({self.lost})")
            self.next_try = time.monotonic() + RETRY_S
            try:
                self._open(timeout_s=RETRY_S)
            except (OSError, BadFrame) as e:
                self.lost = f"reconnect failed: {e}"
                raise RobotLate(f"robot {self.address}: link down ({self.lost})") from e
            self.counts["reconnects"] += 1
        if self.episode_lost and message["kind"] != "reset":
            raise RobotLate(f"robot {self.address}: the agent restarted; its episode is over")
        sock, session = self.sock, self.session
        assert sock is not None and session is not None
        now = time.time()
        try:
            if now - self.last_ping >= PING_EVERY_S:
                self.last_ping = now
                sock.sendall(session.seal({"kind": "ping", "t0": now}))
            data = session.seal(message)
            sock.sendall(data)
        except OSError as e:
            self._drop(sock, f"{type(e).__name__}: {e}")
            raise RobotLate(f"robot {self.address}: link down ({self.lost})") from e
        return session.sent

    def disconnect(self) -> None:
        sock, session = self.sock, self.session
        if sock is not None and session is not None:
            try:
                sock.sendall(session.seal({"kind": "bye"}))
            except OSError:
                pass  # gone already
            self._drop(sock, "disconnected")

    # ---- the robot ----
    def reset(self, seed: int) -> Observation:
        episode = max(self.episode, self.agent_episode) + 1
        self.pending, self.kind = self._send({"kind": "reset", "seed": int(seed), "episode": episode}), "reset"
        self.episode, self.episode_lost = episode, False
        obs, meta = self._wait(lambda meta: meta["episode"] == episode, max(RESET_S, 20 * self.period))
        self.seen = meta["state_tick"]
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        executed = self.clip(action)
        self.pending, self.kind = self._send({"kind": "act", "action": executed}), "act"
        if len(self.sent_at) > 1000:  # commands whose observation never came
            self.sent_at.clear()
        self.sent_at[self.pending] = time.perf_counter()
        return executed

    def hold(self) -> None:
        """A period without a command; never raises: with the link down the agent's watchdog holds the robot."""
        try:
            self.pending, self.kind = self._send({"kind": "hold"}), "hold"
        except RobotLate:
            pass

    def get_observation(self) -> Observation:
        """The observation after the newest command, within the watchdog deadline; else RobotLate. After an act it
        is `fresh` when the robot executed that act from the state the worker was last given."""
        pending = self.pending
        obs, meta = self._wait(lambda meta: meta["cmd"] >= pending, self.watchdog_periods * self.period + 0.002)
        fresh = self.kind != "act" or meta["origin"] == self.seen
        self.seen = meta["state_tick"]
        return obs if fresh else dataclasses.replace(obs, fresh=False)

    def _wait(self, ready: Any, timeout_s: float) -> tuple[Observation, dict]:
        end = time.monotonic() + timeout_s
        with self.cond:
            while self.newest is None or not ready(self.newest[1]) or self.newest[1]["episode"] != self.episode:
                left = end - time.monotonic()
                if left <= 0 or self.sock is None:
                    if self.episode >= 0:
                        self.counts["late"] += 1
                    raise RobotLate(f"robot {self.address}: no observation within {timeout_s * 1000:.0f} ms"
                                    + (f" (link down: {self.lost})" if self.sock is None else ""))
                self.cond.wait(left)
            return self.newest

    def health(self) -> dict[str, Any]:
        return {"connected": self.sock is not None, "offset_ms": round(self.offset * 1000, 3), **dict(self.counts),
                **_percentiles(self.rtts, "rtt"), **_percentiles(self.latencies, "command"),
                "agent": self.agent_health}

    def expert_action(self) -> np.ndarray:
        """The agent's scripted expert in the newest state (a simulator's); none at an episode's end: stand still."""
        if not self.spec.get("expert"):
            raise RuntimeError(f"robot {self.address}: the agent has no scripted expert (a real robot has none)")
        expert = None if self.newest is None else self.newest[0].expert
        return np.zeros(self.act_dim) if expert is None else expert

    def clip(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)

    def render(self) -> np.ndarray:
        raise RuntimeError(f"robot {self.address}: a robot agent sends no camera frames for people")
