"""Fleet allocators and the IFL assignment rules on cases whose answer is known."""

import numpy as np
import pytest

from dagger.allocators import ALLOCATORS, FleetSignals, make_allocator
from dagger.allocators.cur import CURAllocator
from dagger.assignment import FleetAssigner


def signals(u, r=None, c=None, wait=None, helped=None, step=100, td=None, urgency=None):
    n = len(u)
    z = np.zeros(n)
    return FleetSignals(np.asarray(u, float), z if r is None else np.asarray(r, float),
                        z if td is None else np.asarray(td, float),
                        np.zeros(n, bool) if c is None else np.asarray(c, bool),
                        z if wait is None else np.asarray(wait, float),
                        np.zeros(n, bool) if helped is None else np.asarray(helped, bool), step,
                        z if urgency is None else np.asarray(urgency, float))


def test_cur_puts_a_violating_robot_first_then_uncertainty_then_risk():
    s = signals(u=[0.9, 0.2, 0.0, 0.2, 0.01], r=[0.0, 0.6, 0.0, 0.9, 0.1], c=[0, 0, 1, 0, 0])
    assert CURAllocator(humans=5).allocate(s) == [2, 0, 3, 1]  # robot 4 is below both thresholds: left alone


def test_cur_warmup_and_violator_cap():
    s = signals(u=[0.0, 0.0, 0.3], c=[1, 1, 0], step=10)
    assert CURAllocator(humans=2, warmup_steps=50).allocate(s) == [2]  # early violations are not chased
    assert CURAllocator(humans=2, cv_thresh=0.5).allocate(signals(u=[0, 0, 0.3], c=[1, 1, 0])) == [0, 2]


def test_fleet_ensemble_orders_uncertainty_before_constraint():
    s = signals(u=[0.1, 0.8, 0.0], c=[1, 0, 1])
    assert make_allocator("fleet-ensemble", humans=3).allocate(s) == [1, 0, 2]


def test_fleet_thrifty_ranks_by_z_scored_novelty_and_risk():
    alloc = make_allocator("fleet-thrifty", humans=2)
    s = signals(u=[0.1, 0.5, 0.2, 0.1], td=[0.2, 0.2, 0.9, 0.2], r=[0.9, 0.0, 0.0, 0.9])  # violation risk: unused
    # robot 1: 0.75 * z(novelty) 1.68 + 0.25 * z(td_risk) -0.58 = 1.12; robot 2: 0.75 * -0.15 + 0.25 * 1.73 = 0.32;
    # robots 0 and 3 score below the running mean and are left alone
    assert alloc.allocate(s) == [1, 2]


def test_random_keeps_helped_robots_and_spends_its_budget():
    alloc = make_allocator("random", humans=10)
    s = signals(u=np.zeros(50), helped=[i < 2 for i in range(50)])
    orders = [alloc.allocate(s) for _ in range(2000)]
    assert np.mean([len(o) for o in orders]) == pytest.approx(5.0, abs=0.2)  # budget 0.5 of 10 operators
    assert all(set(o[:2]) == {0, 1} for o in orders if len(o) >= 2)


def test_fifo_serves_the_longest_waiting_first():
    assert make_allocator("fifo", humans=2).allocate(signals(u=[0] * 4, wait=[0.0, 3.0, 1.0, 5.0])) == [3, 1, 2]


def test_every_allocator_is_registered_and_returns_valid_indices():
    s = signals(u=np.linspace(0, 1, 20), r=np.linspace(1, 0, 20), c=[i % 7 == 0 for i in range(20)],
                wait=np.arange(20.0))
    for name in ALLOCATORS:
        order = make_allocator(name, humans=4).allocate(s)
        assert len(set(order)) == len(order) and all(0 <= i < 20 for i in order), name
    with pytest.raises(ValueError, match="unknown allocator 'nope'"):
        make_allocator("nope", humans=1)


def test_assignment_rules():
    fleet = FleetAssigner(humans=2, robots=5, min_steps=3, hard_reset_steps=4)
    assert fleet.assign([4, 1, 0]) == 2
    assert list(fleet.robot_of) == [4, 1]
    fleet.step(np.zeros(5, bool))
    assert fleet.assign([0, 2]) == 0  # both operators are within t_T: they stay
    fleet.step(np.zeros(5, bool))
    fleet.step(np.zeros(5, bool))
    assert fleet.assign([1, 2]) == 2  # operator 1 stays on robot 1 (still a priority); operator 0 moves to 2
    assert list(fleet.robot_of) == [2, 1] and list(fleet.timer) == [0, 3]
    constraint = np.zeros(5, bool)
    constraint[2] = True
    resets = [fleet.step(constraint) for _ in range(3)]
    assert fleet.assign([]) == 1  # robot 2 is in a hard reset: operator 0 stays; operator 1 goes idle
    assert list(fleet.robot_of) == [2, -1]
    assert fleet.step(constraint) == [2] and resets == [[], [], []]  # t_R = 4 steps of operator time
    assert len(set(fleet.robot_of[fleet.robot_of >= 0])) == (fleet.robot_of >= 0).sum()  # one operator a robot
