"""What the dataset tests share: a small run with hand-known labels, random episodes, and a bit-exact comparison."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import yaml

from buffers.schema import NO_IMAGE, STEP_FIELDS, Segment
from dagger.episodes import Episode
from dagger.formats.wall_time import LIMIT_S
from workers.buffer import BufferWorker


def segment(robot, seq, episode, controller, n, start=0, done=False, success=False, obs_dim=3, act_dim=2):
    steps = [{"obs": np.full(obs_dim, 10 * seq + i, np.float32), "action": np.full(act_dim, i / 10, np.float32),
              "policy_action": np.full(act_dim, -i, np.float32), "version": seq + 1, "spread": 0.5 * i,
              "threshold": 0.25, "reward": -1.0, "success": success and i == n - 1, "constraint": False,
              "done": done and i == n - 1, "step": start + i, "t_wall": 100.0 + start + i} for i in range(n)]
    return Segment.from_steps(robot, seq, episode, controller, "episode_end" if done else "takeover", 1.0, steps)


def make_run(tmp_path):
    """A run dir whose log holds: robot 0's episode 0 (3 policy steps, 2 of operator 1's, 4 policy steps to the end)
    and robot 1's episode 0 (5 policy steps to a success), its segments logged out of order and one twice."""
    run = tmp_path / "run"
    buffer = BufferWorker(str(run / "segments"), 0.0, 0)
    buffer.add([segment(1, 0, 0, "policy", 5, done=True, success=True), segment(0, 2, 0, "policy", 4, 5, True)])
    buffer.add([segment(0, 0, 0, "policy", 3), segment(0, 1, 0, "operator:1", 2, 3)])
    buffer.add([segment(0, 1, 0, "operator:1", 2, 3)])  # a resend: counted once
    (run / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "point"}}))
    return run


@st.composite
def episodes(draw, images: bool = True, shapes: tuple[tuple[int, int, int], ...] = ()):
    """1-4 random episodes; with `shapes`, every one has camera images of one of them."""
    obs_dim, act_dim = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    image = draw(st.sampled_from(shapes)) if shapes else draw(st.sampled_from([None, (4, 5, 3)])) if images else None
    out = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 6))
        steps = {}
        for name, dtype in STEP_FIELDS.items():
            shape = {"obs": (n, obs_dim), "action": (n, act_dim), "policy_action": (n, act_dim),
                     "image": (n, *(image or NO_IMAGE.shape))}.get(name, (n,))
            times = st.one_of(st.just(0.0), st.floats(2.0**23, LIMIT_S, exclude_max=True))  # wall_time's exact range
            steps[name] = draw(hnp.arrays(dtype, shape, elements=times if name == "t_wall" else None))
        controller = draw(st.lists(st.sampled_from(["policy", "demo", "operator:0", "operator:12"]),
                                   min_size=n, max_size=n))
        out.append(Episode(draw(st.integers(-1, 99)), draw(st.integers(0, 999)), steps, controller))
    return out


def assert_same(written: list[Episode], read: list[Episode]) -> None:
    """Every episode, label and step field read back bit for bit (NaN payloads and -0.0 too)."""
    assert len(read) == len(written)
    for a, b in zip(written, read, strict=True):
        assert (a.robot, a.episode, a.controller) == (b.robot, b.episode, b.controller)
        for name in STEP_FIELDS:
            assert a.steps[name].dtype == b.steps[name].dtype and a.steps[name].shape == b.steps[name].shape, name
            assert a.steps[name].tobytes() == b.steps[name].tobytes(), name


def zero_episodes(obs_dim: int, act_dim: int, lengths: tuple[int, ...]) -> list[Episode]:
    """Demonstrations of a state-only task's shapes, all zeros, `lengths` steps each."""
    def zeros(name: str, n: int, dtype: np.dtype) -> np.ndarray:
        shape = {"obs": (n, obs_dim), "action": (n, act_dim), "policy_action": (n, act_dim),
                 "image": (n, *NO_IMAGE.shape)}.get(name, (n,))
        return np.zeros(shape, dtype)

    return [Episode(-1, i, {name: zeros(name, n, dtype) for name, dtype in STEP_FIELDS.items()}, ["demo"] * n)
            for i, n in enumerate(lengths)]


def camera_episodes(lengths: tuple[int, ...], shape: tuple[int, int, int] = (6, 4, 3), seed: int = 0) -> list[Episode]:
    """Episodes of a camera task (3 state dims, 2 action dims): random uint8 images, `lengths` steps each."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(lengths):
        steps = {name: np.zeros((n, 3) if name == "obs" else (n, 2) if name in ("action", "policy_action") else (n,),
                                dtype) for name, dtype in STEP_FIELDS.items()}
        steps["image"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        out.append(Episode(0, i, steps, ["policy"] * n))
    return out
