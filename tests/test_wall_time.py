"""Exported wall-clock time: int64 nanoseconds that give dagger's float64 seconds back bit for bit."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagger.formats.wall_time import LIMIT_S, from_ns, to_ns


@given(st.lists(st.floats(2.0**23, LIMIT_S, exclude_max=True), min_size=1, max_size=8))
def test_seconds_from_1970_04_08_to_2262_come_back_bit_for_bit(seconds):
    times = np.array(seconds + [-s for s in seconds])
    assert from_ns(to_ns(times)).tobytes() == times.tobytes()


@given(st.lists(st.integers(-(2**52), 2**52), min_size=1, max_size=8))
def test_nanoseconds_float64_seconds_can_hold_come_back_exactly(ns):
    assert to_ns(from_ns(np.array(ns, np.int64))).tolist() == ns


def test_a_plain_product_would_lose_today_s_times_where_whole_and_fraction_apart_do_not():
    times = 1.7e9 + np.arange(10_000) * 0.0125  # 80 steps a second
    assert (np.round(times * 1e9).astype(np.int64) / 1e9 != times).any()  # float64 nanoseconds are 256 ns coarse
    assert (from_ns(to_ns(times)) == times).all()
    assert to_ns(np.array([0.0, 0.05, 1_700_000_000.0])).tolist() == [0, 50_000_000, 1_700_000_000 * 10**9]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, float(LIMIT_S), -1e19])
def test_a_time_int64_nanoseconds_cannot_hold_is_named_with_its_step(bad):
    with pytest.raises(ValueError, match=rf"^field 't_wall': {re.escape(str(bad))} s at step 1: not a time"):
        to_ns(np.array([0.0, bad]))


def test_nanoseconds_must_be_integers():
    with pytest.raises(ValueError, match=r"field 't_wall_ns': dtype float64, expected integer nanoseconds"):
        from_ns(np.array([1.5]))
