"""Test session setup: headless SDL, events checked strictly when written, and one Ray cluster for the whole session
(only if asked for)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ["DAGGER_STRICT_EVENTS"] = "1"  # an event not as dagger.events.KINDS says is an error (subprocesses too)

import pytest  # noqa: E402

from dagger.config import RunConfig, load_config  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster():
    """Starts Ray once per session; yields the address other processes can join."""
    import ray

    from workers.ray_fleet import init_ray

    init_ray(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def one_torch_thread():
    """As run_loop does: tiny networks run far faster on one thread than contending for two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def point_config(*overrides: str) -> RunConfig:
    """A small, fast configuration on the numpy point task."""
    base = ["task=point", "robots=2", "steps=1500", "demos=2", "learner.pretrain_updates=50",
            "learner.batch_size=32", "learner.publish_every=20", "gate.threshold=0.002", "robot.speed=50.0"]
    return load_config(None, base + list(overrides))


ROOT = Path(__file__).resolve().parents[1]


def run_dagger(*args: str, cwd: Path | str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The `dagger` command as a user runs it: a subprocess, headless, output captured."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    return subprocess.run([sys.executable, "-m", "dagger.app.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def make_segment(seq: int, n: int, controller: str, robot: int = 0):
    """A segment of n steps of 6-d observations and 2-d actions, all at version 1."""
    import numpy as np

    from buffers.schema import Segment

    rng = np.random.default_rng(seq)
    steps = [{"obs": rng.normal(size=6), "action": rng.normal(size=2), "policy_action": rng.normal(size=2),
              "version": 1, "spread": 0.0, "threshold": 1.0, "reward": 0.0, "success": False,
              "constraint": False, "done": False, "step": i, "t_wall": float(i)} for i in range(n)]
    return Segment.from_steps(robot, seq, 0, controller, "handback", 1.0, steps)


def wait_until(check, timeout: float = 10.0, what: str = "the condition", every: float = 0.02) -> None:
    """Polls check() until it is true; fails naming `what` after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(every)


def hung_up(sock: socket.socket, within: float) -> bool:
    """Whether the peer closes this connection within `within` seconds (what it sends meanwhile is read and dropped)."""
    sock.settimeout(within)
    try:
        while sock.recv(1 << 16):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True
