"""`dagger bench` over failure modes: DAgger against behavior cloning on as many labels, results.csv and the report
recomputed from the bench dir's files."""

import csv
import json

import pytest

from dagger.app.cli import main
from dagger.app.failure_bench import (
    COLUMNS,
    FailureBenchConfig,
    experiments,
    run_failure_bench,
    trained_on,
    write_failure_report,
)
from dagger.config import apply_settings
from dagger.events import read_events
from tests.conftest import ROOT

RUN = ["robots=2", "steps=300", "demos=1", "learner.batch_size=32", "learner.publish_every=20",
       "learner.pretrain_updates=200", "eval.every_versions=0", "log.writers=[jsonl]"]
EXPERIMENTS = [{"name": "reach", "task": "point", "shows": "nothing: a plain reach"},
               {"name": "jitter", "task": "point", "run": ["steps=200"],
                "eval": [["task.camera_jitter=0"], ["task.camera_jitter=4"]]}]
TINY = FailureBenchConfig(experiments=EXPERIMENTS, seeds=1, episodes=5, run=RUN, workers=2)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("failures")
    return out, run_failure_bench(TINY, out)


def test_one_row_per_experiment_method_seed_and_condition(bench):
    out, rows = bench
    with (out / "results.csv").open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        keys = [(r["experiment"], r["method"], r["seed"], r["condition"]) for r in reader]
    assert keys == [("reach", "dagger", "0", "as trained"), ("reach", "bc", "0", "as trained"),
                    ("jitter", "dagger", "0", "camera_jitter=0"), ("jitter", "dagger", "0", "camera_jitter=4"),
                    ("jitter", "bc", "0", "camera_jitter=0"), ("jitter", "bc", "0", "camera_jitter=4")]
    for row in rows:
        run_dir = out / "runs" / f"{row['experiment']}-{row['method']}-{row['seed']}"
        evals = json.loads((run_dir / "evals.json").read_text())["evals"]
        assert row["success_rate"] == next(e for e in evals if e["condition"] == row["condition"])["success_rate"]
        assert (run_dir / "checkpoints" / "latest").is_file() and row["episodes"] == 5


def test_bc_has_the_dagger_runs_labels_and_updates(bench):
    out, _ = bench
    for name in ("reach", "jitter"):
        dagger = trained_on(read_events(out / "runs" / f"{name}-dagger-0" / "events.jsonl"))
        bc = trained_on(read_events(out / "runs" / f"{name}-bc-0" / "events.jsonl"))
        assert dagger["labels"] > 40  # more than its one demonstration: the operator labelled steps too
        assert dagger["labels"] <= bc["labels"] < dagger["labels"] + dagger["demo_length"]
        assert bc["updates"] == dagger["updates"]


def test_report_files_and_plots(bench, capsys):
    out, _ = bench
    assert main(["report", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary) == ["reach", "jitter"] and list(summary["jitter"]) == ["camera_jitter=0", "camera_jitter=4"]
    md = (out / "report.md").read_text()
    assert "nothing: a plain reach" in md and (out / "report.html").stat().st_size > 1000
    for plot in ("success", "jitter"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 5000 and f"plots/{plot}.png" in md


def test_the_table_from_a_hand_written_results_csv(tmp_path):
    (tmp_path / "bench.json").write_text(json.dumps(
        {"experiments": [{"name": "shift", "task": "point", "shows": "a moved camera"}], "seeds": 3, "episodes": 10,
         "run": [], "workers": 2}))
    rates = {"dagger": [0.9, 0.7, 0.8], "bc": [0.2, 0.4, 0.3]}
    with (tmp_path / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({"experiment": "shift", "task": "point", "method": method, "seed": seed,
                          "condition": "as trained", "labels": 100 + seed, "updates": 500, "episodes": 10,
                          "success_rate": rate, "violation_rate": 0.1 * seed, "mean_return": -1.0, "wall_s": 1.0}
                         for method, seeds in rates.items() for seed, rate in enumerate(seeds))
    summary = write_failure_report(tmp_path)["shift"]["as trained"]
    assert summary["dagger"]["success_rate"] == pytest.approx([0.8, 0.7, 0.9])
    assert summary["bc"]["violation_rate"] == pytest.approx([0.1, 0.0, 0.2])
    assert summary["corrections fix it?"] == "yes"  # 0.8 - 0.3 >= 0.1 and 0.7 > 0.4
    md = (tmp_path / "report.md").read_text()
    assert "| shift | a moved camera | as trained | dagger | 101 | 0.80 (0.70–0.90) | 0.10 (0.00–0.20) | yes |" in md
    assert "| shift |  | as trained | bc | 101 | 0.30 (0.20–0.40) | 0.10 (0.00–0.20) |  |" in md  # said once


@pytest.mark.parametrize(("entry", "named"), [
    ({"name": "bad", "task": "pointy"}, "'pointy'"),
    ({"name": "bad", "task": "point", "evals": [[]]}, "unknown key 'evals'"),
    ({"name": "bad", "task": "point", "eval": [["task.camera_jiter=4"]]}, "task.camera_jitter"),
    ({"name": "bad", "task": "point", "eval": [["robots=3"]]}, "only task settings"),
])
def test_a_wrong_experiment_is_named_in_one_line_before_any_run(tmp_path, capsys, entry, named):
    config = tmp_path / "failures.yaml"
    config.write_text(json.dumps({"experiments": [{"name": "fine", "task": "point"}, entry], "seeds": 1}))
    assert main(["bench", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "experiment 'bad'" in err and named in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_shipped_config_is_valid():
    cfg = FailureBenchConfig()
    apply_settings(cfg, ROOT / "configs/bench/failure_modes.yaml", [])
    assert [e.name for e in experiments(cfg)] == ["camera-shift", "multimodal", "spurious", "compounding",
                                                   "compounding-arm"]
