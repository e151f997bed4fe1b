"""`dagger export --format robomimic`: a run's episodes with who acted at every step, in robomimic's HDF5 layout,
read back bit for bit."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from hypothesis import given, settings

from dagger.app.cli import main
from dagger.episodes import read_episodes
from dagger.formats.robomimic import read_robomimic, write_robomimic
from tests.dataset_cases import assert_same, episodes, make_run, zero_episodes


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path)


def test_episodes_are_joined_in_order_with_who_acted(run):
    first, second = read_episodes(run / "segments")
    assert (first.robot, len(first), second.robot, len(second)) == (0, 9, 1, 5)
    assert first.steps["step"].tolist() == list(range(9))
    assert first.intervention.tolist() == [False] * 3 + [True] * 2 + [False] * 4
    assert first.operator.tolist() == [-1] * 3 + [1] * 2 + [-1] * 4
    assert not first.success and second.success
    human = read_episodes(run / "segments", only="human")
    assert [(ep.robot, len(ep), ep.controller) for ep in human] == [(0, 2, ["operator:1"] * 2)]
    assert [ep.robot for ep in read_episodes(run / "segments", success_only=True)] == [1]


def test_the_export_follows_robomimics_layout_key_by_key(run, tmp_path, capsys):
    out = tmp_path / "out.hdf5"
    assert main(["export", str(run), "--format", "robomimic", "--out", str(out)]) == 0
    assert "2 episodes, 14 steps (2 by operators) of point" in capsys.readouterr().out
    with h5py.File(out) as f:
        data = f["data"]
        assert data.attrs["total"] == 14 == sum(data[d].attrs["num_samples"] for d in data)
        env_args = json.loads(data.attrs["env_args"])
        assert env_args == {"env_name": "dagger/Point-v0", "type": 2, "env_kwargs": {"task": "point"}}
        assert sorted(data) == ["demo_0", "demo_1"]
        demo = data["demo_0"]
        assert demo["obs/state"].shape == (9, 3) and demo["obs/state"].dtype == np.float32
        assert demo["actions"].shape == (9, 2) and demo["rewards"].shape == (9,) and demo["dones"].shape == (9,)
        assert demo["dones"][()].tolist() == [False] * 8 + [True]
        assert demo["intervention"][()].sum() == 2 and demo["operator"][3] == 1
        assert demo["policy_actions"][4].tolist() == [-1.0, -1.0] and demo["gate_threshold"][0] == np.float32(0.25)
        assert "obs/image" not in demo  # a state-only task
        train, valid = [m.decode() for m in f["mask/train"][()]], [m.decode() for m in f["mask/valid"][()]]
        assert f["mask/train"].dtype.kind == "S" and sorted(train + valid) == ["demo_0", "demo_1"]


def test_an_export_of_nothing_says_so(run, tmp_path, capsys):
    assert main(["export", str(run), "--out", str(tmp_path / "x.hdf5"), "--only", "human", "--success-only"]) == 2
    assert "no episodes to export" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x.hdf5")]) == 2


@settings(max_examples=40, deadline=None)
@given(episodes())
def test_export_then_import_gives_the_same_steps_bit_for_bit(tmp_path_factory, eps):
    path = tmp_path_factory.mktemp("rt") / "x.hdf5"
    write_robomimic(eps, path, "point")
    back = read_robomimic(path)
    assert_same(eps, back)


def test_someone_elses_robomimic_file_is_read_with_defaults_and_a_bad_one_is_named(tmp_path):
    path = tmp_path / "theirs.hdf5"
    with h5py.File(path, "w") as f:  # robomimic's keys only, as its own datasets have them
        for i, n in enumerate((3, 2)):
            demo = f.create_group(f"data/demo_{i}")
            demo.attrs["num_samples"] = n
            demo["obs/state"] = np.arange(4 * n, dtype=np.float64).reshape(n, 4)
            demo["actions"], demo["rewards"], demo["dones"] = np.ones((n, 2)), np.zeros(n), np.arange(n) == n - 1
    first, second = read_robomimic(path)
    assert (len(first), len(second), first.controller) == (3, 2, ["demo"] * 3)
    assert first.steps["obs"].dtype == np.float32 and first.steps["policy_action"].tolist() == [[1.0, 1.0]] * 3
    assert first.steps["step"].tolist() == [0, 1, 2] and second.steps["done"].tolist() == [False, True]
    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
        f["data/demo_1/actions"] = np.ones((5, 2))
    with pytest.raises(ValueError, match=r"data/demo_1: .*actions"):
        read_robomimic(path)


def test_a_run_starts_from_someone_elses_demonstrations(tmp_path, capsys):
    from dagger.events import read_events
    from dagger.tasks import make_task

    task = make_task("point")
    theirs = zero_episodes(task.obs_dim, task.act_dim, (7, 5))
    path = tmp_path / "theirs.hdf5"
    write_robomimic(theirs, path, "point")
    run = tmp_path / "run"
    assert main(["start", "--in-process", "--task", "point", "--steps", "100", "--demos", str(path), "demos=0",
                 "--run-dir", str(run), "learner.pretrain_updates=10", "eval.every_versions=0"]) == 0
    start = next(e for e in read_events(run / "events.jsonl") if e["ev"] == "policy_start")
    assert (start["demo_episodes"], start["demo_steps"]) == (2, 12)
    capsys.readouterr()
    assert main(["start", "--in-process", "--task", "reach", "--demos", str(path), "--run-dir",
                 str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert f"obs {task.obs_dim}, act 2" in err and "task reach has obs 39, act 4" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "no").exists()


def test_dagger_import_checks_a_dataset_against_a_task(run, tmp_path, capsys):
    out = tmp_path / "out.hdf5"
    main(["export", str(run), "--out", str(out)])
    capsys.readouterr()
    assert main(["import", str(out), "--task", "reach"]) == 2  # 3 state dims, 2 action dims: not reach's
    assert "episode 0 has obs 3, act 2" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "nothing.hdf5")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_robomimics_own_dataset_info_script_reads_the_export(run, tmp_path):
    """robomimic's scripts/get_dataset_info.py needs only h5py and numpy (`pip install --no-deps robomimic`)."""
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    spec = importlib.util.find_spec("robomimic")
    if spec is None or spec.origin is None:
        pytest.skip("robomimic is not installed (pip install --no-deps robomimic==0.3.0)")
    out = tmp_path / "out.hdf5"
    main(["export", str(run), "--out", str(out)])
    script = Path(spec.origin).parent / "scripts" / "get_dataset_info.py"
    done = subprocess.run([sys.executable, str(script), "--dataset", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "total transitions: 14" in done.stdout and "total trajectories: 2" in done.stdout
    assert "filter key train with 2 demos" in done.stdout
