"""Plain HTTP/1 as the operator page's server needs it, on a socket dagger's Listener admitted: one bounded request
read by a deadline, one response with headers that keep the page to itself, and a token bucket for a peer's messages.

    request = read_request(sock, end)          # None: the peer hung up; ValueError: malformed or too large
    respond(sock, "200 OK", body, "text/html")
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dagger import wire

MAX_HEADER = 8192  # request line and headers
MAX_BODY = 512  # a login's body: the token
SECURITY_HEADERS = ("Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
                    "Referrer-Policy: no-referrer\r\nContent-Security-Policy: default-src 'self'; "
                    "img-src 'self' data: blob:; frame-ancestors 'none'\r\n")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes  # the request line and headers as they came, and any bytes after them
    body: bytes = b""


def read_request(sock: Any, end: float) -> Request | None:
    """One HTTP request by time.monotonic() `end` (TimeoutError), None when the peer hangs up; ValueError for one
    that is malformed or too large."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEADER:
            raise ValueError(f"request headers over {MAX_HEADER} bytes")
        chunk = _recv_some(sock, end)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if len(head) > MAX_HEADER:
        raise ValueError(f"request headers over {MAX_HEADER} bytes")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1 request line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"malformed header line {line[:80]!r}")
        headers.setdefault(name.strip().lower(), value.strip())
    request = Request(parts[0], parts[1].split("?")[0], headers, buf)
    if request.method == "POST":
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            raise ValueError(f"content-length {length[:20]!r}: at most {MAX_BODY} bytes")
        body = wire.recv_exact(sock, int(length), end, rest[: int(length)])
        if body is None:
            return None
        request.body = body
    return request


def _recv_some(sock: Any, end: float) -> bytes:
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("request not whole within the handshake deadline")
    sock.settimeout(left)
    return bytes(sock.recv(MAX_HEADER))


def respond(sock: Any, status: str, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
            extra: str = "") -> None:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{SECURITY_HEADERS}{extra}\r\n")
    sock.sendall(head.encode("latin-1") + body)


class Bucket:
    """A token bucket: `rate` messages a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst, self.level, self.t = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.t) * self.rate)
        self.t = now
        if self.level < 1:
            return False
        self.level -= 1
        return True
