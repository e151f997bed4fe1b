"""A robot agent: runs next to a robot (here a simulator standing in for one) and serves it to one controller (a
RobotWorker's RemoteRobot) over TCP, with the robot's own control loop and a watchdog.

    agent = RobotAgent(SimRobot(make_task("reach")), token, period=0.0125).start()    # 127.0.0.1, a free port
    robot = RemoteRobot(agent.address, token)                                         # the controller's side

Each control period the agent executes the newest command once more (an act is repeated while it is younger than the
watchdog deadline, as a real arm's streaming interface keeps its last setpoint) or holds, then sends the observation.
When no valid command came within `watchdog_periods` periods, or the controller hung up, the robot holds until a new
command comes. A frame that is unsigned, replayed, stale, not msgpack or malformed is refused, counted and logged,
and its connection closed (the robot holds); nothing a peer sends stops the agent.
"""

from __future__ import annotations

import collections
import logging
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dagger.robots.base import Robot
from dagger.robots.bridge import TO_AGENT, blob, integer, kind, number, obs_message, spec_of, vector
from dagger.wire import BadFrame, Session, checked_token

HANDSHAKE_S = 5.0  # a connection must say hello within this
IDLE_S = 30.0  # a controller silent this long is hung up on (the watchdog held the robot long before)
QUEUED = 256  # frames waiting for a controller that does not read: past this it is hung up on

log = logging.getLogger(__name__)


class _Link:
    """One authenticated controller: its session and a writer thread, so a slow reader never stalls the robot."""

    def __init__(self, conn: socket.socket, session: Session):
        self.conn, self.session = conn, session
        self.out: queue.Queue[bytes | None] = queue.Queue()
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._write, daemon=True, name="robot-agent writer").start()

    def send(self, message: dict) -> None:
        with self.lock:  # numbers are given in the order frames are queued
            if self.closed:
                return
            if self.out.qsize() > QUEUED:
                self.close()
                return
            self.out.put(self.session.seal(message))

    def _write(self) -> None:
        while (data := self.out.get()) is not None:
            try:
                self.conn.sendall(data)
            except OSError:
                self.close()
                return

    def close(self) -> None:
        self.closed = True
        self.out.put(None)
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone
        self.conn.close()


class RobotAgent:
    def __init__(self, robot: Robot, token: bytes, host: str = "127.0.0.1", port: int = 0,
                 period: float | None = None, watchdog_periods: float = 3.0, max_age_s: float = 0.5,
                 clock: Callable[[], float] = time.time):
        self.robot, self.token, self.max_age_s, self.clock = robot, checked_token(token), max_age_s, clock
        self.period = period or robot.dt
        self.deadline = watchdog_periods * self.period
        self.listener = socket.create_server((host, port))
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.controller: _Link | None = None
        self.command: dict[str, Any] | None = None  # the newest valid command: kind, action, seq, t (monotonic)
        self.reset_to: tuple[int, int, int] | None = None  # (seed, episode, seq) of a reset not done yet
        self.episode = -1
        self.tick = 0
        self.applied = 0  # the sequence number of the command the robot executed last
        self.moving = False  # executing acts (the watchdog counts a hold only when it stops a moving robot)
        self.latest: dict | None = None  # the newest observation message (made in the control loop's thread only)
        self.intervals: collections.deque[float] = collections.deque(maxlen=20_000)  # control periods, s
        self.closed = threading.Event()

    @property
    def address(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> RobotAgent:
        self.robot.connect()
        for target, name in ((self._accept, "accept"), (self._control, "control")):
            threading.Thread(target=target, daemon=True, name=f"robot-agent {name} {self.address}").start()
        return self

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        with self.lock:
            link, self.controller, self.command = self.controller, None, None
        if link is not None:
            link.close()
        self.robot.hold()
        self.robot.disconnect()

    def health(self) -> dict[str, Any]:
        jitter = np.abs(np.asarray(self.intervals) - self.period) * 1000 if self.intervals else np.zeros(1)
        return {"period_ms": round(self.period * 1000, 3), "ticks": self.tick, "episode": self.episode,
                "connected": self.controller is not None, "moving": self.moving, **dict(self.counts),
                "jitter_ms_p50": round(float(np.percentile(jitter, 50)), 3),
                "jitter_ms_p99": round(float(np.percentile(jitter, 99)), 3)}

    # ---- connections ----
    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, peer = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True, name=f"robot-agent {peer}").start()

    def _serve(self, conn: socket.socket, peer: Any) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(HANDSHAKE_S)
        link = _Link(conn, Session(self.token, self.max_age_s, self.clock))
        try:
            nonce = secrets.token_bytes(16)
            link.send({"kind": "challenge", "nonce": nonce})
            hello = link.session.read(conn)
            if hello is None:
                return
            if kind(hello, TO_AGENT) != "hello" or blob(hello, "nonce") != nonce:
                raise BadFrame("hello: not an answer to this connection's challenge (a replayed hello?)", "replayed")
            self._take(link, blob(hello, "client_nonce"))
            conn.settimeout(IDLE_S)
            while (message := link.session.read(conn)) is not None and self._handle(link, message):
                pass
        except BadFrame as e:
            self.counts[f"refused_{e.why}"] += 1
            log.warning("robot agent %s: refused a frame from %s: %s; hung up (the robot holds)", self.address, peer, e)
        except OSError:
            pass  # the controller went away
        finally:
            with self.lock:
                if self.controller is link:
                    self.controller, self.command = None, None  # the robot holds from its next period
            link.close()

    def _take(self, link: _Link, client_nonce: bytes) -> None:
        """An authenticated controller: it replaces the one before (a reconnect after a link that died half-open)."""
        with self.lock:
            old, self.controller, self.command = self.controller, link, None
            self.applied = 0  # commands are numbered per connection: none of this one's executed yet
            self.counts["connects"] += 1
            latest = None if self.latest is None else {**self.latest, "cmd": 0}
            link.send({"kind": "welcome", "client_nonce": client_nonce, "spec": spec_of(self.robot, self.period),
                       "episode": self.episode, "obs": latest})
        if old is not None:
            old.close()

    def _handle(self, link: _Link, message: dict) -> bool:
        """Acts on one message; False: the controller said goodbye."""
        what = kind(message, TO_AGENT)
        if what == "ping":
            link.send({"kind": "pong", "t0": number(message, "t0"), "health": self.health()})
        elif what == "offset":  # the controller measured our clock minus its own
            link.session.offset = -number(message, "offset", -1e6, 1e6)
        elif what == "reset":
            reset = (integer(message, "seed"), integer(message, "episode"), message["seq"])
            with self.lock:
                self.reset_to = reset
        elif what in ("act", "hold"):
            action = vector(message, "action", self.robot.act_dim) if what == "act" else None
            with self.lock:
                if link is self.controller:
                    self.command = {"kind": what, "action": action, "seq": message["seq"], "t": time.monotonic()}
        elif what == "bye":
            return False
        else:
            raise BadFrame(f"field 'kind': {what!r} only once, at the start")
        return True

    # ---- the robot's control loop ----
    def _control(self) -> None:
        next_tick = last = time.perf_counter()
        while not self.closed.is_set():
            self._period()
            now = time.perf_counter()
            self.intervals.append(now - last)
            last = now
            next_tick += self.period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.perf_counter()

    def _period(self) -> None:
        """One control period: a pending reset, else the newest command or a hold; then the observation out."""
        with self.lock:
            link, command, reset = self.controller, self.command, self.reset_to
            self.reset_to = None
        executed = None  # the sequence number of the command this period carried out
        if reset is not None and reset[1] != self.episode:
            self.robot.reset(reset[0])
            self.episode, self.moving, executed = reset[1], False, reset[2]
            with self.lock:
                if self.command is command:
                    self.command = None  # the new episode starts held
        elif self._executes(command):
            assert command is not None
            if command["seq"] == self.applied:
                self.counts["repeats"] += 1  # the controller is late: the last setpoint holds one more period
            self.robot.send_action(command["action"])
            self.moving, executed = True, command["seq"]
        else:
            stopped = command is None or (command["kind"] == "act" and not self.robot.get_observation().done)
            if self.moving and stopped:  # the controller went quiet or away while the robot moved
                self.counts["watchdog_holds"] += 1
                log.warning("robot agent %s: %s: holding", self.address, "the controller left" if command is None
                            else f"no valid command for {1000 * self.deadline:.0f} ms")
            self.moving = False
            self.robot.hold()
            if command is not None and command["kind"] == "hold":
                executed = command["seq"]
        self.tick += 1
        with self.lock:
            if executed is not None and self.controller is link:  # numbers of a controller that left mean nothing
                self.applied = executed
            self.latest = self._observation() if self.episode >= 0 else None
            latest, current = self.latest, self.controller
        if latest is not None and current is not None and current is link:
            link.send(latest)

    def _executes(self, command: dict | None) -> bool:
        """An act the robot may execute now: fresh (within the watchdog deadline), in a running episode."""
        return (command is not None and command["kind"] == "act" and self.episode >= 0
                and time.monotonic() - command["t"] <= self.deadline and not self.robot.get_observation().done)

    def _observation(self) -> dict:
        obs = self.robot.get_observation()
        expert = None if obs.done else self.robot.expert_action()
        return obs_message(obs, self.episode, self.tick, self.applied, not self.moving, expert)
