"""Takeover latency of a browser operator, end to end: the page's gamepad input → the first human action applied at
the robot, p50 / p99, on loopback and from another host 50 ms away each way; next to a local device's in the same run.

Each setting is a real Ray fleet (point task at real time, robots asking for help all the time) with two operators:
operator 0 at the operator page in headless Chromium (a synthetic gamepad: the left shoulder held to take over, the
stick pushed, B to hand back) and operator 1 a SpaceMouse replayed byte for byte through the real driver
(teleop_devices.fakes), read by the station in this process. The latency columns are the run's own (events.jsonl's
takeover `latency_s`, what `dagger report` shows). "independent" measures the same thing without the product's clock
work: the input's time where it happened (the page's clock when the script pressed the shoulder; this process's
clock when it queued the SpaceMouse's report: one machine, one clock) to the takeover event's time. Frames/s: the
page's binary camera messages while it showed a robot served by its operator.

Setting (b) starts Chromium in a network namespace of its own (tests/netfaults.py) reaching the page through a
user-space proxy that holds every chunk 50 ms each way. Needs root, `ip netns`, /usr/bin/chromium and playwright.

    python benchmarks/browser_latency.py [--takeovers 30] [--robots 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the browser and network helpers

from dagger.app.start import serve_operators  # noqa: E402
from dagger.app.words import in_control  # noqa: E402
from dagger.config import load_config  # noqa: E402
from dagger.events import read_events  # noqa: E402
from teleop_devices.browser import BrowserDevice  # noqa: E402
from teleop_devices.fakes import FakeHid, buttons, motion  # noqa: E402
from teleop_devices.human import SpaceMouseOperator  # noqa: E402
from teleop_devices.spacemouse import SpaceMouse  # noqa: E402
from tests.browser import CHROMIUM, FAKES, FLAGS  # noqa: E402
from tests.netfaults import Faults, FaultyProxy, Network, unavailable  # noqa: E402

BROWSER, LOCAL = 0, 1  # operator ids
DRIVE_S = 0.3  # each takeover drives this long before handing back
MATCH_S = 3.0  # a takeover further than this from the press before it was not that press's (see `match`)
WAIT_S = 20.0  # a step of the script that does not come within this fails the setting
SETTLE_S = 0.2  # the shoulder let go this long before an offer or a press: no held reading on its way (+ 50 ms)
START_S = 120.0  # the first robot offered: after the run's start (demonstrations, pretraining, Ray actors)
COUNTER = """
(() => {  // the page's socket, watched: each view (whether it shows a robot served by this operator) and each frame
  const Native = window.WebSocket;
  window.__views = []; window.__frames = []; window.__view = null;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        const t = performance.now();
        if (typeof e.data !== "string") { window.__frames.push(t); return; }
        const m = JSON.parse(e.data);
        if (m.kind !== "view") return;
        window.__view = m;
        window.__views.push([t, Boolean(m.robot && m.robot.yours)]);
      });
    }
  };
  window.__clock = () => performance.timeOrigin + performance.now();
})();
"""
VIEW = "(() => { const r = window.__view && window.__view.robot; return r && r.yours ? [r.id, r.in_control] : null })()"

RELEASE = "window.__press(1, false); window.__press(4, false); window.__pad.axes[0] = 0"


@dataclass
class Script:
    """One operator's presses (when the takeover input happened, this machine's clock) and the handbacks seen."""

    presses: list[float] = field(default_factory=list)
    handed_back: threading.Event = field(default_factory=threading.Event)
    released: float = 0.0  # when the script last let go of the shoulder
    assigned: dict[int, float] = field(default_factory=dict)  # robot → when it was last offered to this operator


def browser_operator(url: str, executable: str, takeovers: int, script: Script, out: dict[str, Any],
                     done: threading.Event, offered: Any) -> None:
    """The page's operator: whenever a robot is offered, the shoulder pressed (and the stick), DRIVE_S of driving,
    B until the robot is handed back, then both released. `offered(robot)`: the run's newest status offers it to
    this operator and the station has long had the shoulder released, so a takeover after the press answers it.
    Playwright's sync API keeps to this thread."""
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=FLAGS)  # a fresh profile of its own
            context = browser.new_context(viewport={"width": 1280, "height": 760})
            context.add_init_script(FAKES)
            context.add_init_script(COUNTER)
            page = context.new_page()
            page.goto(url)
            page.evaluate("window.__plugPad()")

            def wait(check: Any, what: str, limit_s: float = WAIT_S) -> Any:
                end = time.monotonic() + limit_s
                while not (got := check()):
                    if time.monotonic() > end:
                        shows = page.evaluate("[document.getElementById('link').textContent, "
                                              "document.getElementById('robot-title').textContent]")
                        raise TimeoutError(f"browser operator: {what} not within {limit_s:.0f} s (the page: {shows})")
                    time.sleep(0.005)
                return got

            first = START_S
            while len(script.presses) < takeovers:
                robot, held = wait(lambda: page.evaluate(VIEW), "a robot offered", first)
                first = WAIT_S
                script.handed_back.clear()
                if held:  # the next robot, offered while the shoulder was still held, taken unasked: let go
                    page.evaluate(RELEASE)
                    script.released = time.time()
                    wait(lambda r=robot: page.evaluate(VIEW) != [r, True], f"robot {robot} (taken unasked) let go")
                    continue
                ready = offered(robot)
                if ready == "skip":  # offered while the shoulder was held: skipped (see `offered` in `setting`)
                    page.evaluate("window.__press(8, true)")
                    wait(script.handed_back.is_set, f"robot {robot} skipped")
                    page.evaluate("window.__press(8, false)")
                    wait(lambda r=robot: page.evaluate(VIEW) != [r, False], f"robot {robot} skipped on the page")
                    continue
                if not ready:
                    time.sleep(0.005)
                    continue
                script.presses.append(page.evaluate(
                    "window.__pad.axes[0] = 0.6; window.__press(4, true); window.__clock()") / 1000)
                wait(lambda r=robot: page.evaluate(VIEW) == [r, True], f"robot {robot} in control")
                time.sleep(DRIVE_S)
                page.evaluate("window.__press(1, true)")  # B, the shoulder still held: hand back
                wait(script.handed_back.is_set, "the handback")
                page.evaluate(RELEASE)
                script.released = time.time()
                wait(lambda r=robot: page.evaluate(VIEW) != [r, True], f"robot {robot} handed back on the page")
            out["views"], out["frames"] = page.evaluate("[window.__views, window.__frames]")
            browser.close()
    except BaseException as err:  # noqa: BLE001 - reported by the setting
        out["error"] = err
    finally:
        done.set()


class LocalOperator:
    """Operator 1's SpaceMouse, replayed through the real driver: driven from the run's status on the main thread."""

    def __init__(self, script: Script):
        self.hid, self.script = FakeHid(), script
        self.device = SpaceMouseOperator(SpaceMouse(self.hid, name="SpaceMouse (replayed)"), act_dim=2)
        self.robot: int | None = None
        self.since = 0.0

    def update(self, status: dict[str, Any]) -> None:
        served = status.get("serving", {}).get(LOCAL, [])
        if self.robot is None and served:
            robot = served[0]
            state = status["robots"].get(robot, {})
            if state.get("state") != "operator":
                return  # a status older than the handback
            self.robot, self.since = robot, time.time()
            if not in_control(state):  # offered (else a still-held button took it: it is handed back)
                self.script.presses.append(time.time())
                self.hid.push(buttons(0b01), motion(x=200))
        elif self.robot is not None and time.time() - self.since >= DRIVE_S:
            self.hid.push(buttons(0b11))  # hand back (the deadman still held)

    def events(self, events: list[dict[str, Any]]) -> None:
        if any(e["ev"] == "handback" and e["operator"] == LOCAL for e in events):
            self.hid.push(buttons(0))
            self.robot = None


def match(takeovers: list[dict], presses: list[float]) -> list[tuple[dict, float]]:
    """Each takeover with the press it answered: the newest press before it, not yet answered, within MATCH_S. A
    takeover with none (a robot offered while the shoulder was still held from the last one) is left out."""
    pairs, used = [], set()
    for e in sorted(takeovers, key=lambda e: e["t"]):
        before = [i for i, t in enumerate(presses) if t <= e["t"] and i not in used]
        if before and e["t"] - presses[before[-1]] < MATCH_S:
            used.add(before[-1])
            pairs.append((e, presses[before[-1]]))
    return pairs


def frames_per_s(views: list[list], frames: list[float]) -> float:
    """Frames per second the page received while its views showed a robot its operator serves."""
    spans = [(t0, t1) for (t0, yours), (t1, _) in zip(views, views[1:], strict=False) if yours]
    served_s = sum(t1 - t0 for t0, t1 in spans) / 1000
    count = sum(any(t0 <= f < t1 for t0, t1 in spans) for f in frames)
    return count / served_s if served_s else 0.0


def chromium_in(namespace: str, folder: Path) -> str:
    """A Chromium that runs in `namespace` (Playwright starts it and talks to it over a pipe, as to any)."""
    wrapper = folder / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {CHROMIUM} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def setting(name: str, takeovers: int, robots: int, run_dir: Path, remote: bool) -> dict[str, Any]:
    from workers.launch import run_loop
    from workers.ray_fleet import RayFleet

    cfg = load_config(None, [
        "task=point", f"robots={robots}", "operators=2", "operator.kinds=[browser, spacemouse]", "minutes=6",
        "robot.speed=1.0", "gate.threshold=0.0", "demos=2", "learner.pretrain_updates=50", "learner.batch_size=32",
        "learner.publish_every=20", "browser.listen=127.0.0.1:0", "safety.claim_timeout_s=60",
        "eval.every_versions=0"])
    browser_script, local_script = Script(), Script()
    local = LocalOperator(local_script)
    devices: dict[int, Any] = {BROWSER: BrowserDevice(cfg.browser, cfg.gamepad, cfg.keyboard, 2), LOCAL: local.device}
    run_dir.mkdir(parents=True)
    web = serve_operators(cfg, devices, run_dir)
    page: dict[str, Any] = {}
    done = threading.Event()
    with Network() as net, tempfile.TemporaryDirectory() as tmp:
        url, executable, proxy = web.url(BROWSER), CHROMIUM, None
        if remote:
            host = net.host()
            proxy = FaultyProxy(host.gateway, web.address, Faults(delay_s=0.05))
            url = f"http://{proxy.address}/#{url.partition('#')[2]}"
            executable = chromium_in(host.name, Path(tmp))
        def offered(robot: int) -> str:
            """"press" when the run's newest status offers `robot` to the page's operator and the shoulder has been
            up at the server for SETTLE_S; "skip" when it was offered before that: the station took the held
            shoulder for the takeover input and keeps that time even after it is released (teleop_devices/
            station.py, remote.py), so its latency would start before the press; "" to wait."""
            if browser_script.assigned.get(robot, 0.0) < browser_script.released + SETTLE_S:
                return "skip"
            latest = devices[BROWSER].latest  # the page's newest input as the server has it
            pad = latest and latest.get("pad")
            robot_now = newest[0]["robots"].get(robot, {}) if newest else {}
            return "press" if (pad and not pad["buttons"][4] and time.time() - browser_script.released > SETTLE_S
                               and robot in newest[0].get("serving", {}).get(BROWSER, [])
                               and robot_now.get("state") == "operator" and not in_control(robot_now)) else ""

        newest: list[dict] = []

        def on_status(status: dict) -> None:
            newest[:] = [status]
            web.update(status)
            offset = devices[BROWSER].clock_offset()
            if offset is not None:
                page["offset"] = offset
            local.update(status)
            if done.is_set():
                raise KeyboardInterrupt  # the script is over: the run ends as after Ctrl-C

        def on_events(events: list[dict]) -> None:
            web.events(events)
            local.events(events)
            if any(e["ev"] == "handback" and e["operator"] == BROWSER for e in events):
                browser_script.handed_back.set()
            for e in events:
                if e["ev"] == "operator_assigned" and e["operator"] == BROWSER:
                    browser_script.assigned[e["robot"]] = e["t"]

        driver = threading.Thread(target=browser_operator, daemon=True,
                                  args=(url, executable, takeovers, browser_script, page, done, offered))
        began = time.monotonic()
        driver.start()
        sigint = signal.getsignal(signal.SIGINT)
        try:
            run_loop(cfg, run_dir, RayFleet, on_status=on_status, on_events=on_events, devices=devices,
                     frames_every_s=0.05, remote_operators=True)
        finally:
            signal.signal(signal.SIGINT, sigint)  # run_loop's after an interruption: a second Ctrl-C exits at once
            web.close()
            done.wait(WAIT_S)
            if proxy is not None:
                proxy.close()
    (run_dir / "presses.json").write_text(json.dumps({BROWSER: browser_script.presses, LOCAL: local_script.presses}))
    if "error" in page:
        raise RuntimeError(f"{name}: {page['error']}") from page["error"]
    events = read_events(run_dir / "events.jsonl")
    out: dict[str, Any] = {"name": name, "seconds": time.monotonic() - began}
    for op, script in ((BROWSER, browser_script), (LOCAL, local_script)):
        pairs = match([e for e in events if e["ev"] == "takeover" and e["operator"] == op], script.presses)
        out[op] = {"n": len(pairs), "latency": np.array([e["latency_s"] for e, _ in pairs]) * 1000,
                   "independent": np.array([e["t"] - t for e, t in pairs]) * 1000,
                   "unmatched": sum(e["ev"] == "takeover" and e["operator"] == op for e in events) - len(pairs)}
    out["fps"] = frames_per_s(page["views"], page["frames"])
    out["stale"] = sum(e["ev"] == "handback" and e["operator"] == BROWSER and e["reason"] == "stale_input"
                       for e in events)
    offsets = [e for e in events if e["ev"] == "clock_offset"]
    out["page_offset_ms"] = 1000 * page.get("offset", float("nan"))
    out["robot_offset_ms"] = max((abs(e["offset_s"]) * 1000 for e in offsets), default=0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takeovers", type=int, default=30, help="browser takeovers per setting")
    parser.add_argument("--robots", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--settings", default="loopback,remote", help="which: loopback, remote (50 ms each way)")
    args = parser.parse_args()
    if why := unavailable():
        sys.exit(f"browser latency benchmark: {why}")
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"browser latency benchmark: {CHROMIUM} is missing (`make browser` installs it)")
    from workers.ray_fleet import init_ray

    init_ray(num_cpus=2)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        names = {"loopback": "page on loopback", "remote": "page on another host, 50 ms each way (proxy)"}
        results = [setting(names[which], args.takeovers, args.robots, root / which, remote=which == "remote")
                   for which in args.settings.split(",")]
    took = ", ".join(f"{r['name']} {r['seconds']:.0f} s" for r in results)
    unmatched = ", ".join(f"{r[BROWSER]['unmatched']} / {r[LOCAL]['unmatched']}" for r in results)
    stale = ", ".join(str(r["stale"]) for r in results)
    offsets = ", ".join(f"page {r['page_offset_ms']:+.1f} ms, robots {r['robot_offset_ms']:.1f} ms" for r in results)
    print(f"point task at real time (50 ms control period), {args.robots} robots always asking, {os.cpu_count()} "
          f"CPUs; took {took}; takeovers answering no press (a robot offered while the button was still held) left "
          f"out, browser / local: {unmatched}; the browser operator's robots stopped for stale input (reading older "
          f"than safety.max_age_s): {stale}; clock offsets measured (true: 0, one machine): {offsets}",
          file=sys.stderr)
    header = ["setting", "browser takeovers", "p50 ms", "p99 ms", "independent p50 / p99 ms",
              "local SpaceMouse p50 / p99 ms (n)", "browser p50 ÷ local p50", "frames/s at the page"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for r in results:
        b, loc = r[BROWSER], r[LOCAL]
        p = lambda a, q: float(np.percentile(a, q)) if len(a) else float("nan")  # noqa: E731
        print(f"| {r['name']} | {b['n']} | {p(b['latency'], 50):.0f} | {p(b['latency'], 99):.0f} | "
              f"{p(b['independent'], 50):.0f} / {p(b['independent'], 99):.0f} | "
              f"{p(loc['latency'], 50):.0f} / {p(loc['latency'], 99):.0f} ({loc['n']}) | "
              f"{p(b['latency'], 50) / p(loc['latency'], 50):.1f} | {r['fps']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
