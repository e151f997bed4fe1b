"""The browser console's server with a Python client (login, cookie, WebSocket, limits), and the page's messages and
device mappings with hypothesis: a browser device maps input exactly as the local devices do."""

import json
import socket
import subprocess
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from dagger import wire
from dagger.app.operator_web import BURST, MAX_MESSAGE, REPLACED, OperatorWeb
from dagger.app.web_http import MAX_HEADER
from teleop_devices.browser import (
    STANDARD_AXES,
    STANDARD_BUTTONS,
    BrowserConfig,
    BrowserDevice,
    parse_message,
    sdl_state,
)
from teleop_devices.gamepad import AXES, BUTTONS, GamepadConfig, GamepadMapping, GamepadState
from teleop_devices.keyboard import KeyboardConfig, KeyboardTeleop
from tests.browser import Settings, devices, served, status, until

TOKENS = {0: "a" * 32, 1: "b" * 32}


@pytest.fixture
def web():
    with served(TOKENS) as both:
        yield both


def login(server, token, origin=None):
    headers = {"Origin": origin} if origin else {}
    request = urllib.request.Request(f"http://{server.address}/login", data=token.encode(), headers=headers,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.headers["Set-Cookie"], json.loads(r.read())


def socket_of(server, cookie, origin="same"):
    origin = f"http://{server.address}" if origin == "same" else origin
    headers = {"Cookie": cookie.split(";")[0]} if cookie else {}
    return connect(f"ws://{server.address}/ws", additional_headers=headers, origin=origin, proxy=None,
                   open_timeout=10)


def message(kind, seq, **fields):
    return json.dumps({"kind": kind, "seq": seq, "t": 1.7e12, **fields})


def test_login_sets_a_strict_http_only_cookie_and_the_socket_needs_it(web):
    server, devs = web
    cookie, body = login(server, TOKENS[1])
    assert body == {"operator": 1}
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # Secure: under TLS
    with socket_of(server, cookie) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"kind": "hello", "operator": 1, "send_hz": 50.0}
        until(devs[1].present, what="operator 1's device present")
        assert not devs[0].present()
        ws.send(message("input", 0, visible=True, device="keyboard", keys=[]))
        ws.send(message("key", 1, key=" ", down=True))
        until(lambda: devs[1].reading().deadman, what="Space took over")
        server.update(status(devs))
        kinds = set()
        until(lambda: kinds.add(json.loads(m)["kind"] if isinstance(m := ws.recv(timeout=10), str) else "frame")
              or {"view", "ping"} <= kinds, what="a view and a ping")
    until(lambda: not devs[1].present(), what="the closed socket's device gone")


@pytest.mark.parametrize("token, origin", [("c" * 32, None), ("a" * 31, None), ("", None),
                                           (TOKENS[0], "http://evil.example")])
def test_a_wrong_token_or_a_foreign_login_is_refused(web, token, origin):
    server, _ = web
    with pytest.raises(urllib.error.HTTPError) as refused:
        login(server, token, origin)
    assert refused.value.code == 403


@pytest.mark.parametrize("cookie, origin, code", [("", "same", 401), ("dagger_operator=forged", "same", 401),
                                                  ("ok", "http://evil.example", 403), ("ok", None, 403)])
def test_the_socket_needs_the_cookie_and_this_origin(web, cookie, origin, code):
    server, devs = web
    if cookie == "ok":
        cookie, _ = login(server, TOKENS[0])
    with pytest.raises(InvalidStatus) as refused:
        socket_of(server, cookie, origin)
    assert refused.value.response.status_code == code
    assert not devs[0].present()


def test_a_second_tab_replaces_the_first(web):
    server, devs = web
    cookie, _ = login(server, TOKENS[0])
    with socket_of(server, cookie) as first, socket_of(server, login(server, TOKENS[0])[0]) as second:
        second_tab_drives(server, devs, first, second, cookie)


def second_tab_drives(server, devs, first, second, cookie):
    """Logging in again forgets the old cookie; the newer socket closes the older one."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            first.recv(timeout=10)
    assert closed.value.rcvd.code == REPLACED
    with pytest.raises(InvalidStatus):
        socket_of(server, cookie)
    second.send(message("input", 0, visible=True, device="keyboard", keys=[]))
    second.send(message("key", 1, key=" ", down=True))
    until(lambda: devs[0].reading().deadman, what="the second tab drives")


@pytest.mark.parametrize("bad", ["oversized", "flood", "not json", "bad field", "binary", "deep"])
def test_a_page_that_breaks_the_rules_is_cut_off_and_others_go_on(web, bad):
    server, devs = web
    with socket_of(server, login(server, TOKENS[1])[0]) as other, socket_of(server, login(server, TOKENS[0])[0]) as ws:
        break_a_rule(devs, bad, other, ws)


def break_a_rule(devs, bad, other, ws):
    until(devs[0].present, what="connected")
    breaking = {"oversized": [message("key", 0, key="x" * MAX_MESSAGE, down=True)],
                "flood": [message("input", seq, visible=True, device="keyboard", keys=[]) for seq in range(3 * BURST)],
                "not json": ["{"], "bad field": [message("input", 0, visible="yes", device="keyboard", keys=[])],
                "binary": [b"\x00" * 10], "deep": ["[" * 2000]}[bad]
    with pytest.raises(ConnectionClosed) as closed:  # the server may close before the last one is sent
        for data in breaking:
            ws.send(data)
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is None or closed.value.rcvd.code in (1003, 1008, 1009)
    until(lambda: not devs[0].present(), what="the rule breaker's device gone")
    other.send(message("input", 0, visible=True, device="keyboard", keys=["d"]))
    other.send(message("key", 1, key=" ", down=True))
    until(lambda: devs[1].reading().deadman, what="the other operator still drives")


def test_strangers_cannot_hold_the_door_shut(web):
    server, devs = web
    address = (server.address.rsplit(":", 1)[0], int(server.address.rsplit(":", 1)[1]))
    with socket_of(server, login(server, TOKENS[0])[0]) as ws:
        strangers = [socket.create_connection(address, timeout=10) for _ in range(40)]  # silent: never a request
        huge = socket.create_connection(address, timeout=10)
        huge.sendall(b"GET / HTTP/1.1\r\nX: " + b"y" * (MAX_HEADER + 100))  # headers without an end
        assert huge.recv(100).startswith(b"HTTP/1.1 400")
        cookie, _ = login(server, TOKENS[1])  # a holder of a token still gets in
        with socket_of(server, cookie) as second:
            assert json.loads(second.recv(timeout=10))["kind"] == "hello"
        ws.send(message("input", 0, visible=True, device="keyboard", keys=[]))
        ws.send(message("key", 1, key=" ", down=True))
        until(lambda: devs[0].reading().deadman, what="the logged-in operator drives on")
        for s in [*strangers, huge]:
            s.close()


def test_the_page_is_served_with_headers_that_keep_it_to_itself(web):
    server, _ = web
    with urllib.request.urlopen(f"http://{server.address}/", timeout=10) as r:
        page = r.read().decode()
        assert r.headers["X-Frame-Options"] == "DENY" and "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert "/operator.js" in page and "http" not in page.replace("http-equiv", "")  # nothing from elsewhere
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://{server.address}/../setup.cfg", timeout=10)
    assert missing.value.code == 404


# ---- the page's messages and the mappings ----
def device(clock=lambda: 100.0, **config):
    d = BrowserDevice(BrowserConfig(**config), GamepadConfig(), KeyboardConfig(), act_dim=2, clock=clock)
    return d, d.connected()


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                                        max_size=5), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries(
    {"kind": st.sampled_from(["input", "key", "button", "pong"]), "seq": json_values, "t": json_values},
    optional={"visible": json_values, "device": st.sampled_from(["gamepad", "keyboard", "phone", "xr", "x"]),
              "keys": json_values, "pad": json_values, "phone": json_values, "xr": json_values,
              "key": json_values, "down": json_values, "name": json_values, "id": json_values})))
def test_any_message_parses_or_fails_naming_a_field(value):
    try:
        parse_message(value)
    except ValueError as e:
        assert str(e).startswith("browser message field '")


pad_states = st.builds(
    lambda axes, buttons: GamepadState(axes, buttons, 99.99),
    st.fixed_dictionaries({name: st.floats(-1, 1) for name in AXES[:4]}
                          | {name: st.floats(0, 1) for name in AXES[4:]}),
    st.fixed_dictionaries({name: st.booleans() for name in BUTTONS}))


@settings(max_examples=200, deadline=None)
@given(pad_states)
def test_a_standard_layout_pad_maps_exactly_as_the_sdl_pad(state):
    """The page's Gamepad API arrays, translated to SDL's names, give what GamepadMapping gives the SDL pad."""
    axes = [state.axes[name] for name in STANDARD_AXES]
    buttons = [bool(name) and state.buttons[name] for name in STANDARD_BUTTONS]
    values = [float(b) for b in buttons]
    values[6], values[7] = state.axes["triggerleft"], state.axes["triggerright"]
    assert sdl_state({"axes": axes, "buttons": buttons, "values": values}, 99.99) == state
    d, session = device()
    d.push({"kind": "input", "seq": 0, "t": 0.0, "visible": True, "device": "gamepad", "keys": [],
            "pad": {"id": "pad", "axes": axes, "buttons": buttons, "values": values}}, now=99.99, session=session)
    got, want = d.reading(), GamepadMapping(GamepadConfig(), 2).reading(state, now=100.0)
    assert (got.action is None) == (want.action is None)
    assert got.action is None or np.array_equal(got.action, want.action)
    assert (got.takeover, got.deadman, got.hand_back, got.e_stop, got.skip, got.mark) == \
        (want.takeover, want.deadman, want.hand_back, want.e_stop, want.skip, want.mark)
    assert got.age_s == pytest.approx(0.01) and got.t_read == 99.99


keys = st.sampled_from([" ", "Enter", "Escape", "Tab", "w", "a", "s", "d", "q", "e", "1", "0", "W", "D"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(keys, st.booleans()), max_size=30))
def test_browser_keys_drive_the_keyboard_state_machine(events):
    d, session = device()
    kb = KeyboardTeleop(KeyboardConfig(), act_dim=2)
    d.push({"kind": "input", "seq": 0, "t": 0.0, "visible": True, "device": "keyboard", "keys": []}, 100.0, session)
    names = {" ": "space", "Enter": "return", "Escape": "escape", "Tab": "tab"}
    for seq, (key, down) in enumerate(events, start=1):
        d.push({"kind": "key", "seq": seq, "t": 0.0, "key": key, "down": down}, 100.0, session)
        (kb.press if down else kb.release)(names.get(key, key.lower()))
    got, want = d.reading(), kb.reading(now=100.0)
    assert (got.takeover, got.deadman, got.hand_back, got.e_stop, got.skip, got.mark) == \
        (want.takeover, want.deadman, want.hand_back, want.e_stop, want.skip, want.mark)
    assert (got.action is None and want.action is None) or np.array_equal(got.action, want.action)


@settings(max_examples=200, deadline=None)
@given(st.floats(-180, 180), st.floats(-90, 90), st.floats(-60, 60), st.floats(-60, 60))
def test_phone_tilt_from_where_the_hold_began(beta, gamma, d_beta, d_gamma):
    d, session = device(tilt_deg=30.0, deadzone=0.0)
    for seq, (b, g) in enumerate([(beta, gamma), (beta + d_beta, gamma + d_gamma)]):
        b, g = (b + 180) % 360 - 180, min(90, max(-90, g))
        d.push({"kind": "input", "seq": seq, "t": 0.0, "visible": True, "device": "phone", "keys": [],
                "phone": {"beta": b, "gamma": g, "hold": True}}, 100.0, session)
    r = d.reading()
    d_gamma = min(90, max(-90, gamma + d_gamma)) - gamma
    assert r.deadman and r.takeover
    assert r.action == pytest.approx([np.clip(d_gamma / 30, -1, 1), np.clip(-d_beta / 30, -1, 1)], abs=1e-9)


def test_the_clock_offset_comes_from_the_quickest_round_trip():
    d, session = device()
    for seq, (sent, back, page_ms) in enumerate([(10.0, 10.5, 60_400.0), (11.0, 11.02, 61_010.0),
                                                 (12.0, 12.3, 62_200.0)]):
        ping = d.ping(sent)
        d.push({"kind": "pong", "seq": seq, "t": page_ms, "id": ping["id"]}, back, session)
    assert d.clock_offset() == pytest.approx(61.010 - 11.01)  # the 20 ms round trip wins
    d.push({"kind": "input", "seq": 5, "t": 61_010.0, "visible": True, "device": "keyboard", "keys": []}, 12.4,
           session)
    assert d.reading().link_s == pytest.approx(0.01)  # half the quickest round trip: the link's one-way floor
    with pytest.raises(ValueError, match="'id'"):
        d.push({"kind": "pong", "seq": 9, "t": 0.0, "id": 77}, 12.0, session)  # not a ping this side sent
    with pytest.raises(ValueError, match="'seq'"):
        d.push({"kind": "pong", "seq": 1, "t": 0.0, "id": 1}, 12.0, session)  # a number used before


def test_a_replaced_session_is_ignored_and_a_lost_one_reads_released():
    d, old = device()
    new = d.connected()
    d.push({"kind": "key", "seq": 0, "t": 0.0, "key": " ", "down": True}, 100.0, old)
    d.push({"kind": "input", "seq": 0, "t": 0.0, "visible": True, "device": "keyboard", "keys": []}, 100.0, new)
    assert not d.reading().deadman  # the old tab's Space never counted
    d.disconnected(old)
    assert d.present()
    d.disconnected(new)
    assert not d.present() and not d.reading().deadman


def test_under_tls_the_cookie_is_secure_and_the_socket_is_wss(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dagger",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    devs = devices(1)
    server = OperatorWeb(Settings(), devs, {0: TOKENS[0]}, tls=wire.server_tls(cert, key)).start()
    try:
        assert server.url(0).startswith("https://127.0.0.1:")
        trust = wire.client_tls(cert)
        request = urllib.request.Request(f"https://{server.address}/login", data=TOKENS[0].encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10, context=trust) as r:
            cookie = r.headers["Set-Cookie"]
        assert "; Secure" in cookie
        with connect(f"wss://{server.address}/ws", ssl=trust, origin=f"https://{server.address}", proxy=None,
                     additional_headers={"Cookie": cookie.split(";")[0]}, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["kind"] == "hello"
            until(devs[0].present, what="present over TLS")
    finally:
        server.close()


def test_an_e_stop_stays_latched_until_the_operator_releases_it():
    d, session = device()
    button = {"kind": "button", "t": 0.0}
    d.push({"kind": "input", "seq": 0, "t": 0.0, "visible": True, "device": "keyboard", "keys": []}, 100.0, session)
    d.push({**button, "seq": 1, "name": "e_stop"}, 100.0, session)
    assert d.e_stopped() and d.reading().e_stop and d.reading().e_stop  # not a one-shot: it holds every robot
    d.push({**button, "seq": 2, "name": "takeover"}, 100.0, session)
    assert d.reading().e_stop
    d.push({**button, "seq": 3, "name": "release_e_stop"}, 100.0, session)
    assert not d.e_stopped() and not d.reading().e_stop


def test_a_safety_stop_of_an_operators_robot_is_told_on_their_page_until_their_next_takeover(web):
    server, devs = web
    server.events([{"ev": "handback", "t": 1.0, "robot": 3, "operator": 1, "reason": "stale_input"},
                   {"ev": "handback", "t": 1.0, "robot": 2, "operator": 0, "reason": "released"}])
    assert server.view(status(devs), 1)[0]["notice"] == ("robot 3 stopped: input went stale; it holds and is back in "
                                                         "the queue")
    assert server.view(status(devs), 0)[0]["notice"] == ""  # a hand-back is no stop
    server.events([{"ev": "takeover", "t": 2.0, "robot": 4, "operator": 1}])
    assert server.view(status(devs), 1)[0]["notice"] == ""


def test_a_takeover_is_timed_from_its_first_message_not_the_newest_of_a_burst():
    d, session = device(clock=lambda: 10.2)
    d.offset = -0.01  # as the pings set it: the page's 9.99 s is 10.0 s here
    pad = {"id": "pad", "axes": [0.0] * 4, "buttons": [False] * 17, "values": [0.0] * 17}
    held = {**pad, "buttons": [i == 4 for i in range(17)]}  # LB: the deadman
    burst = [(pad, 9_900.0), (held, 9_950.0), (held, 9_970.0), (held, 9_990.0)]  # all arrive at 10.0 s
    for seq, (state, page_ms) in enumerate(burst):
        d.push({"kind": "input", "seq": seq, "t": page_ms, "visible": True, "device": "gamepad", "keys": [],
                "pad": state}, 10.0, session)
    r = d.reading()
    assert r.takeover and r.t_read == pytest.approx(10.0)
    assert r.t_engaged == pytest.approx(9.96)  # the press at 9 950 ms, not the newest message
    d.push({"kind": "input", "seq": 9, "t": 10_000.0, "visible": True, "device": "gamepad", "keys": [], "pad": pad},
           10.02, session)
    assert d.reading().t_engaged is None  # let go: the next press starts a new takeover
