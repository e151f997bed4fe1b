import pytest

from dagger.metrics import autonomous_success_by_quarter, human_share_by_quarter, staleness, summarize


def seg(t_end, steps, controller="policy", robot=0, seq=0, versions=None, t_start=None):
    return {"ev": "segment", "t": t_end, "t_end": t_end, "t_start": t_end - 1 if t_start is None else t_start,
            "robot": robot, "seq": seq, "steps": steps, "controller": controller,
            "versions": versions or [[1, steps]]}


def test_quarters_split_steps_in_time_order_including_straddling_segments():
    # 40 steps: 10 policy, 10 human, then 20 where 5 human steps (28..32) straddle Q3/Q4
    segments = [seg(1, 10), seg(2, 10, "operator:0", seq=1), seg(3, 8, seq=2), seg(4, 5, "operator:0", seq=3),
                seg(5, 7, seq=4)]
    assert human_share_by_quarter(segments) == [0.0, 1.0, pytest.approx(2 / 10), pytest.approx(3 / 10)]


def test_quarters_ignore_log_order():
    a = [seg(1, 4, "operator:0"), seg(2, 4, seq=1), seg(3, 4, seq=2), seg(4, 4, seq=3)]
    assert human_share_by_quarter(list(reversed(a))) == [1.0, 0.0, 0.0, 0.0]


def test_autonomous_success_needs_success_and_no_human_step():
    eps = [{"t": i, "robot": 0, "success": s, "human_steps": h}
           for i, (s, h) in enumerate([(1, 0), (1, 3), (0, 0), (1, 0)] * 2)]
    assert autonomous_success_by_quarter(eps) == [0.5, 0.5, 0.5, 0.5]


def test_staleness_counts_versions_behind_the_newest_published_at_segment_start():
    published = [{"t": 0, "version": 1}, {"t": 10, "version": 2}, {"t": 20, "version": 5}]
    segments = [seg(12, 3, t_start=11, versions=[[1, 2], [2, 1]]), seg(25, 1, t_start=21, versions=[[5, 1]])]
    assert staleness(segments, published) == [1, 1, 0, 0]


def test_summarize_counts_and_lag():
    events = [
        {"ev": "run_start", "t": 0.0, "control_period_ms": 5.0, "operators": 2},
        {"ev": "weights_published", "t": 0.0, "version": 1, "updates": 10},
        seg(1.0, 10, robot=0, seq=0),
        seg(2.0, 5, "operator:0", robot=0, seq=1),
        {"ev": "segment_trained", "t": 2.5, "key": "0:1"},
        {"ev": "operator_assigned", "t": 1.2, "robot": 0, "operator": 0, "queued_s": 0.2},
        {"ev": "operator_assigned", "t": 1.3, "robot": 1, "operator": 0, "queued_s": 0.4},
        {"ev": "takeover", "t": 1.5, "robot": 0, "gated": "robot", "wait_s": 0.5, "latency_s": 0.01,
         "reaction_s": 0.25},
        {"ev": "takeover", "t": 1.6, "robot": 1, "gated": "human", "wait_s": 1.5, "latency_s": 0.03,
         "reaction_s": 0.35},
        {"ev": "episode_end", "t": 2.0, "robot": 0, "success": True, "human_steps": 5},
        {"ev": "handback", "t": 2.0, "robot": 0, "operator": 0, "reason": "episode_end"},
        {"ev": "handback", "t": 2.3, "robot": 1, "operator": 0, "reason": "released"},
        {"ev": "handback", "t": 2.4, "robot": 1, "operator": 1, "reason": "released"},  # never assigned: ignored
        {"ev": "learner", "t": 3.0, "updates": 99, "loss": 0.5},
        {"ev": "run_end", "t": 3.6},
    ]
    s = summarize(events)
    assert (s["steps"], s["human_steps"], s["intervention_rate"]) == (15, 5, pytest.approx(1 / 3, abs=1e-4))
    assert (s["takeovers"], s["robot_gated_takeovers"], s["human_gated_takeovers"]) == (2, 1, 1)
    assert (s["episodes"], s["successes"], s["autonomous_successes"]) == (1, 1, 0)
    assert s["learner_updates"] == 99 and s["control_period_ms"] == 5.0
    assert s["segment_to_train_lag_p50_s"] == 0.5
    assert s["mean_wait_for_help_s"] == 1.0
    assert s["weights_staleness_p50"] == 0.0
    assert s["takeovers_per_hour"] == 2000.0
    assert s["mean_steps_between_interventions"] == 5.0  # 10 policy steps, 2 takeovers
    assert s["robot_waiting_s"] == 2.0
    assert s["human_idle_share"] == pytest.approx(1 - (0.8 + 1.0) / (2 * 3.6), abs=1e-3)
    assert (s["takeover_latency_ms_p50"], s["takeover_latency_ms_p99"]) == (20.0, pytest.approx(29.8))
    assert (s["reaction_time_s_p50"], s["queue_wait_s_p50"], s["queue_wait_s_p99"]) == (0.3, 0.3, 0.398)


def test_the_report_says_what_the_operators_took_what_was_stored_and_which_segments_were_lost(tmp_path):
    from rich.console import Console

    from dagger.app.report import print_run_report, write_run_report

    # 12 policy steps; operator segments 0:1 (5 steps, stored), 0:2 (4, never acknowledged: the buffer failed),
    # 1:0 (3, stored, then lost from the log)
    events = [{"ev": "run_start", "t": 0.0, "robots": 2, "operators": 1, "task": "point", "gate": "ensemble"},
              seg(1.0, 12), seg(2.0, 5, "operator:0", seq=1), {"ev": "stored", "t": 2.1, "robot": 0, "seq": 1,
                                                               "steps": 5},
              seg(3.0, 4, "operator:0", seq=2),
              {"ev": "ship_failed", "t": 3.1, "robot": 0, "error": "OSError: File too large", "segments": 1},
              seg(4.0, 3, "operator:0", robot=1, seq=0), {"ev": "stored", "t": 4.1, "robot": 1, "seq": 0, "steps": 3},
              {"ev": "run_end", "t": 5.0},
              {"ev": "log_lost", "t": 6.0, "keys": ["1:0"], "frames": 1, "human_steps": 3}]
    summary = write_run_report(tmp_path, events)
    assert (summary["steps"], summary["human_steps"], summary["human_steps_taken"]) == (17, 5, 12)
    assert (summary["human_steps_lost"], summary["lost_segments"]) == (7, ["0:2", "1:0"])
    assert summary["intervention_rate"] == round(5 / 17, 4)
    md = (tmp_path / "report.md").read_text()
    assert "Human steps taken 12, stored 5, lost 7 in 2 segments" in md and "0:2, 1:0" in md
    assert "| human_steps | 5 |" in md and "| human_steps_taken | 12 |" in md
    console = Console(record=True, width=200)
    print_run_report(tmp_path, summary, console)
    assert "Human steps taken 12, stored 5, lost 7" in console.export_text()
