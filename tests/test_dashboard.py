from rich.console import Console

from dagger.app.dashboard import Dashboard, clock_text, sparkline, state_label
from dagger.app.live import LiveStats, why
from dagger.config import load_config

STATES = ["autonomous", "waiting", "operator", "resetting"]


def fleet(n, states=STATES, steps=100):
    """Status for n robots, cycling through `states`; each waiting robot i has waited 4 + i s in the queue."""
    robots = {}
    for i in range(n):
        state = states[i % len(states)]
        robots[i] = {"robot": i, "state": state, "uncertainty": 0.0123 * (i + 1), "version": 17, "episode": 3 * i,
                     "successes": i, "steps": steps, "operator": 0 if state == "operator" else -1}
    queue = [{"robot": i, "reason": "ensemble", "urgency": 1.5, "waiting_s": 4.0 + i}
             for i, r in robots.items() if r["state"] == "waiting"]
    return {"robots": robots, "queue": queue, "learner": {"updates": 1200, "loss": 0.05, "version": 18},
            "buffer": {"steps": 4000, "labelled_steps": 900}}


def asked(robot, reason="ensemble", score=0.031, threshold=0.02, **fields):
    return {"ev": "help_requested", "t": 5.0, "robot": robot, "reason": reason, "score": score,
            "threshold": threshold, "safety": 0.6, "p_safe": 0.9, **fields}


def stats_for(status):
    stats = LiveStats()
    stats.add([{"ev": "segment", "t": 1.0, "t_end": 1.0, "steps": 30, "controller": "operator:0"},
               {"ev": "segment", "t": 1.0, "t_end": 1.0, "steps": 70, "controller": "policy"},
               {"ev": "takeover", "t": 1.0}, {"ev": "learner", "t": 1.0, "updates": 1200, "loss": 0.05},
               {"ev": "weights_published", "t": 1.0, "version": 18}])
    stats.add([asked(rid, threshold=0.0213) for rid, r in status["robots"].items()
               if r["state"] in ("waiting", "operator")])
    return stats


def draw(board, status):
    board.console.print(board.render(status))
    return board.console.export_text()


def screen():
    return Console(width=80, height=24, record=True, force_terminal=True)


def test_four_robots_each_get_a_row_with_why_they_asked_and_the_gate_rule():
    status = fleet(4)
    board = Dashboard(load_config(), stats_for(status), screen())
    text = draw(board, status)
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 80
    for label in ("autonomous", "waiting 5.0s", "operator 0", "resetting"):
        assert label in text
    assert text.count("novel state 0.0310 > 0.0213") == 2  # the waiting robot and the one with an operator
    assert "gate     ensemble asks when uncertainty > 0.0213" in text
    assert "intervention rate (last 30s) 0.30" in text and "staleness 1" in text and "takeovers 1" in text


def test_thirty_robots_fit_80_by_24_with_counts_and_the_robots_that_need_a_person():
    status = fleet(30)
    stats = stats_for(status)
    stats.autonomy.extend([1.0] * 40)  # a long run's full sparkline
    board = Dashboard(load_config(), stats, screen())
    text = draw(board, status)
    assert "100% unaided in the last 10 episodes\n" in text  # whole, not cut at the edge
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 80
    assert "15/30 robots shown · 8 waiting · 7 with an operator · 8 autonomous · 7 resetting" in text
    for head in ("fleet    intervention rate", "learner  1200 updates (0/s) · loss 0.0500", "buffer   4000 steps",
                 "autonomy", "eval"):
        assert head in text
    rows = [line.split()[0] for line in lines if line.split() and line.split()[0].isdigit()]
    waiting_or_operator = {str(i) for i in range(30) if i % 4 in (1, 2)}
    assert waiting_or_operator <= set(rows) and len(rows) == 15


def test_a_crowded_queue_still_shows_the_robots_with_an_operator_then_the_longest_waits():
    status = fleet(30, states=["operator"] * 2 + ["waiting"] * 28)
    text = draw(Dashboard(load_config(), stats_for(status), screen()), status)
    rows = [line.split()[0] for line in text.splitlines() if line.split() and line.split()[0].isdigit()]
    assert rows == ["0", "1"] + [str(i) for i in range(17, 30)] and "waiting 33s" in text


def test_eta_is_the_budget_left_at_the_pace_so_far():
    now = [100.0]
    cfg = load_config(overrides=["steps=4000"])
    board = Dashboard(cfg, LiveStats(), screen(), plain_every_s=1e9, clock=lambda: now[0])
    board.update(fleet(4, steps=0))
    now[0] = 110.0
    text = draw(board, fleet(4, steps=250))  # 1000 of 4000 steps in 10 s: 3000 more take 30 s
    assert "1,000/4,000 steps (25%) · ETA 0:30" in text


def test_eta_follows_the_pace_of_the_last_half_minute_not_the_slow_start():
    now = [0.0]
    board = Dashboard(load_config(overrides=["steps=4000"]), LiveStats(), screen(), plain_every_s=1e9,
                      clock=lambda: now[0])
    for now[0], per_robot in ((0.0, 0), (60.0, 100), (70.0, 250)):
        board.update(fleet(4, steps=per_robot))
    assert "1,000/4,000 steps (25%) · ETA 0:50" in draw(board, fleet(4, steps=250))  # 600 steps in 10 s: 3000 in 50


def test_eta_with_a_minutes_budget_runs_on_the_fleet_clock():
    now = [0.0]
    stats = LiveStats()
    board = Dashboard(load_config(overrides=["minutes=2"]), stats, screen(), plain_every_s=1e9, clock=lambda: now[0])
    stats.add([{"ev": "learner", "t": 1000.0, "updates": 0}])
    board.update(fleet(4))
    stats.add([{"ev": "learner", "t": 1030.0, "updates": 10}])
    now[0] = 60.0  # 30 fleet seconds in 60 wall seconds: the 90 left take 180
    assert "0:30/2:00 (25%) · ETA 3:00" in draw(board, fleet(4))


def test_sparkline_follows_unaided_success_per_window_of_ten_episodes_and_eval_shows_its_version():
    stats = LiveStats()
    outcomes = [(False, 0)] * 10 + [(True, 0)] * 10 + [(True, 0)] * 5 + [(True, 3)] * 5 + [(True, 0)] * 3
    stats.add([{"ev": "episode_end", "t": 1.0, "robot": 0, "success": ok, "human_steps": human}
               for ok, human in outcomes])
    stats.add([{"ev": "eval", "t": 2.0, "version": 7, "success_rate": 0.7, "ci95": [0.48, 0.85], "episodes": 20}])
    assert stats.autonomy == [0.0, 1.0, 0.5]
    text = draw(Dashboard(load_config(), stats, screen()), fleet(4))
    assert "autonomy ▁█▅ 50% unaided in the last 10 episodes" in text
    assert "v7: 70% success (95% CI 48%–85%, 20 episodes)" in text


def test_state_labels_say_how_long_a_robot_waited_and_who_comes():
    waiting = {"state": "waiting", "operator": -1}
    offered = {"state": "operator", "operator": 1, "controller": "policy"}
    assert state_label(waiting, 2.46, None) == "waiting 2.5s" and state_label(waiting, 12.4, None) == "waiting 12s"
    assert state_label(waiting, None, 1) == "offered to operator 1"
    assert state_label(offered, None, None) == "offered to operator 1"
    assert state_label({**offered, "controller": "operator:1"}, None, None) == "operator 1 in control"


def test_reasons_read_as_words():
    assert why(asked(0, "thrifty", score=0.01, safety=0.41)) == "risky: success odds 0.410"
    assert why(asked(0, "thrifty")) == "novel state 0.0310 > 0.0200"
    assert why(asked(0, "deadman_released")) == "deadman released"
    assert why(asked(0, "not_claimed")) == "offer timed out"
    assert why(asked(0, "safe", p_safe=0.3)) == "action likely wrong (p 0.30)"
    assert why(asked(0, "human")) == "operator stepped in"
    assert sparkline([0.0, 0.5, 1.0], 2) == "▅█" and clock_text(3723) == "1:02:03" and clock_text(30) == "0:30"


def test_tuned_thresholds_from_the_supervisor_win_over_the_last_request():
    status = {**fleet(4), "thresholds": {"threshold": 0.0042, "risk_threshold": 0.37}}
    board = Dashboard(load_config(overrides=["gate.name=thrifty"]), stats_for(status), screen())
    assert "thrifty asks when uncertainty > 0.0042 or success odds < 0.370" in draw(board, status)
    del status["thresholds"]  # then the threshold the latest help request carried, and no stale risk prior
    assert "thrifty asks when uncertainty > 0.0213 or success odds < a tuned bar" in draw(board, status)


def test_plain_status_line_when_not_a_terminal(capsys):
    board = Dashboard(load_config(), LiveStats(), Console(force_terminal=False), plain_every_s=0.0)
    board.start()
    board.update(fleet(4, steps=0))
    board.stop()
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "0/30,000 steps (0%) · ETA …" in out and "0:auto 1:wait 2:oper 3:rese" in out


def test_risk_gets_a_column_when_the_allocator_reads_it_and_image_robots_show_their_camera_cost():
    status = fleet(4)
    for rid, r in status["robots"].items():
        r["risk"], r["camera_ms"] = 0.25 * rid, 4.0 + rid
    plain = draw(Dashboard(load_config(), stats_for(status), screen()), status)
    assert " risk " not in plain and "camera   5.5 ms per step" in plain  # mean of 4, 5, 6 and 7 ms
    text = draw(Dashboard(load_config(None, ["allocator=cur"]), stats_for(status), screen()), status)
    header = next(line for line in text.splitlines() if "spread" in line)
    assert "risk" in header and max(map(len, text.splitlines())) <= 80
    row3 = next(line for line in text.splitlines() if line.lstrip().startswith("3 "))
    assert "0.75" in row3


def test_failed_storage_is_said_in_words_with_the_cause_and_when_the_run_stops():
    status = fleet(2)
    status["robots"][0]["storage_hold"] = "the buffer cannot store"
    status["storage"] = {"ok": False, "error": "OSError: [Errno 27] segment log x.log: File too large",
                         "for_s": 12.0, "stops_in_s": 48.0}
    cfg = load_config(None, ["task=point", "robots=2"])
    board = Dashboard(cfg, stats_for(status), console=Console(width=120, height=30, record=True))
    text = " ".join(draw(board, status).split())
    assert "storage failed 12 s ago: robots hold and nobody is asked for help; the run stops in 48 s" in text
    assert "File too large" in text and "held: storage failed" in text
    assert "File too large" in board.plain(status) and "0:held" in board.plain(status)
    status["storage"], status["robots"][0]["storage_hold"] = {"ok": True}, ""
    assert "storage" not in draw(Dashboard(cfg, stats_for(status), console=screen()), status)
