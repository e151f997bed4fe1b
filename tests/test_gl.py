"""Choosing MuJoCo's GL backend: the pure choice with fake probes, and real headless renders."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dagger import gl

ROOT = Path(__file__).resolve().parents[1]


class FakeProbe:
    """Says yes to the backends it is given, and records what it was asked."""

    def __init__(self, *working: str) -> None:
        self.working = set(working)
        self.asked: list[str] = []

    def __call__(self, backend: str) -> bool:
        self.asked.append(backend)
        return backend in self.working


def test_users_mujoco_gl_wins_without_probing() -> None:
    probe = FakeProbe("egl", "osmesa")
    assert gl.choose_gl_backend({"MUJOCO_GL": "osmesa", "DISPLAY": ":0"}, probe, linux=True) == "osmesa"
    assert gl.choose_gl_backend({"MUJOCO_GL": " EGL "}, probe, linux=True) == "egl"
    assert gl.choose_gl_backend({"MUJOCO_GL": "disable"}, probe, linux=True) is None
    assert probe.asked == []


@pytest.mark.parametrize("display", [{"DISPLAY": ":0"}, {"WAYLAND_DISPLAY": "wayland-0"}])
def test_a_display_keeps_mujocos_default(display: dict[str, str]) -> None:
    probe = FakeProbe("egl", "osmesa")
    assert gl.choose_gl_backend(display, probe, linux=True) == "glfw"
    assert probe.asked == []


def test_not_linux_keeps_mujocos_default() -> None:
    probe = FakeProbe("egl")
    assert gl.choose_gl_backend({}, probe, linux=False) == "glfw"
    assert probe.asked == []


@pytest.mark.parametrize(("working", "expected", "asked"), [
    (("egl", "osmesa"), "egl", ["egl"]),
    (("osmesa",), "osmesa", ["egl", "osmesa"]),
    ((), None, ["egl", "osmesa"]),
])
def test_headless_tries_egl_then_osmesa(working: tuple[str, ...], expected: str | None,
                                        asked: list[str]) -> None:
    probe = FakeProbe(*working)
    assert gl.choose_gl_backend({"DISPLAY": ""}, probe, linux=True) == expected
    assert probe.asked == asked


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="egl/osmesa are Linux-only")
@pytest.mark.parametrize("backend", ["egl", "osmesa"])
def test_configure_sets_both_variables(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    env: dict[str, str] = {"HOME": "/nowhere"}
    assert gl.configure_gl(env, FakeProbe(backend)) == backend
    assert env["MUJOCO_GL"] == backend and env["PYOPENGL_PLATFORM"] == backend
    assert capsys.readouterr().err == ""


def test_configure_completes_a_users_choice_but_keeps_their_values() -> None:
    env = {"MUJOCO_GL": "egl"}
    assert gl.configure_gl(env, FakeProbe()) == "egl"
    assert env == {"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}
    env = {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    assert gl.configure_gl(env, FakeProbe()) == "osmesa"
    assert env == {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    env = {"DISPLAY": ":0"}
    assert gl.configure_gl(env, FakeProbe()) == "glfw"
    assert env == {"DISPLAY": ":0"}  # mujoco's default needs nothing set


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="egl/osmesa are Linux-only")
def test_no_backend_disables_gl_says_so_once_and_children_inherit_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    env: dict[str, str] = {}
    assert gl.configure_gl(env, FakeProbe()) is None
    assert env["MUJOCO_GL"] == "disable"  # `import mujoco` skips GL instead of crashing
    assert capsys.readouterr().err.strip().splitlines() == [
        "dagger: no headless GL (tried egl, osmesa): robots run without camera frames"]
    child = dict(env)  # a process started later (a Ray worker) inherits the decision
    probe = FakeProbe("egl")
    assert gl.configure_gl(child, probe) is None
    assert probe.asked == [] and capsys.readouterr().err == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="egl/osmesa are Linux-only")
def test_configure_gl_probes_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = FakeProbe("osmesa")
    monkeypatch.setattr(gl, "probe_backend", probe)
    monkeypatch.setattr(gl, "_configured", False)  # both restored afterwards
    monkeypatch.setattr(gl, "_backend", None)
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.setenv(name, "")  # so that what configure_gl writes is undone too, even if unset now
        monkeypatch.delenv(name)
    assert gl.configure_gl() == "osmesa"
    assert gl.configure_gl() == "osmesa"
    assert probe.asked == ["egl", "osmesa"]
    assert os.environ["MUJOCO_GL"] == "osmesa" and os.environ["PYOPENGL_PLATFORM"] == "osmesa"


def test_real_probe_rejects_a_backend_that_does_not_exist() -> None:
    assert gl.probe_backend("no-such-gl") is False


def headless_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **extra}


RENDER_SCRIPT = """
import os, sys
import numpy as np
from dagger.tasks import make_task
t = make_task("reacher")
t.reset(seed=0)
f = t.render()
np.save(sys.argv[1], f)
print(os.environ["MUJOCO_GL"], os.environ["PYOPENGL_PLATFORM"])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="headless GL is a Linux matter")
def test_reacher_renders_headless_without_a_display(tmp_path: Path) -> None:
    out = tmp_path / "frame.npy"
    done = subprocess.run([sys.executable, "-c", RENDER_SCRIPT, str(out)], env=headless_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() in (["egl", "egl"], ["osmesa", "osmesa"])
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    frame = np.load(out)
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 10  # a scene, not a blank


NO_GL_SCRIPT = """
from dagger.tasks import make_task
t = make_task("reacher")
t2 = make_task("reacher")  # a second robot in the same process: no second notice
t.reset(seed=0)
res = t.step(t.expert_action())
assert res.obs.shape == (10,)
try:
    t.render()
except RuntimeError as err:
    print("render:", err)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="headless GL is a Linux matter")
@pytest.mark.skipif(ctypes.util.find_library("OSMesa") is not None, reason="OSMesa is installed here")
def test_without_any_gl_the_task_runs_and_render_raises() -> None:
    # No EGL vendor library for glvnd to load, and no OSMesa: no headless GL at all.
    env = headless_env(__EGL_VENDOR_LIBRARY_FILENAMES="/nonexistent.json")
    done = subprocess.run([sys.executable, "-c", NO_GL_SCRIPT], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("render: no OpenGL backend"), done.stdout
    assert done.stderr.strip().splitlines() == [
        "dagger: no headless GL (tried egl, osmesa): robots run without camera frames"]


def test_reacher_expert_succeeds() -> None:
    from dagger.reacher_tasks import ReacherTask

    task = ReacherTask()
    for seed in range(5):
        task.reset(seed=seed)
        res = task.step(task.expert_action())
        steps = 1
        while not res.done:
            res = task.step(task.expert_action())
            steps += 1
        assert steps == 50
        assert res.success, f"seed {seed}: fingertip {task.distance():.3f} m from the target"
