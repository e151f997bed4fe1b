"""The operator console in a browser: a page per operator, served over HTTP and one WebSocket on dagger's Listener
(the same connection rules as the other servers), reading the operator's device (teleop_devices.browser).

    web = OperatorWeb(cfg, {0: device}, {0: token}, tls=None).start()
    print(web.url(0))              # http://127.0.0.1:8765/#token=...  (the fragment never reaches a log)
    web.update(status)             # each poll, on the main thread: never blocks, latest view per operator
    web.close()

GET / serves the page; POST /login with an operator's token sets a session cookie (HttpOnly, SameSite=Strict, Secure
under TLS); GET /ws upgrades to the WebSocket with that cookie and a same-origin Origin header. On the socket the page
sends JSON input (teleop_devices.browser.parse_message) and answers clock pings; it gets JSON views and binary camera
frames (FRAME_HEADER + raw RGB). Everything a stranger sends is bounded: headers, bodies, messages, their rate, and
the time a request may take. A second tab of the same operator replaces the first (closed with REPLACED).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import secrets
import ssl
import struct
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from dagger import wire
from dagger.app.web_http import Bucket, Request, read_request, respond
from dagger.app.words import in_control, nudging, reason_text, robot_state, storage_lines
from dagger.listener import Guest, Listener
from dagger.log_once import LogOnce
from teleop_devices.browser import BrowserConfig, BrowserDevice
from teleop_devices.remote import SAFETY_STOPS

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"
FILES = {"/": ("operator.html", "text/html"), "/operator.js": ("operator.js", "text/javascript"),
         "/operator.css": ("operator.css", "text/css")}
COOKIE = "dagger_operator"
MAX_MESSAGE = 4096  # one WebSocket message from the page
MESSAGES_PER_S, BURST = 200.0, 400  # the page sends ~50 a second, plus one per input event; a browser starved of
# CPU (a busy machine) sends what its timers queued in one burst: 2 s of it pass
POLL_S = 0.02  # a connection's thread looks for a new view at least this often
SEND_S = 5.0  # a view must go out within this (a page that stops reading is hung up on)
IDLE_S = 30.0  # a page silent this long is gone (a hidden tab's timers still fire once a second)
REPLACED = 4001  # close code: the operator opened the console in another tab
FRAME_HEADER = struct.Struct(">IHH")  # robot id, height, width; then height × width × 3 bytes of RGB
TRACE = 240  # uncertainty samples kept per robot


class WebSettings(Protocol):
    """The part of a run's config the console shows (dagger.config.RunConfig, with a `browser` field)."""

    browser: BrowserConfig
    gate: Any  # .name, .threshold
    task: Any  # .name
    robots: int
    operators: int


class Link:
    """One operator's open socket: the newest view waiting to go out."""

    def __init__(self, op: int, guest: Guest):
        self.op, self.guest = op, guest
        self.lock = threading.Lock()
        self.view: bytes | None = None
        self.frame: bytes | None = None
        self.replaced = False

    def offer(self, view: bytes, frame: bytes | None) -> None:
        with self.lock:
            self.view, self.frame = view, frame

    def take(self) -> tuple[bytes | None, bytes | None]:
        with self.lock:
            out = self.view, self.frame
            self.view = self.frame = None
            return out


def finite(value: Any, digits: int = 4) -> float | None:
    """A number JSON can carry (NaN and infinities are not JSON): rounded, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, digits) if math.isfinite(number) else None


def encode_frame(robot: int, frame: Any) -> bytes | None:
    """A camera frame as the page draws it, or None when it is not an (H, W, 3) uint8 image."""
    image = np.asarray(frame)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or max(image.shape[:2]) > 4096:
        return None
    return FRAME_HEADER.pack(robot, image.shape[0], image.shape[1]) + np.ascontiguousarray(image).tobytes()


class OperatorWeb:
    def __init__(self, cfg: WebSettings, devices: dict[int, BrowserDevice], tokens: dict[int, str],
                 tls: ssl.SSLContext | None):
        host, _, port = cfg.browser.listen.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"browser.listen {cfg.browser.listen!r}: expected HOST:PORT")
        if set(tokens) != set(devices) or any(len(t) < 16 for t in tokens.values()):
            raise ValueError("operator console: one token of at least 16 characters per browser operator")
        self.cfg, self.devices, self.tokens, self.tls = cfg, devices, tokens, tls
        self.files = {path: ((WEB / name).read_bytes(), kind) for path, (name, kind) in FILES.items()}
        self.lock = threading.Lock()
        self.sessions: dict[str, int] = {}  # cookie → operator (one per operator: a new login replaces it)
        self.links: dict[int, Link] = {}
        self.trace: dict[int, deque[float]] = defaultdict(lambda: deque(maxlen=TRACE))
        self.next_view = 0.0
        self.notices: dict[int, str] = {}  # operator → their robot's last safety stop, until their next takeover
        self.refused = LogOnce(log)
        slots = 16 + 2 * len(devices)  # a replacing tab overlaps the one it replaces for a moment
        self.door = Listener(host.strip("[]"), int(port), self._serve, name="operator console", slots=slots,
                             unproven=16, tls=tls)

    def start(self) -> OperatorWeb:
        self.door.start()
        return self

    @property
    def address(self) -> str:
        return self.door.address

    def url(self, op: int) -> str:
        """The page's address with the operator's token in the fragment (the page logs in with it)."""
        host, _, port = self.address.rpartition(":")
        if host in ("0.0.0.0", "::"):
            import socket

            host = socket.gethostname()
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}/#token={self.tokens[op]}"

    def close(self) -> None:
        self.door.close()

    # ---- views (main thread) ----
    def update(self, status: dict[str, Any]) -> None:
        """Records the uncertainty traces; at browser.view_hz, hands each connected operator its newest view."""
        for rid, robot in status["robots"].items():
            value = finite(robot.get("uncertainty"))
            if value is not None:
                self.trace[rid].append(value)
        now, period = time.monotonic(), 1.0 / self.cfg.browser.view_hz
        if now < self.next_view:
            return
        self.next_view = max(self.next_view + period, now - period)  # keeps the rate when polls come unevenly
        with self.lock:
            links = list(self.links.values())
        for link in links:
            view, rid = self.view(status, link.op)
            frame = None if rid is None else status.get("frames", {}).get(rid)
            link.offer(json.dumps(view).encode(), None if rid is None or frame is None else encode_frame(rid, frame))

    def view(self, status: dict[str, Any], op: int) -> tuple[dict[str, Any], int | None]:
        """What operator `op` sees, and the robot it shows: the one it serves (or is offered), else the queue's
        top, else the first robot."""
        c, robots = self.cfg, status["robots"]
        serving = [int(r) for r in status.get("serving", {}).get(op, [])]
        queue = status.get("queue", [])
        order = serving + [q["robot"] for q in queue] + sorted(robots)
        rid = order[0] if order else None
        robot = robots.get(rid, {}) if rid is not None else {}
        offered = robot.get("state") == "operator" and not in_control(robot)
        health = status.get("devices", {}).get(op)
        view = {"kind": "view", "operator": op,
                "title": f"{c.task.name} · gate {c.gate.name} · {c.robots} robots, {c.operators} operator(s)",
                "queue": [{"robot": q["robot"], "reason": reason_text(q["reason"]),
                           "waiting_s": finite(q["waiting_s"], 1), "urgency": finite(q["urgency"], 2)}
                          for q in queue[:14]],
                "robot": None if rid is None else {
                    "id": rid, "state": robot_state(robot), "version": robot.get("version", 0),
                    "look": "waiting" if offered else str(robot.get("state", "")), "yours": rid in serving,
                    "in_control": in_control(robot) and rid in serving, "nudging": nudging(robot),
                    "uncertainty": finite(robot.get("uncertainty"))},
                "trace": list(self.trace.get(rid, ()))[-120:] if rid is not None else [],
                "threshold": finite(status.get("thresholds", {}).get("threshold", c.gate.threshold), 6),
                "serving": serving,
                "device": None if health is None else {
                    "label": str(health["device"]), "present": bool(health["present"]),
                    "rate_hz": finite(health["rate_hz"], 0), "deadman": bool(health["deadman"]),
                    "age_ms": None if health["age_s"] is None else finite(1000 * health["age_s"], 0)},
                "storage": list(storage_lines(status.get("storage", {}))),
                "e_stopped": self.devices[op].e_stopped(), "notice": self.notices.get(op, "")}
        return view, rid

    def events(self, events: list[dict[str, Any]]) -> None:
        """The run's events (main thread): a safety stop of an operator's robot is told on their page."""
        for e in events:
            if e["ev"] == "handback" and e.get("reason") in SAFETY_STOPS and e["operator"] in self.devices:
                self.notices[e["operator"]] = (f"robot {e['robot']} stopped: {reason_text(e['reason'])}; it holds "
                                               "and is back in the queue")
            elif e["ev"] == "takeover" and e["operator"] in self.devices:
                self.notices.pop(e["operator"], None)

    # ---- connections (one thread each) ----
    def _serve(self, guest: Guest) -> None:
        end = time.monotonic() + wire.HANDSHAKE_S
        try:
            request = read_request(guest.sock, end)
        except ValueError as e:
            respond(guest.sock, "400 Bad Request", str(e).encode())
            return
        except (TimeoutError, OSError):
            return
        if request is None:
            return
        route = (request.method, request.path)
        if request.method == "GET" and request.path in self.files:
            body, kind = self.files[request.path]
            respond(guest.sock, "200 OK", body, f"{kind}; charset=utf-8")
        elif route == ("POST", "/login"):
            self._login(guest, request)
        elif route == ("GET", "/ws"):
            self._websocket(guest, request)
        else:
            respond(guest.sock, "404 Not Found", b"not found")

    def _same_origin(self, request: Request, required: bool) -> bool:
        """The Origin header names this server as the browser reached it (a page elsewhere cannot drive it)."""
        origin = request.headers.get("origin")
        if origin is None:
            return not required
        scheme = "https" if self.tls else "http"
        return hmac.compare_digest(origin.lower(), f"{scheme}://{request.headers.get('host', '')}".lower())

    def _login(self, guest: Guest, request: Request) -> None:
        if not self._same_origin(request, required=False):
            respond(guest.sock, "403 Forbidden", b"login from another site")
            return
        given = request.body.strip()
        found = None
        for op, token in self.tokens.items():  # every token compared, in constant time each
            if hmac.compare_digest(given, token.encode()):
                found = op
        if found is None:
            self.refused.warning("operator console %s: a login with a wrong token from %s", self.address,
                                 guest.peer[0], key="token")
            respond(guest.sock, "403 Forbidden", b"wrong token")
            return
        cookie = secrets.token_urlsafe(32)
        with self.lock:
            self.sessions = {c: op for c, op in self.sessions.items() if op != found}
            self.sessions[cookie] = found
        secure = "; Secure" if self.tls else ""
        respond(guest.sock, "200 OK", json.dumps({"operator": found}).encode(), "application/json",
                f"Set-Cookie: {COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict{secure}\r\n")

    def _operator_of(self, request: Request) -> int | None:
        for part in request.headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                with self.lock:
                    return self.sessions.get(value)
        return None

    def _websocket(self, guest: Guest, request: Request) -> None:
        protocol = ServerProtocol(max_size=MAX_MESSAGE)
        protocol.receive_data(request.raw)
        events = protocol.events_received()
        if not events:
            respond(guest.sock, "400 Bad Request", b"not a WebSocket upgrade")
            return
        op = self._operator_of(request)
        if op is None:
            response = protocol.reject(401, "log in first\n")
        elif not self._same_origin(request, required=True):
            response = protocol.reject(403, "a WebSocket from another site\n")
        else:
            response = protocol.accept(events[0])  # type: ignore[arg-type]
        protocol.send_response(response)
        self._flush(guest, protocol)
        if response.status_code != 101 or op is None or not guest.proven():
            return
        link = Link(op, guest)
        with self.lock:
            old = self.links.get(op)
            if old is not None:
                old.replaced = True
            self.links[op] = link
            session = self.devices[op].connected()
        try:
            self._talk(link, protocol, session)
        finally:
            self.devices[op].disconnected(session)
            with self.lock:
                if self.links.get(op) is link:
                    del self.links[op]

    def _talk(self, link: Link, protocol: ServerProtocol, session: int) -> None:
        """The page's messages to its device, views and clock pings to the page, until either side closes."""
        device, sock = self.devices[link.op], link.guest.sock
        protocol.send_text(json.dumps({"kind": "hello", "operator": link.op,
                                       "send_hz": self.cfg.browser.send_hz}).encode())
        bucket, pings = Bucket(MESSAGES_PER_S, BURST), 0
        heard = next_ping = time.monotonic()
        while protocol.state is not State.CLOSED:
            now = time.monotonic()
            if link.replaced and protocol.state is State.OPEN:
                protocol.send_close(REPLACED, "the console was opened in another tab")
            if now >= next_ping and protocol.state is State.OPEN:
                protocol.send_text(json.dumps(device.ping(time.time())).encode())
                pings += 1
                next_ping = now + (0.1 if pings < 4 else 1.0)  # a few quick ones first: the offset at once
            view, frame = link.take()
            if view is not None and protocol.state is State.OPEN:
                protocol.send_text(view)
                if frame is not None:
                    protocol.send_binary(frame)
            if not self._flush(link.guest, protocol):
                return
            sock.settimeout(POLL_S)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if now - heard > IDLE_S:
                    return
                continue
            if not data:
                protocol.receive_eof()
                return
            protocol.receive_data(data)
            for event in protocol.events_received():
                if not isinstance(event, Frame):
                    continue
                if event.opcode is Opcode.TEXT and protocol.state is State.OPEN:
                    heard = time.monotonic()
                    problem = self._message(device, bytes(event.data), session, bucket)
                    if problem:
                        self.refused.warning("operator console: operator %d's page: %s", link.op, problem,
                                             key=problem[:40])
                        protocol.fail(CloseCode.POLICY_VIOLATION, problem[:120])
                        break
                elif event.opcode is Opcode.BINARY:
                    protocol.fail(CloseCode.UNSUPPORTED_DATA, "the page sends text only")
                    break

    @staticmethod
    def _message(device: BrowserDevice, data: bytes, session: int, bucket: Bucket) -> str:
        """"" when the message went to the device, else why it was refused."""
        if not bucket.take():
            return f"more than {MESSAGES_PER_S:.0f} messages a second"
        try:
            device.push(json.loads(data), time.time(), session)
        except (ValueError, RecursionError) as e:
            return str(e)
        return ""

    @staticmethod
    def _flush(guest: Guest, protocol: ServerProtocol) -> bool:
        """Sends what the protocol has to send, within SEND_S; False once the connection is to end."""
        for data in protocol.data_to_send():
            if not data:  # the protocol's end of stream: the close handshake is done
                return False
            guest.sock.settimeout(SEND_S)
            try:
                guest.sock.sendall(data)
            except OSError:  # the tab closed (reset) or stopped reading for SEND_S: its device is lost
                return False
        return True
