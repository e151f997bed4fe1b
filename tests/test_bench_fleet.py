"""benchmarks/fleet_overhead.py's arithmetic: the (N, K) shapes it runs, the steady window from segments, and the
real-time verdict from the groups' statuses (no Ray here; the script itself is run by `make bench`)."""

import pytest

from benchmarks.fleet_overhead import FleetRun, keeps_time, period_work_ms, shapes, steady_rate


def test_shapes_halve_n_and_add_the_old_shape_at_four():
    assert shapes([1, 4, 16], ["half"]) == [(1, 1), (4, 2), (4, 1), (16, 8)]
    assert shapes([1, 4], ["1", "4"]) == [(1, 1), (4, 1), (4, 4)]  # K above N is N; no extra row when K is given


def test_steady_rate_counts_only_the_window_every_robot_runs_in():
    segments = [{"ev": "segment", "robot": 0, "t_start": 0.0, "t_end": 10.0, "steps": 100},
                {"ev": "segment", "robot": 1, "t_start": 2.0, "t_end": 8.0, "steps": 60}]
    rate, t0, t1 = steady_rate(segments)
    assert (t0, t1) == (3.0, 8.0)  # robot 1's start + 1 s, robot 1's end
    assert rate == pytest.approx((50 + 50) / 5)


def status(steps, periods, overruns, batch=2.0):
    return {"steps": steps, "periods": periods, "overruns": overruns, "batch": batch}


def test_a_fleet_keeps_time_only_when_every_group_and_every_robot_does():
    dt = 0.0125  # 80 steps/s
    first = [status(0, 0, 0)] * 4
    ok = FleetRun(4, 2, 320.0, {}, 10.0, first, [status(800, 800, 4)] * 4)
    assert ok.overrun_fraction() == pytest.approx(0.005) and ok.slowest_robot() == 80.0 and keeps_time(ok, dt)
    late = FleetRun(4, 2, 320.0, {}, 10.0, first, [status(800, 800, 0)] * 2 + [status(800, 800, 40)] * 2)
    assert late.overrun_fraction() == pytest.approx(0.05) and not keeps_time(late, dt)  # the worst group decides
    slow = FleetRun(4, 2, 320.0, {}, 10.0, first, [status(800, 800, 0)] * 3 + [status(700, 800, 0)])
    assert slow.slowest_robot() == 70.0 and not keeps_time(slow, dt)
    assert FleetRun(3, 2, 0.0, {}, 1.0, first[:3], [status(1, 1, 0, 2.0)] * 2 + [status(1, 1, 0, 1.0)]).batch() == 1.5


def test_period_work_is_timed_on_a_real_group():
    p50, p99 = period_work_ms("point", "mlp-ensemble", 2, seconds=0.3)
    assert 0 < p50 <= p99
