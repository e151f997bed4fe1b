"""Every metric definition on a small hand-written run, each expected number worked out by hand.

The run: 2 robots, 3 operators (one never assigned), run_start at t=100 and run_end at t=112 (12 s), weights v1..v4
published at t=100, 100.55, 104.2, 104.5. Nine segments, written to the log NOT in time order
(B after C, the episodes of robot 1 before robot 0's second), so every "in time order" metric
must sort:

    seg  robot seq controller  steps  t_start  t_end  t(closed)  versions         episode
    A    0     0   policy      8      100.5    101.0  101.05     [[1,8]]          r0 ep0
    B    1     0   policy      2      100.6    101.5  101.55     [[1,2]]          r1 ep0
    C    0     1   operator:0  6      102.0    103.0  103.05     [[1,6]]          r0 ep0
    D    1     1   operator:1  4      103.2    103.6  103.65     [[1,1],[2,3]]    r1 ep0
    E    0     2   policy      10     103.1    104.0  104.05     [[1,8],[2,2]]    r0 ep0 (ends, success)
    F    1     2   policy      6      103.7    104.5  104.55     [[2,6]]          r1 ep0 (ends, failure)
    G    0     3   operator:0  6      105.0    106.0  106.05     [[2,2],[3,4]]    r0 ep1 (ends, success)
    H    1     3   policy      2      106.5    107.0  107.05     [[2,2]]          r1 ep1 (ends, success)
    J    1     4   policy      4      107.2    108.0  108.05     [[2,1],[4,3]]    r1 ep2 (ends, failure)

steps = 8+2+6+4+10+6+6+2+4 = 48; human (operator) steps = C+D+G = 6+4+6 = 16; policy steps = 32.
"""

from __future__ import annotations

import math

import pytest

from dagger.fleet_metrics import TOTALS, cumulative, fleet_summary, rohe
from dagger.metrics import (
    achieved_rate,
    autonomous_success_by_quarter,
    human_share_by_quarter,
    learning_curve,
    of_kind,
    operator_busy_s,
    run_series,
    staleness,
    summarize,
)


def seg(robot, seq, controller, steps, t_start, t_end, versions, reason="size"):
    assert sum(n for _, n in versions) == steps
    return {"ev": "segment", "t": round(t_end + 0.05, 2), "robot": robot, "seq": seq, "episode": 0,
            "controller": controller, "reason": reason, "steps": steps, "t_start": t_start, "t_end": t_end,
            "versions": versions}


A = seg(0, 0, "policy", 8, 100.5, 101.0, [[1, 8]], "takeover")
B = seg(1, 0, "policy", 2, 100.6, 101.5, [[1, 2]], "takeover")
C = seg(0, 1, "operator:0", 6, 102.0, 103.0, [[1, 6]], "handback")
D = seg(1, 1, "operator:1", 4, 103.2, 103.6, [[1, 1], [2, 3]], "handback")
E = seg(0, 2, "policy", 10, 103.1, 104.0, [[1, 8], [2, 2]], "episode_end")
F = seg(1, 2, "policy", 6, 103.7, 104.5, [[2, 6]], "episode_end")
G = seg(0, 3, "operator:0", 6, 105.0, 106.0, [[2, 2], [3, 4]], "episode_end")
H = seg(1, 3, "policy", 2, 106.5, 107.0, [[2, 2]], "episode_end")
J = seg(1, 4, "policy", 4, 107.2, 108.0, [[2, 1], [4, 3]], "episode_end")
SEGMENTS_LOG_ORDER = [A, C, B, D, E, F, G, H, J]


def published(t, version):
    return {"ev": "weights_published", "t": t, "version": version, "updates": 10 * version}


def episode(t, robot, ep, success, steps, human_steps):
    return {"ev": "episode_end", "t": t, "robot": robot, "episode": ep, "success": success, "steps": steps,
            "human_steps": human_steps, "return": -1.0}


EVENTS = [
    {"ev": "run_start", "t": 100.0, "robots": 2, "operators": 3, "task": "point", "gate": "ensemble",
     "alpha": 0.1, "seed": 0, "control_period_ms": 50.0},
    published(100.0, 1),
    A,
    {"ev": "help_requested", "t": 101.05, "robot": 0, "reason": "ensemble", "score": 0.05, "threshold": 0.02},
    published(100.55, 2),  # logged late (the learner is polled after the robots): staleness sorts by t
    {"ev": "operator_assigned", "t": 101.65, "robot": 0, "operator": 0, "queued_s": 0.6},
    {"ev": "segment_trained", "t": 101.25, "key": "0:0"},
    {"ev": "takeover", "t": 102.0, "robot": 0, "operator": 0, "gated": "robot", "reason": "ensemble",
     "wait_s": 0.95, "latency_s": 0.0, "reaction_s": 0.35},
    C,
    {"ev": "handback", "t": 103.05, "robot": 0, "operator": 0, "reason": "released"},
    B,  # logged after C although it ended first
    {"ev": "help_requested", "t": 101.55, "robot": 1, "reason": "human", "score": 0.01, "threshold": 0.02},
    {"ev": "segment_trained", "t": 101.65, "key": "1:0"},
    {"ev": "operator_assigned", "t": 103.1, "robot": 1, "operator": 1, "queued_s": 1.55},
    {"ev": "takeover", "t": 103.2, "robot": 1, "operator": 1, "gated": "human", "reason": "human",
     "wait_s": 1.65, "latency_s": 0.02, "reaction_s": 0.1},
    {"ev": "segment_trained", "t": 103.45, "key": "0:1"},
    D,
    {"ev": "handback", "t": 103.65, "robot": 1, "operator": 1, "reason": "released"},
    {"ev": "segment_trained", "t": 103.95, "key": "1:1"},
    {"ev": "learner", "t": 104.0, "updates": 50, "loss": 0.8},
    E,
    episode(104.05, 0, 0, True, 24, 6),
    F,
    episode(104.55, 1, 0, False, 12, 4),
    published(104.2, 3),
    published(104.5, 4),
    {"ev": "help_requested", "t": 104.5, "robot": 0, "reason": "ensemble", "score": 0.03, "threshold": 0.02},
    {"ev": "operator_assigned", "t": 104.7, "robot": 0, "operator": 0, "queued_s": 0.2},
    {"ev": "takeover", "t": 105.0, "robot": 0, "operator": 0, "gated": "robot", "reason": "ensemble",
     "wait_s": 0.5, "latency_s": 0.0, "reaction_s": 0.3},
    {"ev": "segment_trained", "t": 105.0, "key": "7:7"},  # no such segment: ignored
    H,
    episode(107.05, 1, 1, True, 2, 0),  # robot 1's episodes logged before robot 0's earlier one
    J,
    episode(108.05, 1, 2, False, 4, 0),
    G,
    episode(106.05, 0, 1, True, 6, 6),
    {"ev": "handback", "t": 106.1, "robot": 0, "operator": 0, "reason": "episode_end"},
    {"ev": "handback", "t": 108.5, "robot": 1, "operator": 0, "reason": "not_claimed"},  # never assigned to op 0
    {"ev": "handback", "t": 110.0, "robot": 0, "operator": 0, "reason": "released"},  # a repeat: already closed
    {"ev": "learner", "t": 111.9, "updates": 120, "loss": 0.123456},
    {"ev": "run_end", "t": 112.0, "reason": "budget"},
]


# ------------------------------------------------------------------------------------------- summarize


@pytest.fixture(scope="module")
def summary():
    return summarize(EVENTS)


def test_steps_and_intervention_rate(summary):
    assert summary["steps"] == 48
    assert summary["human_steps"] == 16  # C + D + G
    assert summary["intervention_rate"] == 0.3333  # 16 / 48, 4 digits


def test_takeovers_split_by_who_gated_them(summary):
    assert summary["takeovers"] == 3
    assert summary["robot_gated_takeovers"] == 2  # robot 0 twice
    assert summary["human_gated_takeovers"] == 1  # robot 1, HG-DAgger style
    assert summary["takeovers_per_hour"] == 900.0  # 3 takeovers / (12 s / 3600 s)
    assert summary["mean_steps_between_interventions"] == 10.7  # 32 policy steps / 3 takeovers = 10.67


def test_waiting_and_operator_idle_time(summary):
    assert summary["robot_waiting_s"] == 3.1  # 0.95 + 1.65 + 0.5
    assert summary["mean_wait_for_help_s"] == 1.033  # 3.1 / 3
    # busy: op0 on r0 101.65->103.05 (1.4) + op1 on r1 103.1->103.65 (0.55) + op0 on r0 104.7->106.1 (1.4)
    # = 3.35 operator-seconds (r1's hand-back by op0, never assigned, and r0's repeated hand-back at 110.0,
    # its assignment already closed, count nothing)
    assert operator_busy_s(EVENTS) == pytest.approx(3.35)
    assert summary["human_idle_share"] == 0.907  # 1 - 3.35 / (3 operators * 12 s) = 0.90694


def test_episodes_and_autonomous_successes(summary):
    assert summary["episodes"] == 5
    assert summary["successes"] == 3  # r0 ep0, r0 ep1, r1 ep1
    assert summary["autonomous_successes"] == 1  # r1 ep1 only: the other successes had human steps
    # in time order: r0ep0 (human) r1ep0 (fail) r0ep1 (human) r1ep1 (autonomous) r1ep2 (fail);
    # 5 episodes in 4 parts: [2, 1, 1, 1]
    assert summary["autonomous_success_by_quarter"] == [0.0, 0.0, 1.0, 0.0]


def test_intervention_rate_by_quarter_cuts_the_fleets_steps_in_time_order(summary):
    # by t_end: A 0-8, B 8-10, C 10-16 (human), D 16-20 (human), E 20-30, F 30-36, G 36-42 (human),
    # H 42-44, J 44-48; quarters of 12 steps:
    #   [0,12): C's first 2 steps -> 2/12;  [12,24): C's last 4 + D's 4 -> 8/12;  [24,36): 0;  [36,48): G -> 6/12
    assert summary["intervention_rate_by_quarter"] == [0.1667, 0.6667, 0.0, 0.5]
    assert human_share_by_quarter(SEGMENTS_LOG_ORDER) == pytest.approx([2 / 12, 8 / 12, 0.0, 6 / 12])


def test_learner_and_weights(summary):
    assert summary["learner_updates"] == 120
    assert summary["final_loss"] == 0.12346
    assert summary["weights_published"] == 4


def test_staleness_per_step_is_newest_published_at_segment_start_minus_the_acting_version():
    # newest published at t_start: A (100.5) v1; B (100.6), C, D, E, F v2; G (105.0), H, J v4
    expected = ([0] * 8            # A: v1 - v1
                + [1] * 6          # C: v2 - v1
                + [1] * 2          # B: v2 - v1
                + [1] + [0] * 3    # D: v2 - v1, then v2
                + [1] * 8 + [0] * 2  # E
                + [0] * 6          # F
                + [2] * 2 + [1] * 4  # G: v4 - v2, v4 - v3
                + [2] * 2          # H
                + [2] + [0] * 3)   # J: v4 - v2, v4 - v4
    assert staleness(SEGMENTS_LOG_ORDER, of_kind(EVENTS, "weights_published")) == expected


def test_staleness_p50(summary):
    # 22 zeros, 21 ones, 5 twos: the 24th and 25th of 48 sorted values are both 1
    assert summary["weights_staleness_p50"] == 1.0


def test_staleness_uses_the_newest_version_so_far_and_never_goes_negative():
    pubs = [{"t": 0.0, "version": 5}, {"t": 1.0, "version": 3}]  # an older version published later
    segments = [{"t_start": 2.0, "versions": [[4, 1], [6, 2]]},  # newest by t=2 is still 5: 1, then 0 (not -1)
                {"t_start": -1.0, "versions": [[1, 1]]}]  # before any publication: 0
    assert staleness(segments, pubs) == [1, 0, 0, 0]


def test_segment_to_train_lag_is_from_the_segment_event_to_its_first_training_batch(summary):
    # segment event t (closed at the robot) -> segment_trained t: 0:0 0.2, 1:0 0.1, 0:1 0.4, 1:1 0.3
    assert summary["segment_to_train_lag_p50_s"] == 0.25


def test_operator_percentiles_and_run_facts(summary):
    # latency (ms) [0, 20, 0]: p99 = 0 + 0.98 * 20 (linear interpolation at rank 1.98 of 0..2)
    assert (summary["takeover_latency_ms_p50"], summary["takeover_latency_ms_p99"]) == (0.0, 19.6)
    # reaction [0.1, 0.3, 0.35]: p99 = 0.3 + 0.98 * 0.05
    assert (summary["reaction_time_s_p50"], summary["reaction_time_s_p99"]) == (0.3, 0.349)
    # queued [0.2, 0.6, 1.55]: p99 = 0.6 + 0.98 * 0.95
    assert (summary["queue_wait_s_p50"], summary["queue_wait_s_p99"]) == (0.6, 1.531)
    assert summary["control_period_ms"] == 50.0 and summary["duration_s"] == 12.0


def test_achieved_rate_and_run_series():
    assert achieved_rate(EVENTS) == pytest.approx(3 / 35)  # 3 help requests / (32 policy steps + 3)
    series = run_series(EVENTS, windows=4)
    assert series["step"] == [12, 24, 36, 48]
    assert series["intervention_rate"] == pytest.approx([2 / 12, 8 / 12, 0.0, 6 / 12])
    # takeovers at t 102.0 (10 fleet steps done), 103.2 (16), 105.0 (36: the 4th window)
    assert series["takeovers"] == [1, 1, 0, 1]
    assert series["episode_success"] == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert "achieved_rate" not in series  # the ensemble gate has no target rate


# ------------------------------------------------------------------------------------------- storage that fails

# The same run with a buffer that failed part of the time: robots logged `ship_failed`, so an operator's segment
# counts only where the log shows it was kept. C (0:1) and D (1:1) were sampled for training (segment_trained, in
# EVENTS); G (0:3) has neither a `stored` event nor a training sample: it was taken and lost.
FAILING = EVENTS[:-1] + [
    {"ev": "ship_failed", "t": 106.2, "robot": 0, "error": "OSError: [Errno 27] File too large", "segments": 1},
    {"ev": "stored", "t": 103.7, "robot": 1, "seq": 1, "steps": 4},
    EVENTS[-1]]
# ... and then its segment log, reopened, said it had lost C (a human segment) and F (1:2, a policy segment)
LOG_LOST = FAILING + [{"ev": "log_lost", "t": 113.0, "keys": ["0:1", "1:2"], "frames": 2, "human_steps": 6}]


def test_a_failing_buffer_counts_only_the_human_steps_it_kept():
    s = summarize(FAILING)
    assert (s["human_steps_taken"], s["human_steps"], s["human_steps_lost"]) == (16, 10, 6)  # C + D kept, G lost
    assert (s["human_segments_lost"], s["lost_segments"]) == (1, ["0:3"])
    assert s["steps"] == 42 and s["intervention_rate"] == 0.2381  # 32 policy + 10 stored; 10 / 42
    # by t_end without G: A 0-8, B 8-10, C 10-16 (h), D 16-20 (h), E 20-30, F 30-36, H 36-38, J 38-42;
    # quarter edges round(42 w / 4) = 0, 10, 21, 32, 42: C + D's 10 human steps all in [10, 21)
    assert s["intervention_rate_by_quarter"] == [0.0, 0.9091, 0.0, 0.0]
    assert s["mean_steps_between_interventions"] == 10.7  # policy steps are all kept: 32 / 3
    assert s["episodes"] == 5 and s["takeovers"] == 3  # what happened, stored or not


def test_segments_the_log_lost_leave_every_count():
    s = summarize(LOG_LOST)
    assert (s["human_steps_taken"], s["human_steps"], s["human_steps_lost"]) == (16, 4, 12)  # only D is left
    assert s["lost_segments"] == ["0:1", "0:3"]  # C (t_end 103.0), then G (106.0)
    assert s["steps"] == 30  # 48 - C 6 - G 6 - F 6
    assert achieved_rate(LOG_LOST) == pytest.approx(3 / 29)  # 3 help requests / (32 - F's 6 policy steps + 3)
    # labels by each version's publication: D (t_end 103.6) is the only one; v1..v4 at 100, 100.55, 104.2, 104.5
    curve = learning_curve(LOG_LOST + [{"ev": "eval", "t": 113.5, "version": v, "success_rate": 0.5,
                                        "ci95": [0.1, 0.9], "episodes": 4} for v in (2, 3)])
    assert [p["human_labels"] for p in curve] == [0, 4]


def test_the_lost_segments_named_are_bounded():
    from dagger.metrics import LOST_SHOWN

    run = [{"ev": "run_start", "t": 0.0},
           {"ev": "ship_failed", "t": 0.5, "robot": 0, "error": "disk", "segments": 1}]
    run += [seg(0, i, "operator:0", 2, float(i), i + 0.5, [[1, 2]]) for i in range(LOST_SHOWN + 5)]
    s = summarize(run)
    assert s["human_segments_lost"] == LOST_SHOWN + 5 and s["human_steps_lost"] == 2 * (LOST_SHOWN + 5)
    assert s["lost_segments"] == [f"0:{i}" for i in range(LOST_SHOWN)] + ["... 5 more"]
    # a segment the buffer read back from its log after a killed driver is stored though never acknowledged
    recovered = {**seg(0, 99, "operator:0", 3, 50.0, 50.5, [[1, 3]]), "recovered": True}
    assert summarize(run + [recovered])["human_steps"] == 3


def test_segments_a_robot_says_were_never_acknowledged_are_lost_though_nothing_else_was_acknowledged():
    # a buffer that hung the whole run: no `stored`, no `ship_failed`; at the end the robot logs `unstored`
    run = [{"ev": "run_start", "t": 100.0}, A, C,
           {"ev": "unstored", "t": 111.0, "robot": 0, "keys": ["0:1"], "steps": 6, "error": "no answer"},
           {"ev": "run_end", "t": 112.0}]
    s = summarize(run)
    assert (s["steps"], s["human_steps"], s["human_steps_taken"], s["lost_segments"]) == (8, 0, 6, ["0:1"])


def test_a_log_from_before_acknowledgements_is_taken_at_its_word(summary):
    # EVENTS has no `stored` and no `ship_failed`: every segment counts, as before robots reported acknowledgements
    assert (summary["human_steps"], summary["human_steps_taken"], summary["human_steps_lost"]) == (16, 16, 0)
    assert summary["lost_segments"] == []


def test_autonomous_success_by_quarter_sorts_episodes_by_time():
    assert autonomous_success_by_quarter(of_kind(EVENTS, "episode_end")) == [0.0, 0.0, 1.0, 0.0]


def test_a_run_without_takeovers_or_end():
    s = summarize([EVENTS[0], A, B])
    assert (s["steps"], s["human_steps"], s["intervention_rate"], s["takeovers"]) == (10, 0, 0.0, 0)
    # killed (no run_end): the run lasted until its last event, B's at t=101.55 -> 1.55 s
    assert s["mean_steps_between_interventions"] is None and s["takeovers_per_hour"] == 0.0
    assert s["human_idle_share"] == 1.0 and s["duration_s"] == pytest.approx(1.55, abs=0.051)
    assert s["robot_waiting_s"] == 0.0
    assert summarize([A, B])["duration_s"] is None  # no run_start: no span


# ------------------------------------------------------------------------------------------- ROHE


def fleet_step(successes, violations, hard_resets, human_actions, idle, switches, reward):
    return {"ev": "fleet_step", "t": 0.0, "successes": successes, "violations": violations,
            "hard_resets": hard_resets, "human_actions": human_actions, "idle": idle, "switches": switches,
            "reward": reward}


FLEET_EVENTS = [
    {"ev": "run_start", "t": 0.0, "robots": 3},
    fleet_step(0, 1, 0, 2, 1, 1, 0.5),
    fleet_step(2, 0, 1, 3, 0, 0, 1.0),
    {"ev": "allocation", "t": 0.0},  # other events are ignored
    fleet_step(1, 2, 0, 0, 2, 2, -0.25),
    fleet_step(0, 0, 1, 1, 0, 1, 0.75),
]
# totals: successes 3, violations 3, hard_resets 2, human_actions 6, idle 3, switches 4, reward 2.0
FLEET_TOTALS = {"successes": 3.0, "violations": 3.0, "hard_resets": 2.0, "human_actions": 6.0, "idle": 3.0,
                "switches": 4.0, "reward": 2.0}


def test_rohe_is_successes_per_thousand_human_actions_plus_one():
    assert rohe(3, 6) == pytest.approx(1000 * 3 / 7)
    assert rohe(0, 0) == 0.0
    assert rohe(5, 0) == 5000.0
    assert rohe(2, 999) == 2.0


def test_fleet_summary_dagger_mode():
    s = fleet_summary(FLEET_EVENTS)
    assert {k: s[k] for k in TOTALS} == FLEET_TOTALS
    assert s["steps"] == 4.0
    assert s["rohe"] == pytest.approx(3000 / 7)  # 428.57
    assert s["intervention_rate"] == pytest.approx(6 / (4 * 3))  # human actions / (fleet steps * robots)


def test_fleet_summary_ifl_mode():
    s = fleet_summary(FLEET_EVENTS, mode="ifl")
    assert {k: s[k] for k in TOTALS} == FLEET_TOTALS
    assert s["rohe_ifl"] == pytest.approx(3 - 0.01 * 6)  # 2.94
    assert "rohe" not in s


def test_fleet_summary_without_run_start_counts_one_robot():
    s = fleet_summary(FLEET_EVENTS[1:])
    assert s["intervention_rate"] == pytest.approx(6 / 4)


def test_cumulative_over_fleet_steps():
    assert cumulative(FLEET_EVENTS, "successes").tolist() == [0, 2, 3, 3]
    assert cumulative(FLEET_EVENTS, "human_actions").tolist() == [2, 5, 5, 6]


def test_learning_curve_pairs_each_evaluation_with_the_labels_before_its_version():
    seg = {"ev": "segment", "robot": 0, "seq": 0, "t_start": 0.0, "versions": [[1, 1]]}
    events = [
        {"ev": "run_start", "t": 100.0},
        {"ev": "weights_published", "t": 100.5, "version": 1},
        {**seg, "t": 101.0, "t_end": 101.0, "controller": "operator:0", "steps": 7},
        {**seg, "t": 101.5, "t_end": 101.5, "controller": "policy", "steps": 30},   # not a label
        {"ev": "weights_published", "t": 102.0, "version": 2},
        {**seg, "t": 102.0, "t_end": 102.0, "controller": "operator:1", "steps": 5},  # ends as v2 is published
        {**seg, "t": 103.0, "t_end": 103.0, "controller": "operator:0", "steps": 4},
        {"ev": "weights_published", "t": 104.0, "version": 3},
        # evaluations arrive late and out of version order; each counts labels up to its version's publication
        {"ev": "eval", "t": 104.5, "version": 2, "success_rate": 0.5, "ci95": [0.2, 0.8], "episodes": 10},
        {"ev": "eval", "t": 105.0, "version": 1, "success_rate": 0.1, "ci95": [0.0, 0.4], "episodes": 10},
        {"ev": "eval", "t": 106.0, "version": 3, "success_rate": 0.9, "ci95": [0.6, 1.0], "episodes": 10},
    ]
    curve = learning_curve(events)
    # v2 at t=102: 7 + 5 (the segment ending at 102.0 counts); v1 at 100.5: none; v3 at 104: 7 + 5 + 4
    assert [(p["version"], p["human_labels"], p["wall_s"]) for p in curve] == [(2, 12, 2.0), (1, 0, 0.5),
                                                                                 (3, 16, 4.0)]
    assert [p["success_rate"] for p in curve] == [0.5, 0.1, 0.9] and curve[0]["ci95"] == [0.2, 0.8]
    assert summarize(events)["eval_version_last"] == 3 and summarize(events)["eval_success_last"] == 0.9


def test_a_resumed_run_counts_time_updates_and_staleness_per_run():
    """Run 1 is killed at t=10 (last event), resumed at t=100 from a checkpoint of v5 / 400 updates; run 2 ends at
    t=130. A second learner that started afresh (no restore) would count from 0 instead."""
    first = [
        {"ev": "run_start", "t": 0.0, "operators": 2},
        {"ev": "weights_published", "t": 1.0, "version": 5},
        {"ev": "segment", "t": 2.0, "robot": 0, "seq": 0, "controller": "policy", "steps": 4, "t_start": 1.5,
         "t_end": 2.0, "versions": [[5, 4]]},
        {"ev": "learner", "t": 9.0, "updates": 400, "loss": 0.1},
        {"ev": "segment", "t": 10.0, "robot": 0, "seq": 1, "controller": "policy", "steps": 2, "t_start": 9.5,
         "t_end": 10.0, "versions": [[5, 2]]},
    ]
    second = [
        {"ev": "run_start", "t": 100.0, "operators": 1},
        {"ev": "restored", "t": 100.5, "version": 5, "updates": 400, "trainer": True},
        {"ev": "weights_published", "t": 101.0, "version": 6},
        # run 2's robots act with v6; run 1's v5 segments are not behind run 2's v6
        {"ev": "segment", "t": 103.0, "robot": 0, "seq": 10**6, "controller": "policy", "steps": 6,
         "t_start": 102.0, "t_end": 103.0, "versions": [[6, 6]]},
        {"ev": "learner", "t": 129.0, "updates": 650, "loss": 0.1},
        {"ev": "run_end", "t": 130.0},
    ]
    s = summarize(first + second)
    assert s["duration_s"] == 40.0  # 10 + 30, not the 130 from the first start to the last end
    assert s["learner_updates"] == 650  # 400 in run 1, then 250 more from the restored 400
    assert s["weights_staleness_p50"] == 0.0 and staleness_of(first + second) == [0] * 12
    assert s["takeovers_per_hour"] == 0.0 and s["human_idle_share"] == 1.0  # 2 ops x 10 s + 1 op x 30 s idle
    fresh = [e for e in second if e["ev"] != "restored"]
    assert summarize(first + fresh)["learner_updates"] == 400 + 650  # a learner that began again at 0


def staleness_of(events):
    from dagger.metrics import run_staleness

    return run_staleness(events)


def test_auroc_is_the_share_of_positive_negative_pairs_ranked_right():
    from dagger.uncertainty import auroc

    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) -> 3 of 4
    assert auroc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == 0.75
    # a tie between a positive and a negative counts half: (1 + 0.5) / 2
    assert auroc([0.3, 0.3, 0.7], [False, True, True]) == 0.75
    assert auroc([1.0, 2.0, 3.0], [False, False, True]) == 1.0
    assert auroc([1.0, 2.0, 3.0], [True, False, False]) == 0.0
    assert math.isnan(auroc([1.0, 2.0], [True, True]))


def learner_at(t, updates):
    return {"ev": "learner", "t": t, "updates": updates, "loss": 0.1}


def test_updates_count_every_learner_process_after_a_crash_restore():
    # one run: the learner makes 16,400 updates (a checkpoint at 16,000), crashes; Ray restarts it, it restores
    # the checkpoint (16,000 with its trainer) and trains to 20,320: 16,400 + 4,320 = 20,720 updates were made
    run = [{"ev": "run_start", "t": 0.0},
           learner_at(1.0, 5000),
           {"ev": "checkpoint", "t": 2.0, "version": 8, "updates": 16000, "path": "c", "trained_on_steps": 9},
           learner_at(3.0, 16400),
           {"ev": "restored", "t": 4.0, "version": 8, "updates": 16000, "path": "c", "trainer": True},
           {"ev": "restarted", "t": 4.0, "component": "learner", "version": 8},
           learner_at(5.0, 16200),
           {"ev": "weights_published", "t": 6.0, "version": 9, "updates": 20320},
           {"ev": "run_end", "t": 7.0}]
    assert summarize(run)["learner_updates"] == 20720
    # without a checkpoint to restore, the restarted learner began again at 0: 16,400 + 20,320
    fresh = [e for e in run if e["ev"] != "restored"]
    assert summarize(fresh)["learner_updates"] == 16400 + 20320


def test_updates_after_resume_and_a_crash_in_the_resumed_run():
    # run 1 killed at 450 updates (checkpoint at 400); run 2 restores 400, trains to 500, crashes after a
    # checkpoint at 480, is restarted from it and trains to 600: 450 + (500 - 400) + (600 - 480) = 670
    first = [{"ev": "run_start", "t": 0.0}, learner_at(1.0, 400), learner_at(2.0, 450)]
    second = [{"ev": "run_start", "t": 10.0, "resumed": True},
              {"ev": "restored", "t": 10.5, "version": 5, "updates": 400, "path": "c", "trainer": True},
              learner_at(11.0, 480), learner_at(12.0, 500),
              {"ev": "restored", "t": 13.0, "version": 6, "updates": 480, "path": "d", "trainer": True},
              {"ev": "restarted", "t": 13.0, "component": "learner", "version": 6},
              learner_at(14.0, 600), {"ev": "run_end", "t": 15.0}]
    assert summarize(first + second)["learner_updates"] == 670
    # a policy taken from another run without its trainer (init_from) counts from the learner's own 0
    init = [{"ev": "run_start", "t": 0.0},
            {"ev": "restored", "t": 0.5, "version": 0, "updates": 0, "path": "x", "trainer": False},
            learner_at(1.0, 300)]
    assert summarize(init)["learner_updates"] == 300


def test_takeover_latency_is_also_given_per_kind_of_human_device():
    from dagger.metrics import latency_by_device

    start = [{"ev": "run_start", "operator_kinds": ["browser", "scripted", "gamepad"]}]
    takeovers = [{"operator": 0, "latency_s": 0.030}, {"operator": 0, "latency_s": 0.050},
                 {"operator": 1, "latency_s": 0.0}, {"operator": 2, "latency_s": 0.012}]
    out = latency_by_device(takeovers, start)
    # browser: 30 and 50 ms -> median 40, p99 by linear interpolation 30 + 0.99 * 20 = 49.8; scripted has none
    assert out == pytest.approx({"takeover_latency_ms_p50_browser": 40.0, "takeover_latency_ms_p99_browser": 49.8,
                                 "takeover_latency_ms_p50_gamepad": 12.0, "takeover_latency_ms_p99_gamepad": 12.0})
    assert latency_by_device(takeovers, []) == {}
