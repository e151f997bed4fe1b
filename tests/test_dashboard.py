from rich.console import Console

from dagger.app.dashboard import Dashboard
from dagger.app.live import LiveStats
from dagger.config import load_config

STATUS = {
    "robots": {i: {"robot": i, "state": s, "uncertainty": 0.0123 * (i + 1), "version": 17, "episode": 3 * i,
                   "successes": i, "steps": 100, "operator": 0 if s == "operator" else -1}
               for i, s in enumerate(["autonomous", "waiting", "operator", "resetting"])},
    "learner": {"updates": 1200, "loss": 0.05, "version": 18},
    "buffer": {"steps": 4000, "labelled_steps": 900},
}


def test_live_console_fits_80_columns_and_shows_every_robot():
    stats = LiveStats()
    stats.add([{"ev": "segment", "t_end": 1e12, "steps": 30, "controller": "operator:0"},
               {"ev": "segment", "t_end": 1e12, "steps": 70, "controller": "policy"},
               {"ev": "takeover", "t": 1.0},
               {"ev": "weights_published", "t": 1.0, "version": 18}])
    console = Console(width=80, record=True, force_terminal=True)
    console.print(Dashboard(load_config(), stats, console).render(STATUS))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for label in ("autonomous", "waiting for help", "operator 0", "resetting"):
        assert label in text
    assert "intervention rate (last 30s) 0.30" in text and "staleness 1" in text and "takeovers 1" in text


def test_plain_status_line_when_not_a_terminal(capsys):
    board = Dashboard(load_config(), LiveStats(), Console(force_terminal=False), plain_every_s=0.0)
    board.start()
    board.update(STATUS)
    board.stop()
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "0/30000 steps" in out and "0:auto 1:wait 2:oper 3:rese" in out
