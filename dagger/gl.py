"""Choose MuJoCo's OpenGL backend before mujoco is imported, instead of assuming one.

    backend = configure_gl()  # "egl", "osmesa", "glfw", the user's MUJOCO_GL, or None: no rendering

Headless machines often have Mesa's EGL but not OSMesa (or the reverse); forcing one makes
`import mujoco` crash when it is missing. So each candidate is tried in a short subprocess (a failed
GL import cannot poison this process), and the answer is exported in MUJOCO_GL / PYOPENGL_PLATFORM so
that processes started later (Ray workers) inherit it without probing again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, MutableMapping

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
