"""Help a new user can act on: flags with defaults and examples, every setting listed, no surprise benchmark."""

import yaml

from tests.conftest import run_dagger


def test_start_help_shows_each_flags_meaning_default_and_examples():
    out = " ".join(run_dagger("start", "--help").stdout.split())  # as read, whatever the terminal's width
    assert "number of robot workers (default: 4; setting robots)" in out
    assert "(default: reach; setting task.name)" in out and "(default: 0; setting seed)" in out
    assert "examples:" in out and "dagger start --robots 4" in out


def test_config_keys_lists_every_setting_with_its_default_and_docstring():
    lines = run_dagger("config", "--keys").stdout.splitlines()
    keys = dict(line.split(" = ", 1) for line in lines if not line.startswith(" "))
    assert keys["robots"] == "4" and keys["learner.checkpoint_every"] == "20" and keys["gate.name"] == '"ensemble"'
    docs = [line for line in lines if line.startswith("    ")]
    assert len(keys) >= 80 and all(not line.startswith(" ") or line.strip() for line in lines)
    assert lines[lines.index("learner.checkpoint_every = 20") + 1].strip().startswith("write RUN_DIR/checkpoints/")
    assert len(docs) >= len(keys)  # every key has at least one line of docstring


def test_config_prints_the_settings_a_start_would_run(tmp_path):
    (tmp_path / "c.yaml").write_text("robots: 7\ngate: {name: auto}\n")
    out = run_dagger("config", "--config", str(tmp_path / "c.yaml"), "gate.alpha=0.2")
    cfg = yaml.safe_load(out.stdout)
    got = (cfg["robots"], cfg["gate"]["name"], cfg["gate"]["alpha"], cfg["task"]["name"])
    assert got == (7, "auto", 0.2, "reach")
    bad = run_dagger("config", "robots=0")
    assert bad.returncode == 2 and "'robots' must be in [1, 1000]" in bad.stderr


def test_a_bare_bench_says_what_it_would_run_and_runs_nothing(tmp_path):
    out = run_dagger("bench", cwd=tmp_path)
    assert out.returncode == 0
    assert "5 allocators" in out.stdout and "15 runs of 100 robots" in out.stdout and "min" in out.stdout
    assert "dagger bench --yes" in out.stdout and list(tmp_path.iterdir()) == []
