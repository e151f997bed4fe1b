"""`dagger export --format robomimic`: a run's episodes with who acted at every step, in robomimic's HDF5 layout,
read back bit for bit."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import given, settings

from dagger.app.cli import main
from dagger.episodes import read_episodes
from dagger.events import read_events
from dagger.formats.robomimic import read_robomimic, write_robomimic
from tests.dataset_cases import assert_same, episodes, make_run, zero_episodes
from workers.buffer import BufferWorker


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
        assert demo["policy_action"][4].tolist() == [-1.0, -1.0] and demo["gate_threshold"][0] == np.float32(0.25)
        assert demo["t_wall_ns"].dtype == np.int64 and demo["t_wall_ns"][()].tolist() == [
            (100 + i) * 10**9 for i in range(9)]
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


def point_like(obs_dim=3, act_dim=2):
    """A task of make_run's shapes (point's own has 6 state dims) at point's 20 steps a second."""
    from types import SimpleNamespace

    return SimpleNamespace(name="point3", obs_dim=obs_dim, act_dim=act_dim, dt=0.05, image_shape=None)


def test_only_the_steps_people_took_become_demonstrations(run, tmp_path):
    from buffers.schema import DEMO
    from dagger.formats.demos import demo_segments, read_dataset

    out = tmp_path / "out.hdf5"
    assert main(["export", str(run), "--only", "all", "--out", str(out)]) == 0
    (seg,) = demo_segments(read_dataset(out, point_like()), first=2)  # operator 1's 2 steps of robot 0's episode
    assert (seg.key, seg.episode, seg.controller, len(seg)) == ("-1:2", 2, DEMO, 2)
    assert seg.obs[:, 0].tolist() == [10, 11] and seg.step.tolist() == [3, 4]
    (ep,) = zero_episodes(3, 2, (7,))
    ep.controller = ["operator:1", "operator:2", "policy", "policy", "operator:1", "demo", "policy"]
    segs = demo_segments([ep])  # runs that follow each other continue one episode; after the policy's, a new one
    assert [(s.seq, s.episode, len(s)) for s in segs] == [(0, 0, 1), (1, 0, 1), (2, 1, 1), (3, 1, 1)]


def test_an_episode_with_missing_steps_is_split_and_export_warns_of_log_problems(tmp_path, capsys):
    from tests.dataset_cases import segment
    from workers.buffer import BufferWorker

    buffer = BufferWorker(str(tmp_path / "segments"), 0.0, 0)  # seq 1 (steps 3 and 4) lost
    buffer.add([segment(0, 0, 0, "policy", 3), segment(0, 2, 0, "policy", 4, 5, True)])
    buffer.close()
    first, second = read_episodes(tmp_path / "segments")
    assert (first.robot, first.episode, second.robot, second.episode) == (0, 0, 0, 0)
    assert first.steps["step"].tolist() == [0, 1, 2] and second.steps["step"].tolist() == [5, 6, 7, 8]
    assert not first.steps["done"].any() and second.steps["done"].tolist() == [False] * 3 + [True]

    run = make_run(tmp_path / "torn")
    with open(run / "segments/segments-000000.log", "ab") as f:
        f.write(b"torn")
    assert main(["export", str(run), "--out", str(tmp_path / "out.hdf5")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: segment log: ") and "torn tail: 4 bytes" in err[0]


def robomimic_file(path, n=3, **fields):
    """One demo of make_run's shapes; `fields` replace its datasets (obs/state, actions, rewards, dones)."""
    with h5py.File(path, "w") as f:
        demo = f.create_group("data/demo_0")
        values = {"obs/state": np.zeros((n, 3)), "actions": np.zeros((n, 2)), "rewards": np.zeros(n),
                  "dones": np.arange(n) == n - 1} | fields
        for key, value in values.items():
            demo[key] = value
    return path


@pytest.mark.parametrize(("fields", "message"), [
    ({"actions": np.full((3, 2), np.nan)}, r"episode 0: field 'action': nan at step 0"),
    ({"obs/state": np.array([[0, 0, 0], [0, np.inf, 0], [0, 0, 0]])}, r"episode 0: field 'obs': inf at step 1"),
    ({"actions": np.full((3, 2), 1e300)}, r"episode 0: field 'action': inf at step 0 \(not finite, or beyond"),
    ({"rewards": np.zeros((3, 1))}, r"data/demo_0: field 'reward': shape \(3, 1\), expected 1-D with 3 steps"),
    ({"rewards": np.float64(0)}, r"data/demo_0: field 'reward': shape \(\), expected 1-D"),
    ({"dones": np.array([0.0, 0.5, 1.0])}, r"data/demo_0: field 'done': 0.5 at step 1, expected 0 or 1"),
    ({"actions": np.array([[b"a", b"b"]] * 3)}, r"data/demo_0: field 'action': dtype \|S1, expected numbers"),
    ({"actions": np.float64(1)}, r"data/demo_0: obs/state \(3, 3\) and actions \(\): expected"),
])
def test_import_refuses_what_is_not_finite_misshaped_or_not_a_flag_in_one_line(tmp_path, fields, message):
    from dagger.formats.demos import read_dataset

    path = robomimic_file(tmp_path / "theirs.hdf5", **fields)
    with pytest.raises(ValueError, match=f"^{path}: {message}"):
        read_dataset(path, point_like())


def test_a_bad_demonstration_file_fails_start_before_a_run_dir_and_import_in_one_line(tmp_path, capsys):
    path = robomimic_file(tmp_path / "theirs.hdf5", n=4, **{"obs/state": np.full((4, 6), np.nan)})  # point's shape
    assert main(["import", str(path), "--task", "point"]) == 2
    assert capsys.readouterr().err == f"dagger: error: {path}: episode 0: field 'obs': nan at step 0 (not finite, " \
                                      f"or beyond float32)\n"
    assert main(["start", "--in-process", "--task", "point", "--demos", str(path), "--run-dir",
                 str(tmp_path / "no")]) == 2
    assert "field 'obs': nan" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_a_robomimic_file_dagger_cannot_read_is_named_with_the_group_or_keys(tmp_path):
    path = robomimic_file(tmp_path / "theirs.hdf5")
    with h5py.File(path, "a") as f:
        f.create_group("data/env_meta")
    with pytest.raises(ValueError, match=r"theirs.hdf5: data/env_meta: not a demo_<N> group"):
        read_robomimic(path)
    with h5py.File(path, "w") as f:  # robosuite's low_dim keys, no single state vector
        f["data/demo_0/obs/robot0_eef_pos"], f["data/demo_0/obs/object"] = np.zeros((3, 3)), np.zeros((3, 9))
        f["data/demo_0/actions"] = np.zeros((3, 7))
    with pytest.raises(ValueError, match=r"data/demo_0: no obs/state \(obs holds object, robot0_eef_pos\)"):
        read_robomimic(path)


def test_the_export_has_next_obs_for_every_obs_key(run, tmp_path):
    from tests.dataset_cases import camera_episodes

    out = tmp_path / "out.hdf5"
    assert main(["export", str(run), "--out", str(out)]) == 0
    with h5py.File(out) as f:
        demo = f["data/demo_0"]
        obs, nxt = demo["obs/state"][()], demo["next_obs/state"][()]
        assert sorted(demo["next_obs"]) == ["state"] and nxt.shape == (9, 3) and nxt.dtype == np.float32
        assert np.array_equal(nxt[:-1], obs[1:]) and np.array_equal(nxt[-1], obs[-1])  # the last repeats
    write_robomimic(camera_episodes((3,)), tmp_path / "camera.hdf5", "point")
    with h5py.File(tmp_path / "camera.hdf5") as f:
        images, nxt = f["data/demo_0/obs/image"][()], f["data/demo_0/next_obs/image"][()]
        assert nxt.shape == (3, 6, 4, 3) and np.array_equal(nxt, images[[1, 2, 2]])


def test_an_export_does_not_overwrite_a_file(run, tmp_path, capsys):
    out = tmp_path / "out.hdf5"
    out.write_bytes(b"mine")
    assert main(["export", str(run), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"dagger: error: {out}: exists (export writes a new file; remove it or " \
                                      f"choose another)\n"
    assert out.read_bytes() == b"mine"


def test_import_knows_an_hdf5_file_by_its_signature_whatever_its_name(run, tmp_path, capsys):
    out = tmp_path / "corrections"
    assert main(["export", str(run), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["import", str(out), "--task", "reach"]) == 2
    assert "episode 0 has obs 3, act 2" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a dataset")
    assert main(["import", str(tmp_path / "notes.txt")]) == 2
    assert "not a dataset dagger reads" in capsys.readouterr().err


def test_both_exports_name_dagger_labels_alike_and_keep_time_in_int64_nanoseconds(run, tmp_path):
    assert main(["export", str(run), "--out", str(tmp_path / "out.hdf5")]) == 0
    assert main(["export", str(run), "--format", "lerobot", "--out", str(tmp_path / "ds")]) == 0
    with h5py.File(tmp_path / "out.hdf5") as f:
        demo = f["data/demo_0"]
        robomimics_own = {"obs", "next_obs", "actions", "rewards", "dones"}
        labels = {"success" if k == "next.success" else k for k in set(demo) - robomimics_own}
        times = demo["t_wall_ns"][()]
    features = json.loads((tmp_path / "ds/meta/info.json").read_text())["features"]
    assert "policy_action" in labels and labels <= {"success" if k == "next.success" else k for k in features}
    assert times.dtype == np.int64 and features["t_wall_ns"]["dtype"] == "int64"


def test_a_robomimic_file_with_the_older_names_still_reads(run, tmp_path):
    """Exports before one name was used in both formats: policy_actions, and float64 seconds in t_wall."""
    eps = read_episodes(run / "segments")
    for ep in eps:
        ep.steps["t_wall"] = 1.7e9 + np.arange(len(ep)) * 0.05
    path = tmp_path / "old.hdf5"
    write_robomimic(eps, path, "point")
    with h5py.File(path, "a") as f:
        for i, ep in enumerate(eps):
            demo = f[f"data/demo_{i}"]
            demo.move("policy_action", "policy_actions")
            del demo["t_wall_ns"]
            demo["t_wall"] = ep.steps["t_wall"]
    assert_same(eps, read_robomimic(path))


def test_a_time_int64_nanoseconds_cannot_hold_stops_the_export_before_it_writes(tmp_path, capsys):
    import yaml

    from tests.dataset_cases import segment
    from workers.buffer import BufferWorker

    run = tmp_path / "run"
    bad = segment(2, 1, 0, "policy", 3, 3)
    bad.t_wall[1] = np.nan
    buffer = BufferWorker(str(run / "segments"), 0.0, 0)
    buffer.add([segment(0, 0, 0, "policy", 2), segment(2, 0, 0, "policy", 3), bad])
    buffer.close()
    (run / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "point"}}))
    for fmt, out in (("robomimic", tmp_path / "out.hdf5"), ("lerobot", tmp_path / "ds")):
        assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"dagger: error: {run}: episode 1 (robot 2's episode 0): field 't_wall': " \
                                          f"nan s at step 4: not a time int64 nanoseconds since 1970 hold\n"
        assert not out.exists()


NOT_HDF5 = [(b"", "empty file"),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100), "not an HDF5 file (starts with PNG signature)"),
            (b"hello, world", "not an HDF5 file (starts with b'hello, w')")]


@pytest.mark.parametrize(("content", "message"), NOT_HDF5)
def test_a_file_that_is_not_hdf5_fails_import_and_start_in_one_line_naming_it(tmp_path, capsys, content, message):
    path = tmp_path / "x.hdf5"
    path.write_bytes(content)
    assert main(["import", str(path), "--task", "point"]) == 2
    assert capsys.readouterr().err == f"dagger: error: {path}: {message}\n"
    assert main(["start", "--in-process", "--task", "point", "--demos", str(path), "--run-dir",
                 str(tmp_path / "no")]) == 2
    assert capsys.readouterr().err == f"dagger: error: --demos: {path}: {message}\n"
    assert not (tmp_path / "no").exists()


def test_dagger_import_names_an_empty_or_png_hdf5_file(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    for (content, message), name in zip(NOT_HDF5, ("empty.hdf5", "picture.hdf5"), strict=False):
        path = tmp_path / name
        path.write_bytes(content)
        done = subprocess.run([str(Path(sys.executable).parent / "dagger"), "import", str(path), "--task", "point"],
                              capture_output=True, text=True, env=os.environ | {"SDL_VIDEODRIVER": "dummy"})
        assert (done.returncode, done.stdout, done.stderr) == (2, "", f"dagger: error: {path}: {message}\n")


def gappy_run(tmp_path, with_events: bool):
    """A run whose segment log lost segments its robots closed (events.jsonl, when written, reports every one):

    robot 0  episode 0: 0:0 policy steps 0-2 | 0:1 operator steps 3-4 LOST | 0:2 policy steps 5-8, done
             episode 1: 0:3 policy steps 0-3 | 0:4 policy steps 4-6, done, LOST (its end)
             episode 2: 0:5 policy steps 0-2, done (whole)
             episode 3: 0:6 policy steps 0-1 LOST (its start) | 0:7 operator steps 2-4, done
    robot 1  episode 0: 1:0 and 1:1 LOST (the whole episode) | episode 1: 1:2 policy steps 0-3, done (whole)
    """
    from dagger.events import EventLog
    from tests.dataset_cases import segment

    run = tmp_path / "run"
    closed = [segment(0, 0, 0, "policy", 3), segment(0, 1, 0, "operator:1", 2, 3),
              segment(0, 2, 0, "policy", 4, 5, True), segment(0, 3, 1, "policy", 4),
              segment(0, 4, 1, "policy", 3, 4, True), segment(0, 5, 2, "policy", 3, 0, True),
              segment(0, 6, 3, "policy", 2), segment(0, 7, 3, "operator:0", 3, 2, True),
              segment(1, 0, 0, "policy", 2), segment(1, 1, 0, "policy", 2, 2, True),
              segment(1, 2, 1, "policy", 4, 0, True)]
    lost = {"0:1", "0:4", "0:6", "1:0", "1:1"}
    buffer = BufferWorker(str(run / "segments"), 0.0, 0)
    buffer.add([s for s in closed if s.key not in lost])
    buffer.close()
    (run / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "point"}}))
    if with_events:
        log = EventLog(run / "events.jsonl")
        log.write([{**s.event(), "t": 1.0} for s in closed])
        log.close()
    return run


WHOLE_OR_NOT = [((0, 0, [0, 1, 2]), "segment 0:1 lost after it"), ((0, 0, [5, 6, 7, 8]), "segment 0:1 lost before it"),
                ((0, 1, [0, 1, 2, 3]), "segment 0:4 lost after it"), ((0, 2, [0, 1, 2]), ""),
                ((0, 3, [2, 3, 4]), "segment 0:6 lost before it"), ((1, 1, [0, 1, 2, 3]), "")]


def pieces(episodes):
    return [((ep.robot, ep.episode, ep.steps["step"].tolist()), ep.missing) for ep in episodes]


def test_an_episode_that_lost_a_segment_is_split_there_and_says_what_is_missing(tmp_path):
    lost: list[str] = []
    reported = [(e["robot"], e["seq"], e["episode"]) for e in read_events(gappy_run(tmp_path, True) / "events.jsonl")]
    assert pieces(read_episodes(tmp_path / "run/segments", reported=reported, lost=lost)) == WHOLE_OR_NOT
    assert lost == ["robot 1 episode 0: none of its segments 1:0, 1:1 is in the log"]
    # from the segment log alone: a gap in seq inside an episode, an episode that is not done while its robot went on
    # past a gap, and one whose steps do not begin at 0
    alone = pieces(read_episodes(gappy_run(tmp_path / "alone", False) / "segments"))
    assert [piece for piece, _ in alone] == [piece for piece, _ in WHOLE_OR_NOT]
    assert [missing for _, missing in alone] == [
        "segment 0:1 lost after it", "segment 0:1 lost before it", "the episode's end is not in the log", "",
        "steps 0-1 are not in the log", ""]
    human = pieces(read_episodes(tmp_path / "run/segments", "human", reported=reported))
    assert human == [((0, 3, [2, 3, 4]), "segment 0:6 lost before it")]  # the operator's piece keeps the mark


@pytest.mark.parametrize("fmt", ["robomimic", "lerobot"])
def test_the_export_splits_and_marks_an_episode_that_lost_a_segment_and_says_so(tmp_path, capsys, fmt):
    from dagger.formats.lerobot import read_lerobot

    run = gappy_run(tmp_path, True)
    out = tmp_path / ("out.hdf5" if fmt == "robomimic" else "out")
    assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "6 episodes, 4 of them pieces of episodes the log lost part of (marked 'missing')" in captured.out
    assert captured.err.splitlines() == [
        "warning: robot 0 episode 0: the segment log lacks part of it; exported as 2 pieces marked 'missing' "
        "(segment 0:1 lost after it)",
        "warning: robot 0 episode 1: the segment log lacks part of it; exported as 1 piece marked 'missing' "
        "(segment 0:4 lost after it)",
        "warning: robot 0 episode 3: the segment log lacks part of it; exported as 1 piece marked 'missing' "
        "(segment 0:6 lost before it)",
        "warning: robot 1 episode 0: none of its segments 1:0, 1:1 is in the log"]
    read = read_robomimic(out) if fmt == "robomimic" else read_lerobot(out)
    assert [((ep.robot, ep.episode, len(ep)), ep.missing) for ep in read] == [
        ((robot, episode, len(steps)), missing) for (robot, episode, steps), missing in WHOLE_OR_NOT]
    assert [bool(ep.steps["done"][-1]) for ep in read] == [False, True, False, True, True, True]
    if fmt == "robomimic":
        with h5py.File(out) as f:
            assert f["data/demo_0"].attrs["missing"] == "segment 0:1 lost after it"
            assert "missing" not in f["data/demo_3"].attrs  # a whole episode carries no mark
