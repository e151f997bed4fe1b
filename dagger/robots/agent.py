"""A robot agent: runs next to a robot (here a simulator standing in for one) and serves it to one controller (a
RobotWorker's RemoteRobot) over TCP, with the robot's own control loop and a watchdog.

    agent = RobotAgent(SimRobot(make_task("reach")), token, period=0.0125).start()    # 127.0.0.1, a free port
    robot = RemoteRobot(agent.address, token)                                         # the controller's side

Each control period the agent executes the newest command once more (an act is repeated while it is younger than the
watchdog deadline, as a real arm's streaming interface keeps its last setpoint) or holds, then sends the observation.
When no valid command came within `watchdog_periods` periods, or the controller hung up, the robot holds until a new
command comes. A frame that is unsigned, replayed, stale, not msgpack or malformed is refused, counted and logged,
and its connection closed (the robot holds); nothing a peer sends stops the agent. A message that repeats (a hold,
a refusal for the same reason, a failing period) is logged once, then counted (dagger.log_once).

Connections come in through dagger.listener: HANDSHAKES at once may be unauthenticated, a newer one pushing the
oldest out, so a flood of strangers never locks the controller out; a controller's frames are read whole within
wire.FRAME_S and hold what a command can hold (COMMAND_BYTES), inflated or not. With `tls` (wire.server_tls) the
link is encrypted.
"""

from __future__ import annotations

import collections
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dagger.listener import Guest, Listener, hang_up
from dagger.log_once import LogOnce
from dagger.robots.base import Robot
from dagger.robots.bridge import TO_AGENT, integer, kind, number, obs_message, spec_of, vector
from dagger.wire import HELLO_BYTES, BadFrame, Session, checked_token, greet

__all__ = ["HANDSHAKES", "HELLO_BYTES", "RobotAgent", "command_bytes"]

HANDSHAKES = 16  # connections not yet authenticated at once; a newer one pushes the oldest out
IDLE_S = 30.0  # a controller silent this long is hung up on (the watchdog held the robot long before)
QUEUED = 256  # frames waiting for a controller that does not read: past this it is hung up on

log = logging.getLogger(__name__)


def command_bytes(act_dim: int) -> int:
    """The most a controller's message can hold (an act of act_dim numbers is the largest), with room for fields."""
    return 2048 + 16 * act_dim


class _Link:
    """One authenticated controller. A writer thread seals and sends its frames, so a slow reader never stalls the
    robot: only the newest observation waits (an older one not yet sent is dropped), and a controller that lets
    more than QUEUED other messages pile up is hung up on."""

    def __init__(self, conn: socket.socket, session: Session):
        self.conn, self.session = conn, session
        self.cond = threading.Condition()
        self.queue: collections.deque[dict] = collections.deque()
        self.obs: dict | None = None
        self.closed = False
        threading.Thread(target=self._write, daemon=True, name="robot-agent writer").start()

    def send(self, message: dict) -> None:
        with self.cond:
            if self.closed:
                return
            if message["kind"] == "obs":
                self.obs = message
            elif len(self.queue) < QUEUED:
                self.queue.append(message)
            else:
                self.closed = True
            self.cond.notify()
        if self.closed:
            self.close()

    def _write(self) -> None:
        while True:
            with self.cond:
                while not self.closed and not self.queue and self.obs is None:
                    self.cond.wait()
                if self.closed:
                    return
                message: dict | None
                if self.queue:
                    message = self.queue.popleft()
                else:
                    message, self.obs = self.obs, None
                assert message is not None
                data = self.session.seal(message)  # numbered in the order sent, stamped when sent
            try:
                self.conn.sendall(data)
            except OSError:
                self.close()
                return

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()
        hang_up(self.conn)


class RobotAgent:
    def __init__(self, robot: Robot, token: bytes, host: str = "127.0.0.1", port: int = 0,
                 period: float | None = None, watchdog_periods: float = 3.0, max_age_s: float = 0.5,
                 clock: Callable[[], float] = time.time, tls: ssl.SSLContext | None = None):
        self.robot, self.token, self.max_age_s, self.clock = robot, checked_token(token), max_age_s, clock
        self.period = period or robot.dt
        self.deadline = watchdog_periods * self.period
        # a controller and the one replacing it are authenticated at once, at most
        self.door = Listener(host, port, self._serve, "robot agent", HANDSHAKES + 2, HANDSHAKES, tls)
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.controller: _Link | None = None
        self.command: dict[str, Any] | None = None  # the newest valid command: kind, action, seq, t (monotonic)
        self.reset_to: tuple[int, int, int] | None = None  # (seed, episode, seq) of a reset not done yet
        self.episode = -1
        self.tick = 0
        self.applied = 0  # the sequence number of the command the robot executed last
        self.state_tick = -1  # the period whose motion (or reset) gave the robot's current state
        self.origin = -1  # the state_tick the last applied command was first executed from
        self.moving = False  # executing acts (the watchdog counts a hold only when it stops a moving robot)
        self.latest: dict | None = None  # the newest observation message (made in the control loop's thread only)
        self.intervals: collections.deque[float] = collections.deque(maxlen=20_000)  # control periods, s
        self.closed = threading.Event()
        self.threads: list[threading.Thread] = []
        self.holds, self.refusals, self.failures = LogOnce(log), LogOnce(log), LogOnce(log)

    @property
    def address(self) -> str:
        return self.door.address

    def start(self) -> RobotAgent:
        self.robot.connect()
        thread = threading.Thread(target=self._control, daemon=True, name=f"robot-agent control {self.address}")
        thread.start()
        self.threads.append(thread)
        self.door.start()
        return self

    def close(self) -> None:
        """Stops accepting, hangs up, stops the control loop, then holds and disconnects the robot."""
        self.closed.set()
        self.door.close()
        with self.lock:
            link, self.controller, self.command = self.controller, None, None
        if link is not None:
            link.close()
        for thread in self.threads:
            thread.join(timeout=5.0)
        self.robot.hold()
        self.robot.disconnect()
        for repeats in (self.holds, self.refusals, self.failures):
            repeats.flush()

    def health(self) -> dict[str, Any]:
        jitter = np.abs(np.asarray(self.intervals) - self.period) * 1000 if self.intervals else np.zeros(1)
        return {"period_ms": round(self.period * 1000, 3), "ticks": self.tick, "episode": self.episode,
                "connected": self.controller is not None, "moving": self.moving, **self._door_counts(),
                **dict(self.counts),
                "jitter_ms_p50": round(float(np.percentile(jitter, 50)), 3),
                "jitter_ms_p99": round(float(np.percentile(jitter, 99)), 3)}

    def _door_counts(self) -> dict[str, int]:
        counts = self.door.counts
        return {"refused_busy": counts["evicted"] + counts["refused_full"], **{
            k: v for k, v in counts.items() if k.startswith("refused_") and k != "refused_full"}}

    # ---- connections ----
    def _serve(self, guest: Guest) -> None:
        link = None
        try:
            link = self._handshake(guest)
            while (message := self._read(link)) is not None and self._handle(link, message):
                pass
        except BadFrame as e:
            self._refused(e, guest.peer)
        except TimeoutError:
            self.counts["refused_slow"] += 1  # silent past its limit, or a frame not whole within its deadline
        except OSError:
            pass  # the controller went away
        finally:
            with self.lock:
                if link is not None and self.controller is link:
                    self.controller, self.command = None, None  # the robot holds from its next period
            if link is not None:
                link.close()

    def _handshake(self, guest: Guest) -> _Link:
        """Challenge, hello, welcome within HANDSHAKE_S in all; the authenticated controller's link."""
        conn = guest.sock
        session = Session(self.token, self.max_age_s, self.clock)
        client_nonce = greet(conn, session)
        if self.closed.is_set() or not guest.proven():
            raise ConnectionError("the agent is closing, or this connection was pushed out by newer ones")
        session.allow(command_bytes(self.robot.act_dim))
        conn.settimeout(IDLE_S)
        link = _Link(conn, session)
        self._take(link, client_nonce)
        return link

    def _read(self, link: _Link) -> dict | None:
        """The controller's next message; a stale one (the controller stalled, or the network) is counted and
        dropped, and the robot holds on the commands it has."""
        while True:
            try:
                return link.session.read(link.conn)
            except BadFrame as e:
                if e.why != "stale":
                    raise
                self._refused(e, "the controller")

    def _refused(self, e: BadFrame, peer: Any) -> None:
        self.counts[f"refused_{e.why}"] += 1
        action = "dropped it" if e.why == "stale" else "hung up (the robot holds)"
        host = peer[0] if isinstance(peer, tuple) else peer  # one key per reason and host, whatever the port
        self.refusals.warning("robot agent %s: refused a frame from %s: %s; %s", self.address, peer, e, action,
                              key=(e.why, host))

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
                if link is self.controller:
                    self.reset_to = reset
        elif what in ("act", "hold"):
            action = vector(message, "action", self.robot.act_dim) if what == "act" else None
            offset = link.session.offset
            age = 0.0 if offset is None else max(0.0, self.clock() - (message["ts"] - offset))
            with self.lock:  # its age counts from when it was sent: one late on the way executes for less long
                if link is self.controller:
                    self.command = {"kind": what, "action": action, "seq": message["seq"],
                                    "t": time.monotonic() - age}
        elif what == "bye":
            return False
        else:
            raise BadFrame(f"field 'kind': {what!r} only once, at the start")
        return True

    # ---- the robot's control loop ----
    def _control(self) -> None:
        next_tick = last = time.perf_counter()
        while not self.closed.is_set():
            try:
                self._period()
            except Exception as err:  # noqa: BLE001 - the robot's loop never dies: it holds, and says why
                self.counts["control_errors"] += 1
                self.moving = False
                self.failures.log(logging.ERROR, "robot agent %s: a control period failed (%s); holding",
                                  self.address, err, key=type(err).__name__, exc_info=True)
                try:
                    self.robot.hold()
                except Exception:  # noqa: BLE001 - nothing more to do in this period
                    pass
            for repeats in (self.holds, self.refusals, self.failures):
                repeats.flush(due=True)  # a state that goes on still shows in the log, once a minute
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
            self.origin = self.state_tick = self.tick + 1
            with self.lock:
                if self.command is command:
                    self.command = None  # the new episode starts held
        elif self._executes(command):
            assert command is not None
            if command["seq"] == self.applied:
                self.counts["repeats"] += 1  # the controller is late: the last setpoint holds one more period
            else:
                self.origin = self.state_tick
            self.robot.send_action(command["action"])
            self.state_tick = self.tick + 1
            self.moving, executed = True, command["seq"]
        else:
            stopped = command is None or (command["kind"] == "act" and self.episode >= 0
                                          and not self.robot.get_observation().done)
            if self.moving and stopped:  # the controller went quiet or away while the robot moved
                self.counts["watchdog_holds"] += 1
                self.holds.warning("robot agent %s: %s: holding", self.address, "the controller left"
                                   if command is None else f"no valid command for {1000 * self.deadline:.0f} ms")
            self.moving = False
            self.robot.hold()
            over = self.episode >= 0 and self.robot.get_observation().done
            if command is not None and (command["kind"] == "hold" or over):
                executed = command["seq"]  # answered: held (an act after the episode's end is answered with its end)
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
        return obs_message(obs, expert, episode=self.episode, tick=self.tick, cmd=self.applied, held=not self.moving,
                           state_tick=self.state_tick, origin=self.origin)
