"""What a stranger (and a peer holding the token) can do to dagger's two servers: each attack runs against a policy
server (`PolicyServer`, as `dagger serve` hosts one) and a robot agent (`RobotAgent`, as `dagger robot-agent`), each
in its own process on loopback, while a legitimate client keeps asking; bounded in count and time.

Per attack and server it prints the server's peak resident memory and threads during the attack (from /proc), the
legitimate client's requests served (policy: acts answered within 2 s; agent: handshakes done within 5 s), and the
refusals the server counted (refused frames, connections pushed out or turned away).

    python benchmarks/attacks.py [--seconds 4] [--legit 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dagger import wire
from dagger.policies.remote import RemotePolicy
from dagger.robots.remote import RemoteRobot
from dagger.wire import Session, answer_challenge

ROOT = Path(__file__).resolve().parents[1]
TASK = "point"
OBS, ACT = 6, 2  # the point task's


# ---- the servers, each in its own process (`--serve policy|agent`): health on a line of stdin ----
def serve(kind: str, token: bytes) -> None:
    if kind == "policy":
        from dagger.policies import EnsemblePolicy, PolicyConfig
        from dagger.policies.remote import PolicyServer, request_bytes

        # 256 robots kept rather than the default 1024: the cap is reached within the attack's time
        server = PolicyServer(lambda: EnsemblePolicy(OBS, ACT, PolicyConfig()), token,
                              max_request=request_bytes(OBS, None), max_robots=256).start()
        health: Callable[[], dict] = server.health
    else:
        from dagger.robots import SimRobot
        from dagger.robots.agent import RobotAgent
        from dagger.tasks import make_task

        robot = SimRobot(make_task(TASK))
        agent = RobotAgent(robot, token, period=robot.dt / 4).start()
        server, health = agent, agent.health  # type: ignore[assignment]
    print(server.address, flush=True)
    for _ in sys.stdin:
        print(json.dumps(health()), flush=True)


class Served:
    def __init__(self, kind: str, token: bytes):
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--token", token.hex()], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        self.host, self.port = self.address.rsplit(":", 1)[0], int(self.address.rsplit(":", 1)[1])

    def health(self) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def status(self) -> tuple[float, int]:
        """(resident MB, threads) now."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def refusals(health: dict) -> int:
    """Refused frames and connections pushed out or turned away (the agent reports the last two as refused_busy)."""
    return sum(v for k, v in health.items() if isinstance(v, int) and (k.startswith("refused_") or k == "evicted"))


# ---- the attacks: each runs until `stop` ----
def dial(server: Served, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=timeout)


def quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except OSError:
        pass


Stop = Any  # a multiprocessing Event: is_set(), wait(s)


def silent(server: Served, token: bytes, stop: Stop) -> None:
    """40 connections that never answer the challenge, reopened when hung up on."""
    socks: list[socket.socket] = []
    while not stop.is_set():
        socks = [s for s in socks if s.fileno() >= 0]
        while len(socks) < 40 and not stop.is_set():
            try:
                socks.append(dial(server))
            except OSError:
                break
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1 << 16) == b"":
                    s.close()
            except (BlockingIOError, OSError):
                pass
        stop.wait(0.05)
    for s in socks:
        s.close()


def slowloris(server: Served, token: bytes, stop: Stop) -> None:
    """40 connections sending a hello one byte a second."""
    data = wire.frame(token, {"kind": "hello", "pad": bytes(2000)})
    socks: dict[socket.socket, int] = {}
    while not stop.is_set():
        while len(socks) < 40:
            try:
                socks[dial(server)] = 0
            except OSError:
                break
        for s, at in list(socks.items()):
            try:
                s.sendall(data[at:at + 1])
                socks[s] = at + 1
            except OSError:
                s.close()
                del socks[s]
        stop.wait(1.0)
    for s in socks:
        s.close()


def huge(server: Served, token: bytes, stop: Stop) -> None:
    """Connections that claim a 64 MiB frame and send 1 MiB of it, 40 at a time."""
    chunk = bytes(1 << 20)
    while not stop.is_set():
        socks = []
        for _ in range(40):
            try:
                s = dial(server)
                s.sendall((64 << 20).to_bytes(4, "big") + bytes(32))
                socks.append(s)
            except OSError:
                pass
        for s in socks:
            quietly(lambda s=s: s.sendall(chunk))
        stop.wait(0.5)
        for s in socks:
            s.close()


def flood(server: Served, token: bytes, stop: Stop) -> None:
    """Connect and hang up as fast as one thread can, four threads."""
    def one() -> None:
        while not stop.is_set():
            quietly(lambda: dial(server).close())

    threads = [threading.Thread(target=one, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def joined(server: Served, token: bytes) -> tuple[socket.socket, Session]:
    sock, session = dial(server), Session(token)
    challenge = session.read(sock)
    assert challenge is not None
    answer_challenge(sock, session, challenge)
    while (message := session.read(sock)) is not None and message.get("kind") != "welcome":
        pass
    return sock, session


def sends(server: Served, token: bytes, frames: Callable[[Session], list[bytes]]) -> None:
    """Joins with the token, sends the frames made on its session, reads until the server hangs up (2 s at most)."""
    try:
        sock, session = joined(server, token)
        for data in frames(session):
            sock.sendall(data)
        sock.settimeout(2.0)
        while sock.recv(1 << 16):
            pass
        sock.close()
    except (OSError, wire.BadFrame):
        pass


def replay(server: Served, token: bytes, stop: Stop) -> None:
    """With the token: a request again, one out of order, a negative and a non-integer number (seq 7, 3, 3, -1, x)."""
    kind = {"policy": {"kind": "hello"}, "agent": {"kind": "ping", "t0": 0.0}}[server.kind]
    while not stop.is_set():
        for seq in (7, "again", -1, "x"):
            def frames(session: Session, seq: object = seq) -> list[bytes]:
                first = session.seal(kind)
                return [first, first if seq == "again" else
                        wire.frame(session.token, {**kind, "seq": seq, "ts": time.time()})]

            sends(server, token, frames)
        stop.wait(0.1)


def robot_ids(server: Served, token: bytes, stop: Stop) -> None:
    """With the token: act_batch for ever new robot ids, 64 at a time."""
    client = RemotePolicy(server.address, token, deadline_ms=10_000)
    first = 10_000
    while not stop.is_set():
        ids = list(range(first, first + 64))
        first += 64
        quietly(lambda ids=ids: client.act_batch(np.zeros((64, OBS), np.float32), None, ids))
    client.close()


def bomb(server: Served, token: bytes, stop: Stop) -> None:
    """With the token: frames of ~400 KB that inflate to 100 MB each, two a second (making one takes the attacker
    ~0.1 s of a core, which the legitimate client on the same 2 cores would otherwise lose)."""
    kind = {"policy": {"kind": "hello"}, "agent": {"kind": "hold"}}[server.kind]
    pad = bytes(100 << 20)
    while not stop.is_set():
        sends(server, token, lambda session: [session.seal({**kind, "pad": pad})])
        stop.wait(0.5)


ATTACKS: dict[str, tuple[str, Callable[[Served, bytes, Stop], None], tuple[str, ...]]] = {
    "silent": ("40 unauthenticated connections, held open", silent, ("policy", "agent")),
    "slowloris": ("slowloris: 40 connections, 1 byte/s", slowloris, ("policy", "agent")),
    "huge": ("64 MiB length prefix, 40 connections × 1 MiB", huge, ("policy", "agent")),
    "flood": ("connect/close flood, 4 threads", flood, ("policy", "agent")),
    "replay": ("with the token: replayed / out-of-order / −1 / \"x\" seq", replay, ("policy", "agent")),
    "robots": ("with the token: new robot ids, 64 per request", robot_ids, ("policy",)),
    "bomb": ("with the token: 400 KB frames inflating to 100 MB", bomb, ("policy", "agent")),
}


# ---- the legitimate client ----
def legit(server: Served, token: bytes, n: int) -> int:
    """Requests served of n: acts answered within 2 s (policy), handshakes done within 5 s (agent)."""
    served = 0
    if server.kind == "policy":
        client = RemotePolicy(server.address, token, deadline_ms=2000, robot=0)
        for _ in range(n):
            try:
                client.act(np.zeros(OBS, np.float32))
                served += 1
            except Exception:  # noqa: BLE001 - a timeout or a refusal: not served
                pass
            time.sleep(0.1)
        client.close()
        return served
    for _ in range(n):
        robot = RemoteRobot(server.address, token, connect_timeout_s=5.0)
        try:
            robot.connect()
            served += 1
            robot.disconnect()
        except ConnectionError:
            pass
        time.sleep(0.1)
    return served


def attack(server: Served, token: bytes, run: Callable, seconds: float, n: int) -> dict:
    """The attack in a process of its own (it never takes the legitimate client's interpreter), the legitimate
    client here once the server is warm, the server's memory and threads sampled all along."""
    legit(server, token, 1)  # warm: the first act makes the robot's policy and runs torch once
    before = server.health()
    rss0, _ = server.status()
    stopping = multiprocessing.get_context("fork").Event()
    attacker = multiprocessing.get_context("fork").Process(target=run, args=(server, token, stopping), daemon=True)
    attacker.start()
    done = threading.Event()
    peak = [rss0, 0]

    def watch() -> None:
        while not done.is_set():
            try:
                rss, threads = server.status()
            except (OSError, KeyError):
                return
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], threads)
            done.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.5)  # the attack under way
    served = legit(server, token, n)
    time.sleep(seconds)
    stopping.set()
    attacker.join(timeout=30)
    if attacker.is_alive():
        attacker.kill()
    done.set()
    watcher.join()
    after = server.health()
    return {"rss0": rss0, "rss": peak[0], "threads": peak[1], "served": served, "n": n,
            "refused": refusals(after) - refusals(before), "robots": after.get("robots"),
            "forgotten": after.get("robots_forgotten", 0) - before.get("robots_forgotten", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="how long each attack runs after the client")
    parser.add_argument("--legit", type=int, default=10, help="the legitimate client's requests per attack")
    parser.add_argument("--only", default="", help="comma-separated attacks: " + ",".join(ATTACKS))
    parser.add_argument("--serve", choices=["policy", "agent"], help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, bytes.fromhex(args.token))
        return
    token = secrets.token_bytes(32)
    print("| attack | server | RSS MB before → peak | threads peak | legitimate served | refusals counted |")
    print("|---|---|---|---|---|---|")
    for name in args.only.split(",") if args.only else ATTACKS:
        what, run, kinds = ATTACKS[name]
        for kind in kinds:
            server = Served(kind, token)  # a fresh server per attack: one's memory does not hide the next's
            try:
                r = attack(server, token, run, args.seconds, args.legit)
            finally:
                server.close()
            kept = f" ({r['robots']} robots kept, {r['forgotten']} forgotten)" if name == "robots" else ""
            print(f"| {what} | {'policy server' if kind == 'policy' else 'robot agent'} | {r['rss0']:.0f} → "
                  f"{r['rss']:.0f} | {r['threads']} | {r['served']} of {r['n']} | {r['refused']}{kept} |", flush=True)


if __name__ == "__main__":
    main()
