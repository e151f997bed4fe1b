"""The event log: a writer killed mid-line loses that line only, and nothing else is ever dropped."""

import json
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from dagger.events import EventLog, cut_torn_tail, read_events

EVENTS = st.lists(st.fixed_dictionaries({"ev": st.sampled_from(["run_start", "weights_loaded", "note"]),
                                         "t": st.floats(0, 1e9, allow_nan=False),
                                         "note": st.text(max_size=20)}), min_size=1, max_size=8)


def written(path: Path, events: list[dict]) -> bytes:
    log = EventLog(path)
    log.write(events)
    log.close()
    return path.read_bytes()


@settings(max_examples=40, deadline=None)
@given(events=EVENTS, cut=st.floats(0, 1))
def test_a_log_cut_anywhere_reads_back_as_its_whole_lines(tmp_path_factory, events, cut):
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    data = written(path, events)
    keep = int(cut * len(data))
    path.write_bytes(data[:keep])
    # whole lines, and the next one too when the cut took only its newline
    whole = data[:keep].count(b"\n") + (data[keep:keep + 1] == b"\n")
    assert read_events(path) == events[:whole]  # a torn line is left out when reading...
    dropped = cut_torn_tail(path)  # ...and cut off before the next writer appends
    whole_lines = b"".join(line + b"\n" for line in data.split(b"\n")[:whole])
    assert path.read_bytes() == whole_lines and dropped == max(0, keep - len(whole_lines))
    reopened = EventLog(path)
    reopened.write([{"ev": "run_start", "t": 1.0}])
    reopened.close()
    assert read_events(path) == events[:whole] + [{"ev": "run_start", "t": 1.0}]


def test_a_bad_line_in_the_middle_is_an_error_naming_it(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"ev": "a", "t": 1}) + "\n{oops\n" + json.dumps({"ev": "b", "t": 2}) + "\n")
    with pytest.raises(ValueError, match=r"events.jsonl:2: not a JSON event"):
        read_events(path)
    assert cut_torn_tail(path) == 0  # only a last line without its newline is torn


@pytest.mark.parametrize(("tail", "dropped", "kept"), [(b'{"ev": "b", "t"', 15, 1), (b'{"ev": "b", "t": 2}', 0, 2)])
def test_a_last_line_without_newline_is_cut_only_when_it_is_not_whole(tmp_path, tail, dropped, kept):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"ev": "a", "t": 1}\n' + tail)
    assert cut_torn_tail(path) == dropped and len(read_events(path)) == kept
    assert path.read_bytes().endswith(b"\n")


SCALARS = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(-1e6, 1e6) | st.text(max_size=5)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def fuzzed_event(kind: str, data) -> dict:
    """An event of `kind` whose required fields are each kept, dropped or replaced by any JSON value."""
    from dagger.events import FIELDS

    event = {"ev": kind, "t": data.draw(st.floats(0, 1e3) if data.draw(st.integers(0, 30)) else JSON_VALUES)}
    for field in FIELDS[kind]:
        choice = data.draw(st.sampled_from(["good"] * 30 + ["missing", "any"]))
        if choice == "good":
            event[field] = {"controller": "operator:0", "gated": "robot", "key": "0:0", "success": True,
                            "versions": [[1, 2]], "ci95": [0.1, 0.9]}.get(field, data.draw(st.integers(0, 50)))
        elif choice == "any":
            event[field] = data.draw(JSON_VALUES)
    return event


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_damaged_log_is_a_clear_error_or_a_report(tmp_path_factory, data):
    """A log of events with fields missing or of the wrong type, or lines that are not events: read_events
    names the first bad line, or everything it returns can be reported without a crash."""
    from dagger.events import FIELDS
    from dagger.metrics import learning_curve, summarize
    from dagger.scalars import replay

    kinds = st.sampled_from(sorted(FIELDS))
    lines = [json.dumps(fuzzed_event(kind, data)) for kind in data.draw(st.lists(kinds, max_size=12))]
    junk = st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t) | st.just("[" * 3000)
    if data.draw(st.integers(0, 4)) == 0:  # now and then a line that is no event at all
        lines.insert(data.draw(st.integers(0, len(lines))), data.draw(junk))
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    try:
        events = read_events(path)
    except ValueError as err:
        assert "\n" not in str(err) and "events.jsonl" in str(err)
        return
    summarize(events), learning_curve(events), replay(events, [])
    reached.append(len(events))


reached: list[int] = []


def test_the_fuzz_reached_the_reports():
    assert sum(n > 2 for n in reached) > 5  # runs after test_any_damaged_log_is_a_clear_error_or_a_report


def test_a_loss_logged_as_nan_by_older_runs_reads_as_no_loss(tmp_path):
    from dagger.metrics import summarize

    path = tmp_path / "events.jsonl"
    path.write_text('{"ev": "run_start", "t": 0}\n{"ev": "learner", "t": 1, "updates": 0, "loss": NaN}\n')
    assert summarize(read_events(path))["final_loss"] is None
