"""The operator page in real headless Chromium against a real OperatorWeb fed synthetic status (no fleet): it logs in,
shows the queue and the camera, and every device it reads reaches BrowserDevice.reading()."""

import numpy as np
import pytest

from dagger.app.operator_web import OperatorWeb
from teleop_devices.browser import BrowserConfig
from tests.browser import Settings, chromium, devices, open_page, served, status, until

TOKENS = {0: "operator-zero-" + "0" * 24, 1: "operator-one-" + "1" * 24}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def console():
    with served(TOKENS) as both:
        yield both


def pump(web, devs, step=[0]):  # noqa: B006 - the step counter lives across calls on purpose
    step[0] += 1
    web.update(status(devs, step[0]))


def logged_in(browser, console, kind="", viewport=(1280, 760)):
    """Operator 0's page, live, with `kind` chosen as its device; (page, web, devices)."""
    web, devs = console
    page = open_page(browser, web.url(0), viewport=viewport)
    live(page, web, devs)
    if kind:
        page.click(f"[data-kind={kind}]")
    return page, web, devs


def live(page, web, devs):
    """The page logged in and drawing views."""
    until(lambda: page.locator("#console").is_visible() and page.locator("#queue tr").count() > 0,
          lambda: pump(web, devs), "the page logged in and shows the queue")


def reading_of(device, web, devs, check, what):
    def probe():
        r = device.reading()
        return r if check(r) else None
    return until(probe, lambda: pump(web, devs), what)


def test_page_logs_in_shows_the_queue_and_camera_and_looks_right(browser, console, tmp_path):
    page, web, devs = logged_in(browser, console)
    until(lambda: page.locator("#no-frame").is_hidden(), lambda: pump(web, devs), "a camera frame drawn")
    assert "token" not in page.url  # the fragment left the address bar
    rows = page.locator("#queue tr").all_inner_texts()
    assert "policy unsure" in rows[0] and "input went stale" in rows[1]
    assert "robot 0" in page.locator("#robot-title").inner_text()
    assert page.locator("#robot-badge").inner_text() == "you are in control"
    assert "0.0500" in page.locator("#threshold").inner_text()
    pixel = page.evaluate("Array.from(document.getElementById('camera').getContext('2d')"
                          ".getImageData(320, 240, 1, 1).data)")
    assert pixel[3] == 255 and sum(pixel[:3]) > 60  # the frame, not the empty canvas
    for _ in range(60):
        pump(web, devs)  # a trace to draw
    page.wait_for_timeout(200)
    shot = tmp_path / "operator-console.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_wrong_token_shows_the_login_form(browser, console):
    web, devs = console
    page = open_page(browser, web.url(0).replace(TOKENS[0], "x" * 32))
    until(lambda: page.locator("#login-error").inner_text() == "wrong token", what="login refused")
    page.fill("#token", TOKENS[1])
    page.click("#login button")
    live(page, web, devs)
    assert page.locator("#who").inner_text() == "operator 1"


def test_gamepad_reaches_the_device_as_the_mapping_reads_it(browser, console):
    page, web, devs = logged_in(browser, console)
    page.evaluate("window.__plugPad()")  # auto-detected: the page switches to the gamepad
    page.evaluate("window.__pad.axes[0] = 0.8; window.__pad.axes[1] = -1; window.__press(4, true)")  # LB: deadman
    r = reading_of(devs[0], web, devs, lambda r: r.deadman, "the shoulder held")
    assert r.takeover and np.allclose(r.action, [(0.8 - 0.1) / 0.9, 1.0])  # GamepadConfig: deadzone 0.1, -lefty
    assert devs[0].label.startswith("browser gamepad (Synthetic pad")
    page.evaluate("window.__press(4, false); window.__press(1, true)")  # B hands back
    r = reading_of(devs[0], web, devs, lambda r: r.hand_back, "B pressed")
    assert not r.deadman and r.action is None


def test_a_pad_button_goes_out_when_pressed_not_at_the_next_send(browser):
    """The Gamepad API fires no events: the page polls the pad's buttons and sends a change at once, so the takeover
    input's time (t_read, where the takeover latency starts) is when the shoulder was pressed, not up to a send
    period later (here 1 s)."""
    config = BrowserConfig(listen="127.0.0.1:0", send_hz=1.0)
    devs = devices(1, config=config)
    web = OperatorWeb(Settings(browser=config, operators=1), devs, {0: TOKENS[0]}, tls=None).start()
    try:
        page = open_page(browser, web.url(0))
        live(page, web, devs)
        page.evaluate("window.__plugPad()")
        reading_of(devs[0], web, devs, lambda r: devs[0].label.startswith("browser gamepad"), "the pad chosen")
        for _ in range(3):
            pressed = page.evaluate("window.__press(4, true); performance.timeOrigin + performance.now()") / 1000
            r = reading_of(devs[0], web, devs, lambda r: r.deadman, "the shoulder held")
            assert r.t_read is not None and r.t_read - pressed < 0.1
            page.evaluate("window.__press(4, false)")
            reading_of(devs[0], web, devs, lambda r: not r.deadman, "the shoulder released")
    finally:
        web.close()


def test_keyboard_and_page_buttons_drive_the_keyboard_state_machine(browser, console):
    page, web, devs = logged_in(browser, console, "keyboard")
    page.keyboard.press(" ")
    page.keyboard.down("d")
    r = reading_of(devs[0], web, devs, lambda r: r.action is not None and r.action[0] > 0, "Space then d held")
    assert r.deadman and np.allclose(r.action, [0.5, 0.0])
    page.keyboard.up("d")
    page.click("[data-button=mark_success]")
    assert reading_of(devs[0], web, devs, lambda r: r.mark, "marked").mark == "success"
    page.click("[data-button=hand_back]")
    r = reading_of(devs[0], web, devs, lambda r: r.hand_back, "handed back")
    assert not r.deadman and r.action is None
    page.click("[data-button=takeover]")
    assert reading_of(devs[0], web, devs, lambda r: r.deadman, "taken over by the button").takeover
    page.click("[data-button=e_stop]")
    assert reading_of(devs[0], web, devs, lambda r: r.e_stop, "e-stop").deadman is False


def test_phone_tilt_drives_while_the_hold_button_is_held(browser, console):
    page, web, devs = logged_in(browser, console, "phone", viewport=(390, 844))
    page.evaluate("window.__tilt(40, 5)")
    page.locator("#hold").dispatch_event("pointerdown", {"pointerId": 1})
    reading_of(devs[0], web, devs, lambda r: r.deadman, "the hold button held")
    page.evaluate("window.__tilt(40 - 15, 5 + 30)")  # top tilted away 15°, rolled right 30° (full deflection)
    r = reading_of(devs[0], web, devs, lambda r: r.action is not None and r.action[0] > 0.9, "tilted")
    assert r.takeover and np.allclose(r.action, [1.0, (0.5 - 0.05) / 0.95])
    page.locator("#hold").dispatch_event("pointerup", {"pointerId": 1})
    assert reading_of(devs[0], web, devs, lambda r: not r.deadman, "released").action is None


def test_xr_controller_moves_from_where_the_trigger_was_pulled(browser, console):
    page, web, devs = logged_in(browser, console, "xr")
    page.click("#xr-enter")
    page.evaluate("window.__xr.pos = [0.1, 1.0, -0.4]; window.__xr.trigger = true")
    reading_of(devs[0], web, devs, lambda r: r.deadman, "the trigger pulled")
    page.evaluate("window.__xr.pos = [0.2, 1.0, -0.5]")  # 10 cm right, 10 cm forward: half of xr_reach_m
    r = reading_of(devs[0], web, devs, lambda r: r.action is not None and r.action[0] > 0.4, "moved")
    assert np.allclose(r.action, [(0.5 - 0.05) / 0.95] * 2)
    page.evaluate("window.__xr.trigger = false")
    assert reading_of(devs[0], web, devs, lambda r: not r.deadman, "trigger released").action is None


def test_a_hidden_tab_releases_the_deadman_and_a_closed_one_is_gone(browser, console):
    page, web, devs = logged_in(browser, console, "keyboard")
    page.keyboard.press(" ")
    reading_of(devs[0], web, devs, lambda r: r.deadman, "taken over")
    page.evaluate("window.__hide(true)")
    r = reading_of(devs[0], web, devs, lambda r: not r.deadman, "hidden")
    assert r.action is None and not r.takeover
    page.evaluate("window.__hide(false)")
    pump(web, devs)
    assert not devs[0].reading().deadman  # hiding the tab let go; coming back does not take over again
    page.close()
    until(lambda: not devs[0].present(), lambda: pump(web, devs), "the closed tab's device gone")
