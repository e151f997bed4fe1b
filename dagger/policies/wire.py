"""The policy server's wire: a frame is a 4-byte big-endian body length + HMAC-SHA256(token, body) + body, the body
buffers.codec.encode(a map). A reader checks the length before reading and the HMAC before decoding; nothing is
ever unpickled or evaluated.

    conn.sendall(frame(token, {"kind": "hello"}))
    message = open_frame(token, mac, body)          # BadFrame unless authentic and a msgpack map
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
from pathlib import Path
from typing import Any

from buffers.codec import CodecError, decode, encode

MAX_BYTES = 64 << 20  # the longest body either side reads; a longer length is refused before reading it
HEADER = 4 + 32  # body length + HMAC-SHA256


class BadFrame(ValueError):
    """A frame that is refused: too large, unauthenticated, not a msgpack map, an unknown kind."""


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
        raise BadFrame("unauthenticated: the frame's HMAC does not match the token")
    try:
        message = decode(body)
    except CodecError as e:
        raise BadFrame(f"not a msgpack message: {e}") from e
    if not isinstance(message, dict):
        raise BadFrame(f"not a msgpack message: a {type(message).__name__}, expected a map")
    return message


def too_large(size: int) -> BadFrame:
    return BadFrame(f"too large: a body of {size} bytes; the limit is {MAX_BYTES}")


def recv_exact(conn: socket.socket, n: int) -> bytes | None:
    """n bytes, or None when the peer hangs up first. Grows as bytes come: a claimed length costs nothing."""
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
