"""The event log: every kind the code writes is catalogued and checked when written; a writer killed mid-line loses
that line only, and nothing else is ever dropped."""

import json
import re
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

import dagger.events
from dagger.events import FIELDS, KINDS, EventLog, cut_torn_tail, read_events

ROOT = Path(__file__).resolve().parents[1]
WRITERS = ("dagger", "workers", "buffers", "teleop_devices", "benchmarks")
KIND_IN_SOURCE = re.compile(r'(?:"ev"\s*:\s*|emit\w*(?:\([^()]*\))?\(\s*)(f?)"([^"\n]*)"')
"""a kind where an event is made: {"ev": "kind", ...}, or a helper's emit("kind", ...), _emit("kind", ...),
emitter(robot)("kind", ...)"""
DYNAMIC = {"{what}_late": r'\b_?late\w*\(\s*"(\w+)"', "{what}_back": r'\b_?on_time\(\s*"(\w+)"'}
"""a kind made by an f-string -> the call whose first argument fills it in"""


def emitted_kinds() -> dict[str, str]:
    """Every kind of event the source tree writes -> where (file:line)."""
    found: dict[str, str] = {}
    for folder in WRITERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for match in KIND_IN_SOURCE.finditer(text):
                where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
                if not match.group(1):
                    found.setdefault(match.group(2), where)
                    continue
                assert match.group(2) in DYNAMIC, f"{where}: a kind made by f\"{match.group(2)}\": add it to DYNAMIC"
                fills = re.findall(DYNAMIC[match.group(2)], text)
                assert fills, f"{where}: nothing fills in f\"{match.group(2)}\" ({DYNAMIC[match.group(2)]})"
                for fill in fills:
                    found.setdefault(match.group(2).replace("{what}", fill), where)
    return found


def test_every_kind_the_code_writes_is_catalogued():
    kinds = emitted_kinds()
    assert {"segment", "takeover", "robot_late", "policy_back", "device_health", "placed"} <= set(kinds)  # it sees
    missing = {kind: where for kind, where in kinds.items() if kind not in KINDS}
    assert not missing, f"kinds of event written but not catalogued in dagger.events.KINDS: {missing}"
    retired = set(KINDS) - set(kinds)  # reading never needed them: an old log's unknown kind is read unchecked
    assert not retired, f"catalogued in dagger.events.KINDS but written nowhere (take them out): {sorted(retired)}"


def test_the_catalogue_says_what_each_kind_means_and_keeps_what_readers_rely_on():
    for name, kind in KINDS.items():
        assert kind.doc.strip() and not set(kind.needs) & set(kind.has), name
        assert not set(kind.needs) & set(kind.may) and not set(kind.has) & set(kind.may), name
    assert FIELDS["takeover"] == {"gated": "string", "wait_s": "number", "operator": "integer"}  # as old logs read
    assert "latency_s" not in FIELDS["takeover"] and "reason" not in FIELDS["handback"]  # newer: optional on read


@pytest.mark.parametrize(("event", "named"), [
    ({"ev": "takeover", "t": 1.0, "gated": "robot", "operator": 0, "robot": 0, "reason": "spread", "latency_s": 0.1,
      "reaction_s": 0.2}, "takeover event: field 'wait_s' is missing"),
    ({"ev": "handback", "t": 1.0, "robot": 0, "operator": 1, "reason": 3}, "handback event: field 'reason' should"),
    ({"ev": "weights_loaded", "t": 1.0, "robot": 0, "version": 1.5}, "weights_loaded event: field 'version' should"),
    ({"ev": "learner", "t": 1.0, "updates": 3, "loss": "low"}, "learner event: field 'loss' should"),
    ({"ev": "robot_wandered", "t": 1.0, "robot": 0}, "'robot_wandered' is not a kind of event"),
    ({"ev": "run_end"}, "run_end event: field 't' is missing"),
])
def test_an_event_not_as_catalogued_is_refused_on_write_naming_its_kind_and_field(tmp_path, event, named):
    log = EventLog(tmp_path / "events.jsonl")
    good = {"ev": "handback", "t": 0.5, "robot": 0, "operator": 1, "reason": "released"}
    with pytest.raises(ValueError, match=re.escape(named)):
        log.write([good, event])
    log.write([good, {"ev": "learner", "t": 2.0, "updates": 3, "loss": None}])  # null: "no loss yet"
    log.close()
    assert read_events(log.path) == [good, {"ev": "learner", "t": 2.0, "updates": 3, "loss": None}]  # none of the bad


def test_outside_tests_only_what_would_spoil_the_log_is_refused(tmp_path, monkeypatch, caplog):
    """A run warns once about a kind or field off the catalogue and writes it; a field readers need is refused."""
    monkeypatch.setattr(dagger.events, "STRICT", False)
    log = EventLog(tmp_path / "events.jsonl")
    odd = [{"ev": "robot_wandered", "t": 1.0}, {"ev": "robot_wandered", "t": 2.0},
           {"ev": "handback", "t": 3.0, "robot": 0, "operator": 1}]
    log.write(odd)
    with pytest.raises(ValueError, match="handback event: field 'operator' is missing"):
        log.write([{"ev": "handback", "t": 4.0, "robot": 0}])
    log.close()
    assert read_events(log.path) == odd
    warned = [r.getMessage() for r in caplog.records if r.name == "dagger.events"]
    assert len(warned) == 2 and "'robot_wandered' is not a kind" in warned[0] and "'reason' is missing" in warned[1]


def test_tests_check_events_strictly():
    assert dagger.events.STRICT  # tests/conftest.py: an uncatalogued kind fails the test that writes it

EVENTS = st.lists(st.fixed_dictionaries({"ev": st.sampled_from(["run_start", "weights_loaded", "robot_restarted"]),
                                         "t": st.floats(0, 1e9, allow_nan=False), "robot": st.integers(0, 9),
                                         "version": st.integers(0, 9), "note": st.text(max_size=20)}),
                  min_size=1, max_size=8)


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
