"""Choose MuJoCo's OpenGL backend before mujoco is imported, instead of assuming one.

    backend = configure_gl()  # "egl", "osmesa", "glfw", the user's MUJOCO_GL, or None: no rendering

Headless machines often have Mesa's EGL but not OSMesa (or the reverse); forcing one makes
`import mujoco` crash when it is missing. So each candidate is tried in a short subprocess (a failed
GL import cannot poison this process), and the answer is exported in MUJOCO_GL / PYOPENGL_PLATFORM so
that processes started later (Ray workers) inherit it without probing again.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import numpy as np

HEADLESS = ("egl", "osmesa")  # EGL first: Mesa's libegl-mesa0 is common and renders on the CPU too
DISABLED = ("disable", "disabled", "off", "false", "0")  # mujoco's own words for "no GLContext"
_PROBE = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"

_configured = False
_backend: str | None = None


def probe_backend(backend: str, timeout_s: float = 30.0) -> bool:
    """True when a tiny offscreen context can be made with this backend, in a throwaway process."""
    # Both variables: MUJOCO_GL=egl alone left PyOpenGL on GLX and freeing the context raised EGLError.
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], env=env, timeout=timeout_s,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def choose_gl_backend(env: Mapping[str, str], probe: Callable[[str], bool],
                      linux: bool = sys.platform.startswith("linux")) -> str | None:
    """The backend to use: the user's MUJOCO_GL, glfw with a display, else the first headless one that works."""
    user = env.get("MUJOCO_GL", "").strip().lower()
    if user:
        return None if user in DISABLED else user
    if not linux or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return "glfw"  # leave mujoco's default: a hidden window (egl/osmesa are Linux-only anyway)
    return next((b for b in HEADLESS if probe(b)), None)


def configure_gl(env: MutableMapping[str, str] | None = None,
                 probe: Callable[[str], bool] | None = None) -> str | None:
    """Decide once per process and write the decision into `env` (default os.environ); None: no rendering."""
    global _configured, _backend
    if env is None:
        if _configured:
            return _backend
        env = os.environ
    tried: list[str] = []

    def recording_probe(name: str) -> bool:
        tried.append(name)
        return (probe or probe_backend)(name)

    backend = choose_gl_backend(env, recording_probe)
    if backend is None:
        env["MUJOCO_GL"] = "disable"  # `import mujoco` then skips GL; children inherit "none" silently
        if tried:  # only the process that probed says so, not every Ray worker after it
            print(f"dagger: no headless GL (tried {', '.join(tried)}): robots run without camera frames",
                  file=sys.stderr)
    elif backend in HEADLESS:
        env.setdefault("MUJOCO_GL", backend)
        env.setdefault("PYOPENGL_PLATFORM", backend)  # PyOpenGL must match, see probe_backend
    if env is os.environ:
        _configured, _backend = True, backend
    return backend


def widen_renderer(env: Any, width: int) -> None:
    """Makes a gymnasium MuJoCo env in rgb_array mode render its frames `width` wide (same aspect) from its first frame
    on: gymnasium's renderer takes its size when it draws the first one, so a renderer that has drawn is left as it is,
    as is one that is wide enough already."""
    sim = env.unwrapped
    renderer = sim.mujoco_renderer
    if renderer.viewer is not None or renderer.width is None or renderer.width >= width:
        return
    height = round(renderer.height * width / renderer.width / 2) * 2
    limits = sim.model.vis.global_  # the offscreen buffer must hold the frame
    limits.offwidth, limits.offheight = max(limits.offwidth, width), max(limits.offheight, height)
    renderer.width, renderer.height = width, height


def offscreen_frame(env: Any) -> np.ndarray:
    """env.render() of a gymnasium MuJoCo env in rgb_array mode, right with several envs in one process.

    gymnasium makes a renderer's GL context current only when it is created; closing or collecting
    another env's renderer afterwards leaves no context current, and every later frame is black.
    """
    viewer = env.unwrapped.mujoco_renderer.viewer  # None until the first frame makes it (and its context)
    if viewer is not None:
        viewer.make_context_current()
    return np.asarray(env.render(), np.uint8)


def close_at_exit(env: Any) -> None:
    """Closes env at exit if it is still alive: call after its first render has made the GL context.

    mujoco's EGL registered eglTerminate at exit when the context was made; hooks run last-in
    first-out, so this one frees the context before that (else tracebacks at exit).
    """
    atexit.register(_close_if_alive, weakref.ref(env))


def _close_if_alive(env_ref: weakref.ref[Any]) -> None:
    env = env_ref()  # a weak reference: the hook must not keep every task ever made alive
    if env is not None:
        env.close()
