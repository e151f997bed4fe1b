"""A browser operator in a real `dagger start` run, driven by headless Chromium with a synthetic gamepad: it opens the
link the run prints, takes over the first robot it is offered (left shoulder held, stick pushed), drives it for a few
seconds, saves a screenshot of the page and hands back. The README's picture of the page comes from this.

    python examples/browser_operator.py examples/operator_page.png --task reacher --robots 4 --operators 2 \\
        --operator browser,scripted --minutes 1.5
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the Chromium helper and device fakes

from tests.browser import chromium, open_page  # noqa: E402


def wait_for(check, what: str, limit_s: float = 180.0) -> None:
    end = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > end:
            raise SystemExit(f"browser_operator: {what} did not happen within {limit_s:.0f} s")
        time.sleep(0.1)


def main(out: str, start_args: list[str]) -> int:
    run_dir = tempfile.mkdtemp(prefix="browser-operator-")
    run = subprocess.Popen([sys.executable, "-m", "dagger.app.cli", "start", "--run-dir", run_dir, *start_args],
                           stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert run.stderr is not None
        url = ""
        for line in run.stderr:
            print(line, end="", file=sys.stderr)
            found = re.search(r"operator 0 \(browser\): (\S+)", line)
            if found:
                url = found.group(1)
                break
        threading.Thread(target=lambda: [print(rest, end="", file=sys.stderr) for rest in run.stderr],
                         daemon=True).start()  # its later lines, so its pipe never fills
        if not url:
            raise SystemExit("browser_operator: the run printed no link for operator 0 (give --operator browser,...)")
        with chromium() as browser:
            page = open_page(browser, url)
            page.evaluate("window.__plugPad()")
            badge = page.locator("#robot-badge")
            wait_for(lambda: badge.inner_text() == "offered to you", "an offer of a robot")
            page.evaluate("window.__pad.axes[0] = 0.7; window.__pad.axes[1] = -0.5; window.__press(4, true)")
            wait_for(lambda: badge.inner_text() == "you are in control", "the takeover")
            page.wait_for_timeout(3000)
            page.screenshot(path=out)
            print(f"browser_operator: saved {out}", file=sys.stderr)
            page.evaluate("window.__press(4, false); window.__press(1, true)")  # B: hand back
            page.wait_for_timeout(500)
    finally:
        run.send_signal(signal.SIGTERM)  # the run ends as after Ctrl-C: run_end, the report
        run.wait(120)
    print(f"browser_operator: the run is in {run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
