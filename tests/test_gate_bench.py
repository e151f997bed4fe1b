"""`dagger bench` over gates: the live loop per run, gates × seeds, results recomputed from the event logs."""

import csv
import json

import pytest

from dagger.app.cli import main
from dagger.app.gate_bench import GateBenchConfig, run_gate_bench, write_gate_report
from dagger.events import read_events
from dagger.fleet_metrics import rohe
from dagger.metrics import achieved_rate, summarize

RUN = ["task=point", "robots=2", "steps=300", "demos=1", "learner.batch_size=32", "gate.alpha=0.1"]
TINY = GateBenchConfig(gates=["lazy", "auto"], seeds=2, workers=2, run=RUN)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("gates")
    return out, run_gate_bench(TINY, out)


def test_one_row_per_gate_and_seed_recomputed_from_its_events(bench):
    out, rows = bench
    assert [(r["gate"], r["seed"]) for r in rows] == [("lazy", 0), ("lazy", 1), ("auto", 0), ("auto", 1)]
    with (out / "results.csv").open() as f:
        assert [row["gate"] for row in csv.DictReader(f)] == ["lazy", "lazy", "auto", "auto"]
    for row in rows:
        events = read_events(out / "runs" / f"{row['gate']}-{row['seed']}" / "events.jsonl")
        s = summarize(events)
        assert (row["steps"], row["human_steps"], row["takeovers"]) == (s["steps"], s["human_steps"], s["takeovers"])
        assert row["rohe"] == rohe(s["successes"], s["human_steps"])
        assert row["achieved_rate"] == (round(achieved_rate(events), 4) if row["gate"] == "auto" else None)
    assert rows[0]["takeovers"] != rows[1]["takeovers"] or rows[0]["human_steps"] != rows[1]["human_steps"]


def test_report_has_the_table_and_plots_from_the_logs_alone(bench):
    out, rows = bench
    means = write_gate_report(out)
    assert list(means) == ["lazy", "auto"]
    lazy = [r["intervention_rate"] for r in rows if r["gate"] == "lazy"]
    assert means["lazy"]["intervention_rate"][0] == pytest.approx(sum(lazy) / 2)
    assert "achieved_rate" in means["auto"] and "achieved_rate" not in means["lazy"]
    md = (out / "report.md").read_text()
    for plot in ("intervention", "rohe", "alpha"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 5000 and f"plots/{plot}.png" in md


def test_report_command_reads_a_gate_bench(bench, capsys):
    out, _ = bench
    assert main(["report", str(out), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"lazy", "auto"}


def test_tensorboard_for_a_gate_bench_writes_one_run_per_bench_run(bench, tmp_path, capsys):
    out, _ = bench
    assert main(["report", str(out), "--tensorboard", str(tmp_path / "tb")]) == 0
    runs = sorted(p.name for p in (tmp_path / "tb").iterdir())
    assert runs == ["auto-0", "auto-1", "lazy-0", "lazy-1"]
    assert all(any((tmp_path / "tb" / r).glob("events.out.tfevents.*")) for r in runs)
    assert "lazy" in capsys.readouterr().out  # the means, as a table


def test_a_wrong_gate_is_named_before_any_run(tmp_path, capsys):
    config = tmp_path / "gates.yaml"
    config.write_text("gates: [lazy, lasy]\nseeds: 1\n")
    assert main(["bench", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "'lasy'" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_seed_run_again_gives_the_same_row(bench, tmp_path):
    from dagger.app.gate_bench import run_gate

    _, rows = bench
    again = run_gate(TINY, "auto", 0, tmp_path / "auto-0")
    first = next(r for r in rows if (r["gate"], r["seed"]) == ("auto", 0))
    assert {k: v for k, v in again.items() if k != "wall_s"} == {k: v for k, v in first.items() if k != "wall_s"}
    assert (tmp_path / "auto-0" / "events.jsonl").stat().st_size > 0
