"""What the report's figures show: seed bands, legends clear of the data, titles, the loss plot, and no figure at
all for a run without steps. Real matplotlib (Agg), real files; each saved figure is kept for its artists."""

import io
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from rich.console import Console

from dagger.app.bench_report import bench_title, plot_bench, print_means, seed_rows
from dagger.app.plots import plot_alpha, plot_alpha_sweep, plot_intervention, plot_learning_curve
from dagger.app.report import NOTHING_TO_DRAW, print_run_report, write_run_report
from dagger.metrics import summarize

START = {"ev": "run_start", "t": 100.0, "task": "point", "gate": "auto", "alpha": 0.1, "robots": 3, "operators": 1,
         "seed": 0}


@pytest.fixture
def saved(monkeypatch) -> dict[str, Figure]:
    """file name -> the Figure saved there (the file is written too)."""
    figures: dict[str, Figure] = {}
    savefig = Figure.savefig

    def keep(fig: Figure, path, **kwargs):
        figures[Path(path).name] = fig
        savefig(fig, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def title(fig: Figure) -> str:
    return fig.get_suptitle() or fig.axes[0].get_title()


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def segment(seq: int, t_end: float, steps: int, controller: str = "policy") -> dict:
    return {"ev": "segment", "t": t_end, "t_start": t_end - 1, "t_end": t_end, "robot": seq % 3, "seq": seq,
            "steps": steps, "controller": controller, "versions": [[1, steps]]}


def learner(t: float, updates: int, loss: float | None) -> dict:
    return {"ev": "learner", "t": t, "updates": updates, "loss": loss}


# 60 steps, the middle 20 by an operator; losses logged at 3 of 4 learner events (none before training).
RUN = [START, learner(100.5, 0, None), segment(0, 101.0, 20), segment(1, 102.0, 20, "operator:0"),
       learner(102.0, 100, 0.5), {"ev": "weights_published", "t": 102.5, "version": 2},
       {"ev": "eval", "t": 103.0, "version": 2, "success_rate": 0.4, "ci95": [0.2, 0.6], "episodes": 10},
       learner(104.0, 200, 0.25), segment(2, 105.0, 20), learner(106.0, 300, 0.125), {"ev": "run_end", "t": 107.0}]


def fleet_run(allocator: str, seed: int, humans: list[float]) -> list[dict]:
    zeros = dict.fromkeys(("violations", "hard_resets", "idle", "switches", "reward"), 0)
    return [{"ev": "run_start", "t": 0.0, "allocator": allocator, "seed": seed, "robots": 4, "humans": 2,
             "steps": len(humans), "allocators": ["cur", "random"]}] + [
        {"ev": "fleet_step", "t": float(t), "human_actions": h, "successes": t % 2, **zeros}
        for t, h in enumerate(humans)]


BENCH = {"cur-0": fleet_run("cur", 0, [0, 2, 4, 4] * 10), "cur-1": fleet_run("cur", 1, [2, 2, 2, 0] * 10),
         "random-0": fleet_run("random", 0, [1] * 40)}


def test_curves_over_seeds_are_their_mean_with_a_min_max_band(tmp_path, saved):
    seeds = [[0.1, 0.4, 0.2], [0.3, 0.2, 0.2], [0.2, 0.3, 0.5]]
    plot_intervention(tmp_path / "seeds.png", {"cur": ([10, 20, 30], seeds)}, title="three seeds")
    plot_intervention(tmp_path / "one.png", {"run": ([10, 20, 30], seeds[0])}, title="one run")
    ax = saved["seeds.png"].axes[0]
    (band,) = bands(ax)
    y = band.get_paths()[0].vertices[:, 1]
    assert (y.min(), y.max()) == pytest.approx((0.1, 0.5))
    assert ax.lines[0].get_ydata() == pytest.approx(np.mean(seeds, axis=0))
    assert "min–max over 3 seeds" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert bands(saved["one.png"].axes[0]) == [] and saved["one.png"].axes[0].get_legend() is None


def test_bench_plots_band_every_allocator_with_two_seeds_and_name_the_fleet(tmp_path, saved):
    plot_bench(tmp_path, BENCH, seed_rows(BENCH))
    assert {"cumulative.png", "intervention.png", "rohe.png"} <= {p.name for p in tmp_path.iterdir()}
    for ax in saved["cumulative.png"].axes:
        assert len(bands(ax)) == 1 and [line.get_label() for line in ax.lines] == ["cur", "random"]  # random: 1 seed
    rates = saved["intervention.png"].axes[0]
    assert rates.get_ylabel() == "human actions / robots per window"
    # cur, windows of 2 steps: seed 0 acts 0+2 then 4+4, seed 1 acts 2+2 then 2+0; 4 robots; mean of the seeds
    assert rates.lines[0].get_ydata()[:2] == pytest.approx([(1 / 4 + 2 / 4) / 2, (4 / 4 + 1 / 4) / 2])
    assert bench_title(BENCH) == "fleet benchmark · 4 robots, 2 operators, 40 steps"
    assert all(bench_title(BENCH) in title(fig) for fig in saved.values())


def test_legends_sit_outside_the_data_area(tmp_path, saved):
    plot_intervention(tmp_path / "a.png", {"cur": ([1, 2, 3], [[0.9, 0.9, 0.9], [1, 1, 1]]), "fifo": ([1, 2, 3],
                                                                                                [0.5, 0.8, 1])})
    plot_alpha(tmp_path / "b.png", [1, 2, 3], [0.2, 0.05, 0.1], alpha=0.1)
    plot_alpha_sweep(tmp_path / "c.png", {"auto": [(0.05, 0.05), (0.2, 0.19)]})
    plot_bench(tmp_path, BENCH, seed_rows(BENCH))
    with_legend = [ax for fig in saved.values() for ax in fig.axes if ax.get_legend()]
    assert len(with_legend) == 5
    for ax in with_legend:
        legend, data = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert not legend.overlaps(data) and legend.x0 >= data.x1  # to the right of the axes


def test_run_figures_are_titled_with_task_gate_and_robots_not_the_folder(tmp_path, saved):
    run_dir = tmp_path / "20261125-101500"
    run_dir.mkdir()
    write_run_report(run_dir, RUN)
    assert set(saved) == {"intervention.png", "alpha.png", "learning_curve.png", "loss.png"}
    for name, fig in saved.items():
        assert "point · gate auto · 3 robots, 1 operator" in title(fig), name
        assert run_dir.name not in title(fig), name
        assert (run_dir / "plots" / name).stat().st_size > 5000


def test_loss_plot_draws_the_logged_losses_against_updates_and_time(tmp_path, saved):
    write_run_report(tmp_path, RUN)
    by_updates, by_time = saved["loss.png"].axes
    assert list(by_updates.lines[0].get_xdata()) == [100, 200, 300]
    assert list(by_updates.lines[0].get_ydata()) == [0.5, 0.25, 0.125]  # the null loss before training is left out
    assert list(by_time.lines[0].get_xdata()) == [2.0, 4.0, 6.0] and by_time.get_xlabel().endswith("(s)")
    assert "(plots/loss.png)" in (tmp_path / "report.md").read_text()


def test_a_run_without_any_loss_has_no_loss_plot(tmp_path, saved):
    write_run_report(tmp_path, [e for e in RUN if e["ev"] != "learner"] + [learner(106.0, 0, None)])
    assert "loss.png" not in saved and not (tmp_path / "plots" / "loss.png").exists()
    assert "loss.png" not in (tmp_path / "report.md").read_text()


def test_learning_curve_time_axis_turns_to_minutes_for_long_runs(tmp_path, saved):
    points = [{"success_rate": 0.5, "ci95": [0.3, 0.7], "human_labels": n, "wall_s": s}
              for n, s in ((0, 0.0), (50, 300.0), (90, 600.0))]
    plot_learning_curve(tmp_path / "lc.png", points, title="t")
    by_labels, by_time = saved["lc.png"].axes
    assert by_time.get_xlabel() == "time since the run began (min)"
    assert list(by_time.lines[0].get_xdata()) == [0.0, 5.0, 10.0]
    assert list(by_labels.lines[0].get_xdata()) == [0, 50, 90]


def test_a_run_with_no_steps_draws_nothing_and_says_so_once(tmp_path, saved):
    events = [START, learner(101.0, 0, None), {"ev": "run_end", "t": 102.0, "reason": "interrupted"}]
    write_run_report(tmp_path, events)
    assert saved == {} and not (tmp_path / "plots").exists()
    md = (tmp_path / "report.md").read_text()
    assert md.count(NOTHING_TO_DRAW) == 1 and ".png" not in md
    assert (tmp_path / "report.html").read_text().count(NOTHING_TO_DRAW) == 1
    out = io.StringIO()
    print_run_report(tmp_path, summarize(events), Console(file=out, width=120))
    assert out.getvalue().count("Nothing to draw") == 1 and "plots:" not in out.getvalue()


def test_bench_means_print_as_a_rich_table_not_markdown():
    out = io.StringIO()
    print_means(Path("bench/fleet"), {"cur": {"successes": [13.333, 0.4714], "human_actions": [1548.3, 26.3]},
                                      "fifo": {"successes": [7.0, 0.0]}}, Console(file=out, width=100))
    text = out.getvalue()
    assert "|---" not in text and "┃" in text
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in text.splitlines()
            if line.startswith("│")}
    assert rows == {"successes": ["13.3 ± 0.47", "7 ± 0"], "human actions": ["1,548 ± 26", ""]}
