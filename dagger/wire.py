"""The wire of dagger's network links (a served policy, a robot agent): a frame is a 4-byte big-endian body length +
HMAC-SHA256(token, body) + body, the body buffers.codec.encode(a map). A reader checks the length before reading and
the HMAC before decoding; nothing is ever unpickled or evaluated. A Session adds what an HMAC alone does not stop:
replays (a sequence number per direction) and stale messages (the sender's time, against the measured clock offset).

    conn.sendall(frame(token, {"kind": "hello"}))
    message = open_frame(token, mac, body)          # BadFrame unless authentic and a msgpack map
    session = Session(token); conn.sendall(session.seal({"kind": "act"})); message = session.read(conn)
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buffers.codec import CodecError, decode, encode

MAX_BYTES = 64 << 20  # the longest body either side reads; a longer length is refused before reading it
HEADER = 4 + 32  # body length + HMAC-SHA256


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


def open_frame(token: bytes, mac: bytes, body: bytes) -> dict:
    """The message in a frame whose length was checked; BadFrame unless authentic and a msgpack map."""
    if not hmac.compare_digest(mac, hmac.new(token, body, hashlib.sha256).digest()):
        raise BadFrame("unauthenticated: the frame's HMAC does not match the token", "unsigned")
    try:
        message = decode(body)
    except CodecError as e:
        raise BadFrame(f"not a msgpack message: {e}", "not_msgpack") from e
    if not isinstance(message, dict):
        raise BadFrame(f"not a msgpack message: a {type(message).__name__}, expected a map", "not_msgpack")
    return message


def too_large(size: int, limit: int = MAX_BYTES) -> BadFrame:
    return BadFrame(f"too large: a body of {size} bytes; the limit is {limit}", "too_large")


def recv_exact(conn: socket.socket, n: int) -> bytes | None:
    """n bytes, or None when the peer hangs up first. Grows as bytes come: a claimed length costs nothing."""
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(conn: socket.socket, token: bytes, limit: int = MAX_BYTES) -> dict | None:
    """The next authentic message on a connection (a body of `limit` bytes at most); None when the peer hangs up;
    BadFrame when it is refused."""
    header = recv_exact(conn, HEADER)
    if header is None:
        return None
    size = int.from_bytes(header[:4], "big")
    if size > limit:
        raise too_large(size, limit)
    body = recv_exact(conn, size)
    if body is None:
        return None
    return open_frame(token, header[4:], body)


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
        self.limit = MAX_BYTES  # the longest body this side reads (small until the peer is authenticated)

    def bind(self, *nonces: bytes) -> None:
        """From now on, frames are signed with HMAC(token, nonces): a key of this connection's own."""
        self.token = hmac.new(self.token, b"".join(nonces), hashlib.sha256).digest()

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

    def read(self, conn: socket.socket) -> dict | None:
        """The next message on conn, authentic, in sequence and fresh; None when the peer hangs up."""
        message = read_frame(conn, self.token, self.limit)
        return None if message is None else self.check(message)
