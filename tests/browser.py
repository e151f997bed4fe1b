"""Headless Chromium for the operator page, with input devices a test drives, and a console fed synthetic status.

    with chromium() as browser:                       # Debian's /usr/bin/chromium through Playwright, once a session
        page = open_page(browser, web.url(0))         # a context of its own per operator, fakes injected
        page.evaluate("window.__pad.axes[0] = 0.8")   # the synthetic gamepad (standard layout), read by the page
        page.evaluate("window.__tilt(10, -20)")       # a deviceorientation event: beta, gamma in degrees
        page.evaluate("window.__xr.trigger = true")   # the fake WebXR controller: pos [x, y, z] metres, trigger

`make test` installs chromium (Playwright's own browser download needs the internet).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from teleop_devices.browser import BrowserConfig, BrowserDevice
from teleop_devices.gamepad import GamepadConfig
from teleop_devices.keyboard import KeyboardConfig

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FAKES = """
(() => {
  const button = () => ({ pressed: false, touched: false, value: 0 });
  window.__pad = { id: "Synthetic pad (STANDARD GAMEPAD)", index: 0, connected: true, mapping: "standard",
                   timestamp: 0, axes: [0, 0, 0, 0], buttons: Array.from({ length: 17 }, button) };
  window.__padPlugged = false;
  navigator.getGamepads = () => [window.__padPlugged ? window.__pad : null, null, null, null];
  window.__plugPad = () => { window.__padPlugged = true; window.dispatchEvent(new Event("gamepadconnected")); };
  window.__press = (i, on) => { const b = window.__pad.buttons[i]; b.pressed = on; b.value = on ? 1 : 0; };
  window.__tilt = (beta, gamma) =>
    window.dispatchEvent(new DeviceOrientationEvent("deviceorientation", { alpha: 0, beta, gamma }));
  window.__hide = (hidden) => {
    Object.defineProperty(document, "visibilityState", { get: () => (hidden ? "hidden" : "visible"),
                                                         configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
  };
  window.__xr = { pos: [0, 1.2, -0.3], trigger: false, sessions: 0 };
  const source = { handedness: "right", gripSpace: {}, gamepad: {
    get buttons() { return [{ pressed: window.__xr.trigger, value: window.__xr.trigger ? 1 : 0 }]; } } };
  const pose = () => {
    const [x, y, z] = window.__xr.pos;
    return { transform: { position: { x, y, z } } };
  };
  const session = { inputSources: [source], ended: false, listeners: [],
    requestReferenceSpace: async () => ({}),
    requestAnimationFrame: (callback) => setTimeout(() => { if (!session.ended) callback(performance.now(),
                                                                                           { getPose: pose }); }, 10),
    addEventListener: (kind, callback) => { if (kind === "end") session.listeners.push(callback); },
    end: async () => { session.ended = true; session.listeners.forEach((f) => f()); } };
  Object.defineProperty(navigator, "xr", { configurable: true, value: {
    isSessionSupported: async () => true,
    requestSession: async () => { window.__xr.sessions += 1; return session; } } });
})();
"""


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright; a clear failure where it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: `make browser` (or apt-get install chromium) installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)  # a fresh profile of Playwright's own
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, url: str, viewport: tuple[int, int] = (1280, 760)) -> Any:
    """A page in a context of its own (its own cookies: one operator), the device fakes injected before any script."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    context.add_init_script(FAKES)
    page = context.new_page()
    page.goto(url)
    return page


def until(check: Callable[[], Any], pump: Callable[[], None] = lambda: None, what: str = "condition",
          limit_s: float = 15.0) -> Any:
    """check()'s first truthy result, calling pump() between tries (a test's main loop: web.update(status))."""
    end = time.monotonic() + limit_s
    while True:
        pump()
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not reached within {limit_s:.0f} s")
        time.sleep(0.02)


@dataclass
class Settings:
    """The part of a run's config the console reads (dagger.app.operator_web.WebSettings)."""

    browser: BrowserConfig = field(default_factory=lambda: BrowserConfig(listen="127.0.0.1:0"))
    gate: Any = field(default_factory=lambda: SimpleNamespace(name="ensemble", threshold=0.05))
    task: Any = field(default_factory=lambda: SimpleNamespace(name="point_reach"))
    robots: int = 4
    operators: int = 2


@contextlib.contextmanager
def served(tokens: dict[int, str]) -> Iterator[tuple[Any, dict[int, BrowserDevice]]]:
    """An OperatorWeb for one browser operator per token, fed by the test (no fleet): (web, devices)."""
    from dagger.app.operator_web import OperatorWeb

    devs = devices(len(tokens))
    web = OperatorWeb(Settings(), devs, tokens, tls=None).start()
    try:
        yield web, devs
    finally:
        web.close()


def devices(n: int, act_dim: int = 2, config: BrowserConfig | None = None) -> dict[int, BrowserDevice]:
    return {op: BrowserDevice(config or BrowserConfig(), GamepadConfig(), KeyboardConfig(), act_dim) for op in range(n)}


def camera(h: int = 96, w: int = 128, shift: int = 0) -> np.ndarray:
    """A synthetic camera frame: a floor gradient, a target and the robot's disc."""
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([40 + 60 * y / h, 60 + 80 * y / h, 90 + 90 * x / w], axis=-1)
    for (cy, cx, r), color in (((30, 90, 9), (240, 190, 60)), ((60, 30 + shift % 50, 11), (80, 180, 240))):
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = color
    return image.astype(np.uint8)


def status(devices: dict[int, BrowserDevice], step: int = 0, storage_ok: bool = True) -> dict[str, Any]:
    """A fleet's status as the supervisor reports it: robot 0 served by operator 0, two robots waiting."""
    robots = {0: {"state": "operator", "controller": "operator", "uncertainty": 0.07 + 0.03 * np.sin(step / 5),
                  "operator": 0, "version": 12},
              1: {"state": "waiting", "controller": "policy", "uncertainty": 0.09, "operator": -1, "version": 12},
              2: {"state": "waiting", "controller": "policy", "uncertainty": 0.06, "operator": -1, "version": 11},
              3: {"state": "autonomous", "controller": "policy", "uncertainty": 0.02, "operator": -1, "version": 12}}
    health = {op: {"device": device.label, "present": device.present(), "rate_hz": device.rate_hz(), "age_s": 0.012,
                   "deadman": False} for op, device in devices.items()}  # no reading(): it would take the one-shots
    storage = {"ok": True} if storage_ok else {"ok": False, "for_s": 3.0, "stops_in_s": 57.0,
                                                "error": "OSError: [Errno 28] No space left on device"}
    return {"robots": robots, "frames": {0: camera(shift=step), 1: camera(shift=25)},
            "queue": [{"robot": 1, "reason": "ensemble", "waiting_s": 4.2, "urgency": 0.81},
                      {"robot": 2, "reason": "stale_input", "waiting_s": 1.5, "urgency": 0.42}],
            "serving": {0: [0]}, "devices": health, "thresholds": {"threshold": 0.05}, "storage": storage}
