"""The front door both of dagger's servers (a served policy, a robot agent) share: it accepts on a thread of its own
and runs `serve(guest)` on a thread per admitted connection, TLS first when a context is given.

    door = Listener("127.0.0.1", 0, serve, name="policy server", slots=64, unproven=16).start()
    def serve(guest):                       # guest.sock: the connection (TLS done), guest.peer: (host, port)
        ... handshake ...; guest.proven()   # authenticated: no longer evictable
    door.close()

At most `slots` connections are held at once, of which at most `unproven` not yet authenticated. A new connection
that finds either full takes the place of the oldest one not authenticated (hung up on): a flood of strangers cannot
hold the door shut, because a peer that holds the token proves itself in one round trip, long before `unproven`
newer strangers push it out (and it retries if they do). Only when every slot is held by an authenticated peer is a
newcomer turned away. A thread, a socket and HELLO_BYTES of buffer per connection: memory and threads are bounded by
`slots`, whatever strangers send.
"""

from __future__ import annotations

import collections
import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from dagger import wire
from dagger.log_once import LogOnce

log = logging.getLogger(__name__)


def hang_up(conn: socket.socket) -> None:
    """Shuts a connection down both ways and closes it (one already gone is closed all the same)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone
    conn.close()


class Guest:
    """One admitted connection, as its thread sees it."""

    def __init__(self, door: Listener, sock: socket.socket, peer: Any):
        self.door, self.sock, self.peer = door, sock, peer
        self.authenticated = False
        self.evicted = False

    def proven(self) -> bool:
        """Marks the peer authenticated (never evicted from now on); False when it was evicted meanwhile."""
        return self.door._proven(self)

    def hang_up(self) -> None:
        """Ends the connection from any thread: the one serving it sees the peer gone. (socket.socket's own shutdown:
        an SSLSocket's would drop its TLS state under the thread reading it.)"""
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already gone


class Listener:
    def __init__(self, host: str, port: int, serve: Callable[[Guest], None], name: str, slots: int = 64,
                 unproven: int = 16, tls: ssl.SSLContext | None = None):
        if not 1 <= unproven <= slots:
            raise ValueError(f"{name}: unproven ({unproven}) must be in 1..slots ({slots})")
        self.serve, self.name, self.slots, self.unproven, self.tls = serve, name, slots, unproven, tls
        self.sock = socket.create_server((host, port))
        self.address = "{}:{}".format(*self.sock.getsockname()[:2])
        self.lock = threading.Lock()
        self.waiting: collections.OrderedDict[Guest, None] = collections.OrderedDict()  # oldest first
        self.inside: set[Guest] = set()  # authenticated
        self.counts: collections.Counter[str] = collections.Counter()
        self.turned_away = LogOnce(log)
        self.closed = False
        self.thread: threading.Thread | None = None

    def start(self) -> Listener:
        self.thread = threading.Thread(target=self._accept, daemon=True, name=f"{self.name} accept {self.address}")
        self.thread.start()
        return self

    def close(self) -> None:
        """Stops accepting and hangs up on everyone."""
        with self.lock:
            self.closed = True
            guests = [*self.waiting, *self.inside]
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.sock.close()
        for guest in guests:
            guest.hang_up()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=5.0)
        self.turned_away.flush()

    def held(self) -> tuple[int, int]:
        """(connections not authenticated, authenticated) now."""
        with self.lock:
            return len(self.waiting), len(self.inside)

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, peer = self.sock.accept()
            except OSError as e:
                if self.closed:
                    return
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._evict_oldest("out of file descriptors")  # never spin: free one, then wait a moment
                    time.sleep(0.05)
                continue
            guest = Guest(self, conn, peer)
            if not self._admit(guest):
                self._turn_away(conn, "every slot is held by an authenticated peer")
                continue
            try:
                threading.Thread(target=self._run, args=(guest,), daemon=True, name=f"{self.name} {peer}").start()
            except RuntimeError:  # no thread to be had: this peer is turned away, the server goes on
                self._leave(guest)
                self._turn_away(conn, "no thread to serve it")

    def _admit(self, guest: Guest) -> bool:
        with self.lock:
            if self.closed:
                return False
            full = len(self.waiting) >= self.unproven or len(self.waiting) + len(self.inside) >= self.slots
            if full and not self.waiting:
                return False
            if full:
                self._push_out_oldest()
            self.waiting[guest] = None
            self.counts["accepted"] += 1
            return True

    def _push_out_oldest(self) -> None:
        """Hangs up on the oldest connection not authenticated (call with the lock held: its thread cannot have closed
        it meanwhile, and its number gone to another)."""
        oldest, _ = self.waiting.popitem(last=False)
        oldest.evicted = True
        oldest.hang_up()
        self.counts["evicted"] += 1

    def _evict_oldest(self, why: str) -> None:
        with self.lock:
            if not self.waiting:
                return
            self._push_out_oldest()
        self.turned_away.warning("%s %s: %s; hung up on the oldest connection not authenticated", self.name,
                                 self.address, why, key=why)

    def _turn_away(self, conn: socket.socket, why: str) -> None:
        self.counts["refused_full"] += 1
        self.turned_away.warning("%s %s: turned a connection away: %s", self.name, self.address, why, key=why)
        hang_up(conn)

    def _proven(self, guest: Guest) -> bool:
        with self.lock:
            if guest.evicted or guest not in self.waiting:
                return False
            del self.waiting[guest]
            self.inside.add(guest)
            guest.authenticated = True
            return True

    def _leave(self, guest: Guest) -> None:
        with self.lock:
            self.waiting.pop(guest, None)
            self.inside.discard(guest)

    def _run(self, guest: Guest) -> None:
        try:
            guest.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames go out at once
            if self.tls is not None:
                guest.sock.settimeout(wire.HANDSHAKE_S)
                try:
                    guest.sock = self.tls.wrap_socket(guest.sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.counts["refused_tls"] += 1
                    self.turned_away.warning("%s %s: TLS handshake with %s failed: %s", self.name, self.address,
                                             guest.peer, e, key="tls")
                    return
                if guest.evicted:
                    return
            self.serve(guest)
        except Exception:  # noqa: BLE001 - one connection's failure is its own; the door stays open
            log.exception("%s %s: serving %s failed", self.name, self.address, guest.peer)
        finally:
            self._leave(guest)
            guest.hang_up()
            guest.sock.close()
