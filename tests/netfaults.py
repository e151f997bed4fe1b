"""Hosts on a real network, and a bad network between them, for tests and benchmarks on one machine.

This kernel has no netem qdisc and no iptables, so: each `Host` is a network namespace joined to this process's
namespace by a veth pair of its own (a partition is its link taken down), and delay, jitter and loss come from a
small fault-injecting TCP proxy here in between (the Toxiproxy idea), the only way from one host to another (this
namespace forwards no packets).

    with Network() as net:
        robot, worker = net.host(), net.host()
        with robot.inside():
            agent = RobotAgent(..., host=robot.ip)                      # sockets made here live on `robot`
        proxy = FaultyProxy(worker.gateway, agent.address, Faults(delay_s=0.05, jitter_s=0.01, loss=0.02))
        with worker.inside():
            controller = RemoteRobot(proxy.address, token)              # threads started here stay on `worker`
        robot.link(up=False)                                            # a partition, until link(up=True)

TCP never loses a byte; a lost segment is sent again after the retransmission timeout (Linux: at least 200 ms,
doubling while it is lost again), and everything behind it waits (in-order delivery). So a "loss" here holds a
chunk, and the ones after it, for that long. `Faults.drop` instead hangs up a connection, as a middlebox that
forgets it would.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
RTO_S = 0.2  # Linux's minimum retransmission timeout
RETRIES = 6  # resends of one segment at most (Linux gives up after 15; a test's link is not that bad)
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable() -> str:
    """Why network namespaces cannot be made here ("" when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    name = f"dgprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ""


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@dataclass
class Host:
    """A network namespace with one link to this one: it is `ip`, this side is `gateway` (a /24 of its own)."""

    name: str
    veth: str  # this side's end of the link
    ip: str
    gateway: str

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Runs the block in this host's namespace: sockets made and threads started in it belong to the host."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(own)

    def command(self, *argv: str) -> list[str]:
        """argv run on this host (`ip netns exec`)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def link(self, up: bool) -> None:
        """Takes the host's end of its link down (a partition: nothing delivered, nothing refused), or back up."""
        ip("-n", self.name, "link", "set", "eth0", "up" if up else "down")


class Network:
    """Makes hosts, and removes every namespace and link it made on exit (a link goes with its namespace)."""

    def __init__(self) -> None:
        self.hosts: list[Host] = []
        self.prefix = self._free_prefix()

    @staticmethod
    def _free_prefix() -> str:
        """10.X.Y: a /16 no address of this namespace is in (other tests may be making networks too)."""
        taken = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        rng = random.Random(os.getpid() ^ time.time_ns())
        for _ in range(100):
            prefix = f"10.{rng.randrange(64, 250)}"
            if f" {prefix}." not in taken:
                return prefix
        raise OSError("no free 10.X.0.0/16 for a test network")

    def host(self) -> Host:
        i = len(self.hosts) + 1
        tag = f"{os.getpid() % 100000}x{i}"
        host = Host(f"dg{tag}", f"dgv{tag}", f"{self.prefix}.{i}.2", f"{self.prefix}.{i}.1")
        self.hosts.append(host)  # removed on exit even when half made
        ip("netns", "add", host.name)
        ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.name)
        ip("addr", "add", f"{host.gateway}/24", "dev", host.veth)
        ip("link", "set", host.veth, "up")
        ip("-n", host.name, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        ip("-n", host.name, "link", "set", "eth0", "up")
        ip("-n", host.name, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "link", "del", host.veth], capture_output=True)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True)
        self.hosts.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Faults:
    """What the proxy does to each chunk, in each direction."""

    delay_s: float = 0.0  # one way
    jitter_s: float = 0.0  # delay uniform in [delay - jitter, delay + jitter]
    loss: float = 0.0  # chance a segment is lost: it (and what follows it) waits a retransmission timeout
    drop: float = 0.0  # chance a chunk ends its connection instead (both sides hung up on)


class FaultyProxy:
    """Listens on `host`:a free port and forwards each connection to `upstream` (HOST:PORT), through `faults`
    (changeable while it runs). Counts chunks, losses, drops and connections."""

    CHUNK = 1 << 16

    def __init__(self, host: str, upstream: str, faults: Faults | None = None, seed: int = 0,
                 connect_timeout_s: float = 2.0):
        self.faults = faults or Faults()
        self.upstream = upstream.rpartition(":")[0], int(upstream.rpartition(":")[2])
        self.rng = random.Random(seed)
        self.connect_timeout_s = connect_timeout_s
        self.listener = socket.create_server((host, 0))
        self.address = "{}:{}".format(*self.listener.getsockname()[:2])
        self.lock = threading.Lock()
        self.counts = {"connections": 0, "refused": 0, "chunks": 0, "lost": 0, "dropped": 0}
        self.open: set[socket.socket] = set()
        self.half_closed: dict[tuple[socket.socket, ...], int] = {}
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"proxy {self.address}").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True, name="proxy connect").start()

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=self.connect_timeout_s)
        except OSError:  # upstream unreachable (a partition): the client sees its connection closed
            with self.lock:
                self.counts["refused"] += 1
            _close(client)
            return
        server.settimeout(None)
        with self.lock:
            if self.closed:
                _close(client, server)
                return
            self.counts["connections"] += 1
            self.open |= {client, server}
        pair = (client, server)
        for src, dst in (pair, pair[::-1]):
            Pipe(self, src, dst, pair)

    def _chance(self, p: float) -> bool:
        with self.lock:
            return p > 0 and self.rng.random() < p

    def _delay(self) -> float:
        """This chunk's time on the way: the delay with its jitter, plus a retransmission timeout per loss."""
        f = self.faults
        with self.lock:
            self.counts["chunks"] += 1
            delay = max(0.0, f.delay_s + self.rng.uniform(-f.jitter_s, f.jitter_s)) if f.jitter_s else f.delay_s
            rto = max(RTO_S, 2 * f.delay_s + 4 * f.jitter_s)  # srtt + 4 rttvar, at least 200 ms
            for _ in range(RETRIES):  # lost, and its resend lost again: the timer doubles
                if f.loss <= 0 or self.rng.random() >= f.loss:
                    break
                self.counts["lost"] += 1
                delay += rto
                rto *= 2
        return delay

    def ended(self, pair: tuple[socket.socket, ...]) -> None:
        """One direction ended cleanly; the connection is closed when both have."""
        with self.lock:
            self.half_closed[pair] = self.half_closed.get(pair, 0) + 1
            if self.half_closed[pair] < 2:
                return
            del self.half_closed[pair]
        self.hang_up(pair)

    def hang_up(self, pair: tuple[socket.socket, ...]) -> None:
        with self.lock:
            self.open -= set(pair)
        _close(*pair)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            sockets, self.open = list(self.open), set()
        _close(self.listener, *sockets)


class Pipe:
    """One direction of a proxied connection: a reader stamps each chunk with when it is due, a writer sends it
    then, never before the chunk ahead of it (TCP delivers in order)."""

    def __init__(self, proxy: FaultyProxy, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, ...]):
        self.proxy, self.src, self.dst, self.pair = proxy, src, dst, pair
        self.cond = threading.Condition()
        self.queue: list[tuple[float, bytes]] = []
        self.eof = False
        for target in (self._read, self._write):
            threading.Thread(target=target, daemon=True, name="proxy pipe").start()

    def _read(self) -> None:
        last = 0.0
        try:
            while data := self.src.recv(FaultyProxy.CHUNK):
                if self.proxy._chance(self.proxy.faults.drop):
                    with self.proxy.lock:
                        self.proxy.counts["dropped"] += 1
                    self.proxy.hang_up(self.pair)
                    return
                last = max(last, time.monotonic() + self.proxy._delay())
                with self.cond:
                    self.queue.append((last, data))
                    self.cond.notify()
        except OSError:
            self.proxy.hang_up(self.pair)  # reset, or hung up on: the other side is hung up on too
        with self.cond:
            self.eof = True
            self.cond.notify()

    def _write(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.eof:
                        self.cond.wait()
                    if not self.queue:
                        break
                    due, data = self.queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        self.cond.wait(wait)
                        continue
                    self.queue.pop(0)
                self.dst.sendall(data)
            self.dst.shutdown(socket.SHUT_WR)  # a clean end, passed on once what came before it is delivered
            self.proxy.ended(self.pair)
        except OSError:
            self.proxy.hang_up(self.pair)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # reset, as a dropped link
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

