"""The wire of dagger's network links (a served policy, a robot agent): a frame is a 4-byte big-endian body length +
HMAC-SHA256(token, body) + body, the body buffers.codec.encode(a map). A reader checks the length before reading and
the HMAC before decoding; nothing is ever unpickled or evaluated. A Session adds what an HMAC alone does not stop:
replays (a sequence number per direction) and stale messages (the sender's time, against the measured clock offset).

    conn.sendall(frame(token, {"kind": "hello"}))
    message = open_frame(token, mac, body)          # BadFrame unless authentic and a msgpack map
    session = Session(token); conn.sendall(session.seal({"kind": "act"})); message = session.read(conn)

A server greets each connection with a challenge (`greet`; the client answers it with `answer_challenge`): until the
peer has signed a fresh nonce it may send one short frame (HELLO_BYTES), and every frame, before or after, must come
whole within FRAME_S of its first byte, so a peer that trickles bytes is cut off whatever each recv's timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buffers.codec import MAX_DECODED, CodecError, TooLarge, decode, encode

MAX_BYTES = 64 << 20  # the longest body either side reads; a longer length is refused before reading it
HEADER = 4 + 32  # body length + HMAC-SHA256
HELLO_BYTES = 4096  # the longest frame read (and inflated) before the peer is authenticated
FRAME_S = 10.0  # a frame must come whole within this of its first byte (a peer sending 1 byte a second is cut off)
HANDSHAKE_S = 5.0  # a connection must be authenticated (TLS, challenge, hello) within this


class BadFrame(ValueError):
    """A frame that is refused: too large, unauthenticated, not a msgpack map, an unknown kind. `why` is its class
    for counting: unsigned | replayed | out_of_order | stale | not_msgpack | too_large | malformed."""

    def __init__(self, message: str, why: str = "malformed"):
        super().__init__(message)
        self.why = why


def new_token() -> bytes:
    """A fresh shared secret (32 random bytes)."""
    return secrets.token_bytes(32)


def new_token_file(path: str | Path) -> bytes:
    """A fresh secret written to `path` as hex, readable by its owner only; returns it."""
    token, path = new_token(), Path(path)
    path.touch(mode=0o600)
    path.write_text(token.hex())
    return token


def read_token(path: str | Path) -> bytes:
    """The shared secret in a file, as hex (`python -c "import secrets; print(secrets.token_hex(32))" > token`)."""
    text = Path(path).read_text().strip()
    try:
        return checked_token(bytes.fromhex(text), str(path))
    except ValueError as e:
        raise ValueError(f"{path}: a token file holds the secret as hex, at least 16 bytes ({e})") from e


def checked_token(token: bytes, where: str = "token") -> bytes:
    if len(token) < 16:  # a short secret can be guessed
        raise ValueError(f"{where}: {len(token)} bytes; a token needs at least 16 (new_token() makes 32)")
    return token


def frame(token: bytes, message: Any) -> bytes:
    """One frame on the wire: length, HMAC, body."""
    body = encode(message)
    return len(body).to_bytes(4, "big") + hmac.new(token, body, hashlib.sha256).digest() + body


def open_frame(token: bytes, mac: bytes, body: bytes, decoded: int = MAX_DECODED) -> dict:
    """The message in a frame whose length was checked; BadFrame unless authentic and a msgpack map that inflates to
    `decoded` bytes at most."""
    if not hmac.compare_digest(mac, hmac.new(token, body, hashlib.sha256).digest()):
        raise BadFrame("unauthenticated: the frame's HMAC does not match the token", "unsigned")
    try:
        message = decode(body, decoded)
    except TooLarge as e:
        raise BadFrame(f"too large: {e}", "too_large") from e
    except CodecError as e:
        raise BadFrame(f"not a msgpack message: {e}", "not_msgpack") from e
    if not isinstance(message, dict):
        raise BadFrame(f"not a msgpack message: a {type(message).__name__}, expected a map", "not_msgpack")
    return message


def too_large(size: int, limit: int = MAX_BYTES) -> BadFrame:
    return BadFrame(f"too large: a body of {size} bytes; the limit is {limit}", "too_large")


def recv_exact(conn: socket.socket, n: int, end: float | None = None, start: bytes = b"") -> bytes | None:
    """n bytes (counting `start`, already read), or None when the peer hangs up first; TimeoutError once the clock
    (time.monotonic) passes `end`, however the bytes trickle. Grows as bytes come: a claimed length costs nothing."""
    buf = bytearray(start)
    while len(buf) < n:
        if end is not None:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"a frame not whole within its deadline ({len(buf)} of {n} bytes came)")
            conn.settimeout(left)
        chunk = conn.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(conn: socket.socket, token: bytes, limit: int = MAX_BYTES, decoded: int = MAX_DECODED,
               frame_s: float | None = None) -> dict | None:
    """The next authentic message on a connection (a body of `limit` bytes at most, inflating to `decoded` at most);
    None when the peer hangs up; BadFrame when it is refused. The first byte may take the socket's timeout (the
    connection's idle limit); the rest must come within frame_s (default FRAME_S) of it (TimeoutError), whatever each
    recv's timeout."""
    frame_s = FRAME_S if frame_s is None else frame_s
    idle = conn.gettimeout()
    first = conn.recv(HEADER)
    if not first:
        return None
    try:
        header = recv_exact(conn, HEADER, time.monotonic() + frame_s, first)
        if header is None:
            return None
        size = int.from_bytes(header[:4], "big")
        if size > limit:
            raise too_large(size, limit)
        body = recv_exact(conn, HEADER + size, time.monotonic() + frame_s, header)
    finally:
        conn.settimeout(idle)
    if body is None:
        return None
    return open_frame(token, header[4:], body[HEADER:], decoded)


class Session:
    """One connection's replay and staleness rules. Each side numbers what it sends 1, 2, 3, ... ("seq") and stamps
    it with its clock ("ts"); a receiver refuses a number that is not the next one (a replay, or a frame dropped or
    reordered on the way) and, once the clock offset is measured, a time more than max_age_s away from its own (a
    stale frame still counts in the numbering: a reader may drop it and read on). Numbers restart with each
    connection, so a handshake binds the connection first: both sides' nonces, then `bind`, which signs everything
    after with a key of this connection's own (a frame recorded on another connection does not verify)."""

    def __init__(self, token: bytes, max_age_s: float = 0.5, clock: Callable[[], float] = time.time):
        self.token, self.max_age_s, self.clock = checked_token(token), max_age_s, clock
        self.sent = 0
        self.received = 0
        self.offset: float | None = None  # the peer's clock minus ours; None: not measured yet (times unchecked)
        self.limit = HELLO_BYTES  # the longest body this side reads (small until the peer is authenticated)
        self.decoded = HELLO_BYTES  # the most a body may inflate to (set by what the peer's messages can hold)

    def bind(self, *nonces: bytes) -> None:
        """From now on, frames are signed with HMAC(token, nonces): a key of this connection's own."""
        self.token = hmac.new(self.token, b"".join(nonces), hashlib.sha256).digest()
        self.allow(MAX_BYTES, MAX_DECODED)  # the peer is authenticated: a server narrows this to what it reads

    def seal(self, message: dict) -> bytes:
        self.sent += 1
        return frame(self.token, {**message, "seq": self.sent, "ts": self.clock()})

    def check(self, message: dict) -> dict:
        """The message, if its number is the next one and its time is fresh; else BadFrame saying which."""
        seq, ts = message.get("seq"), message.get("ts")
        if type(seq) is not int:
            raise BadFrame(f"field 'seq': expected an integer sequence number, got {type(seq).__name__}")
        if seq != self.received + 1:
            what = "replayed" if seq <= self.received else "out of order"
            raise BadFrame(f"{what}: sequence number {seq}, expected {self.received + 1}", what.replace(" ", "_"))
        if type(ts) is not float or not math.isfinite(ts):
            raise BadFrame(f"field 'ts': expected the sender's time in seconds, got {ts!r}"[:200])
        self.received = seq
        if self.offset is not None:
            age = self.clock() - (ts - self.offset)
            if abs(age) > self.max_age_s:
                raise BadFrame(f"stale: sent {age * 1000:.0f} ms ago (clock offset {self.offset * 1000:.1f} ms "
                               f"applied); the limit is {self.max_age_s * 1000:.0f} ms", "stale")
        return message

    def allow(self, limit: int, decoded: int | None = None) -> None:
        """Frames of up to `limit` bytes from now on, inflating to `decoded` (default: as many) at most."""
        self.limit, self.decoded = min(limit, MAX_BYTES), min(decoded or limit, MAX_DECODED)

    def read(self, conn: socket.socket) -> dict | None:
        """The next message on conn, authentic, in sequence and fresh; None when the peer hangs up."""
        message = read_frame(conn, self.token, self.limit, self.decoded)
        return None if message is None else self.check(message)


def greet(conn: socket.socket, session: Session, end: float | None = None) -> bytes:
    """The server's side of a handshake, by time.monotonic() `end` (default: HANDSHAKE_S from now): a challenge out,
    a hello signing its nonce in, then the session bound to this connection's key; the client's nonce (echo it in
    the welcome). BadFrame when the hello is not an answer to this challenge."""
    nonce = secrets.token_bytes(16)
    end = time.monotonic() + HANDSHAKE_S if end is None else end
    conn.settimeout(max(end - time.monotonic(), 1e-3))
    conn.sendall(session.seal({"kind": "challenge", "nonce": nonce}))
    hello = read_frame(conn, session.token, session.limit, session.decoded, frame_s=end - time.monotonic())
    if hello is None:
        raise ConnectionError("hung up during the handshake")
    session.check(hello)
    if hello.get("kind") != "hello" or hello.get("nonce") != nonce:
        raise BadFrame("hello: not an answer to this connection's challenge (a replayed hello?)", "replayed")
    client_nonce = hello.get("client_nonce")
    if type(client_nonce) is not bytes or len(client_nonce) != 16:
        raise BadFrame(f"field 'client_nonce': expected 16 bytes, got {str(client_nonce)[:40]!r}")
    session.bind(nonce, client_nonce)
    return client_nonce


def answer_challenge(conn: socket.socket, session: Session, challenge: dict) -> bytes:
    """The client's side: a hello signing the server's challenge, then the session bound to this connection's key;
    the client's nonce (the server's welcome must echo it)."""
    nonce = challenge.get("nonce")
    if type(nonce) is not bytes or len(nonce) != 16:
        raise BadFrame(f"field 'nonce': expected 16 bytes, got {str(nonce)[:40]!r}")
    client_nonce = secrets.token_bytes(16)
    conn.sendall(session.seal({"kind": "hello", "nonce": nonce, "client_nonce": client_nonce}))
    session.bind(nonce, client_nonce)
    return client_nonce


def dial(host: str, port: int, timeout_s: float, tls: ssl.SSLContext | None = None) -> socket.socket:
    """A client's connection to a server: TCP without Nagle's delay (small frames go out at once), TLS over it when
    a context is given (the server's certificate checked against `host`)."""
    sock = socket.create_connection((host, port), timeout=timeout_s)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock
    except BaseException:
        sock.close()
        raise


def server_tls(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """TLS for a server with this certificate (PEM) and its private key: the link is encrypted, the server known."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def client_tls(ca: str | Path) -> ssl.SSLContext:
    """TLS for a client that trusts the servers `ca` (a PEM file: the CA, or a server's self-signed certificate)
    vouches for; the host name (or IP address) it dials must be in the certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
