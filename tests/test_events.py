"""The event log: a writer killed mid-line loses that line only, and nothing else is ever dropped."""

import json
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from dagger.events import EventLog, cut_torn_tail, read_events

EVENTS = st.lists(st.fixed_dictionaries({"ev": st.sampled_from(["segment", "takeover", "eval"]),
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
