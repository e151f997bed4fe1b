"""Start-up as a newcomer meets it: help, config and --version load none of the heavy libraries (torch, Ray, MuJoCo,
gymnasium, Meta-World, the dataset writers), and `dagger start` says what it is doing before the robots run."""

import json
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.conftest import ROOT, run_dagger

HEAVY = ("torch", "ray", "mujoco", "gymnasium", "metaworld", "pyarrow", "h5py", "matplotlib", "pygame")

PROBE = f"""
import json, sys
from dagger.app.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""

QUICK = [["--help"], ["--version"], ["config"], ["config", "--keys"], ["config", "--help"], ["start", "--help"],
         ["eval", "--help"], ["report", "--help"], ["bench", "--help"], ["devices", "--help"], ["serve", "--help"],
         ["robot-agent", "--help"], ["export", "--help"], ["import", "--help"]]


@pytest.mark.parametrize("args", QUICK, ids=" ".join)
def test_quick_commands_import_no_heavy_library(args):
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}, done.stderr[-2000:]


def test_version_prints_the_installed_package_version():
    done = run_dagger("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"dagger {version('dagger-fleet')}"


def test_start_says_each_step_of_its_start_up(tmp_path):
    run = tmp_path / "run"
    done = run_dagger("start", "--in-process", "--task", "point", "--robots", "2", "--steps", "200",
                      "--run-dir", str(run), "demos=2", "learner.pretrain_updates=40", "learner.batch_size=16",
                      timeout=120)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("dagger: ")]
    expected = [rf"running 2 robots in this process \(point, gate ensemble\) → {re.escape(str(run))}",
                r"collecting demonstrations: 2 from the scripted expert",
                r"pretraining the policy: 40 updates on \d+ demonstration steps",
                r"pretrained the policy: 40 updates in \d+\.\d s, loss \d+\.\d{4}",
                r"starting 2 robots"]
    assert len(said) == len(expected), said
    for line, pattern in zip(said, expected, strict=True):
        assert re.fullmatch("dagger: " + pattern, line), (line, pattern)


def test_import_dagger_registers_the_tasks_with_gymnasium_when_gymnasium_comes():
    code = ("import sys, dagger; assert 'gymnasium' not in sys.modules; import gymnasium; "
            "env = gymnasium.make('dagger/Point-v0'); print(env.reset(seed=0)[0].shape)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "(6,)", done.stderr[-2000:]
