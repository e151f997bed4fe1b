"""robomimic's HDF5 layout (robomimic.github.io/docs/datasets/overview.html), written and read with h5py:

    data                      attrs: total (steps), env_args (JSON: env_name, type, env_kwargs)
    data/demo_<i>             attrs: num_samples; actions [T, A], rewards [T], dones [T]
    data/demo_<i>/obs/state   [T, obs_dim]  (obs/image [T, H, W, 3] on an image task)
    data/demo_<i>/next_obs/<key>   obs/<key> one step on; the last step repeats the last observation (dagger does
                              not record the observation after an episode's final step)
    mask/train, mask/valid    demo names as byte strings (every tenth demo is a validation one)

Beside robomimic's keys each demo keeps dagger's labels (robomimic's loaders read only the keys they are asked
for): controller (who acted, as bytes), intervention, nudge and residual (an operator's nudge: the action minus the
policy's, zero elsewhere), operator, policy_action, policy_version, gate_score,
gate_threshold, success, constraint, step, t_wall_ns (int64 nanoseconds since 1970, as the LeRobot export's);
attrs robot and episode, and `missing` on a demo that is a piece of an episode the segment log lost part of (what is
missing, in words: the episode was split there, never presented whole). Files written before that name with
policy_actions and float64 seconds t_wall still read.

    write_robomimic(episodes, "corrections.hdf5", task="reach")
    episodes = read_robomimic("corrections.hdf5")
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import h5py
import numpy as np

from buffers.schema import NO_IMAGE
from dagger.envs import env_id
from dagger.episodes import Episode, with_defaults
from dagger.formats import wall_time

GYM_ENV_TYPE = 2  # robomimic.envs.env_base.EnvType.GYM_TYPE
# One name for the policy's action in both exports, dagger's step field's: singular as robomimic's other labels
# here (controller, operator, policy_version) and LeRobot's per-frame features (action) are; robomimic's plural
# keys (actions, rewards, dones) are its own, and its loaders never read this one.
LABELS = {"policy_action": "policy_action", "policy_version": "version", "gate_score": "spread",
          "gate_threshold": "threshold", "success": "success", "constraint": "constraint", "step": "step"}
"""dagger's per-step labels in a demo group: the dataset's name -> the step field (and wall_time.COLUMN)"""
OLD_LABELS = {"policy_actions": "policy_action", wall_time.OLD_COLUMN: "t_wall"}
"""what files written before one name was used in both exports call a label; still read"""


def write_robomimic(episodes: list[Episode], path: str | Path, task: str,
                    progress: Callable[[int], None] = lambda _: None) -> int:
    """Writes the episodes as one robomimic file; returns its steps."""
    names = [f"demo_{i}" for i in range(len(episodes))]
    times = wall_time.episodes_ns(episodes)  # checked before the file is made
    try:
        f = h5py.File(path, "w-")
    except FileExistsError as err:
        raise FileExistsError(f"{path}: exists (export writes a new file; remove it or choose another)") from err
    with f:
        data = f.create_group("data")
        for name, ep, ns in zip(names, episodes, times, strict=True):
            demo = data.create_group(name)
            demo.attrs["num_samples"] = len(ep)
            demo.attrs["robot"], demo.attrs["episode"] = ep.robot, ep.episode
            if ep.missing:  # a piece of an episode the log lost part of: robomimic samples within a demo only
                demo.attrs["missing"] = ep.missing
            obs = {"state": ep.steps["obs"]}
            if ep.steps["image"].shape[1:] != NO_IMAGE.shape:
                obs["image"] = ep.steps["image"]
            for key, values in obs.items():
                demo.create_dataset(f"obs/{key}", data=values)
                demo.create_dataset(f"next_obs/{key}", data=np.concatenate([values[1:], values[-1:]]))
            demo.create_dataset("actions", data=ep.steps["action"])
            demo.create_dataset("rewards", data=ep.steps["reward"])
            demo.create_dataset("dones", data=ep.steps["done"])
            demo.create_dataset("controller", data=np.array([c.encode() for c in ep.controller], dtype="S"))
            demo.create_dataset("intervention", data=ep.intervention)
            demo.create_dataset("nudge", data=ep.nudge)
            demo.create_dataset("residual", data=ep.residual)
            demo.create_dataset("operator", data=ep.operator)
            for label, field in LABELS.items():
                demo.create_dataset(label, data=ep.steps[field])
            demo.create_dataset(wall_time.COLUMN, data=ns)
            progress(len(ep))
        data.attrs["total"] = sum(len(ep) for ep in episodes)
        data.attrs["env_args"] = json.dumps({"env_name": env_id(task), "type": GYM_ENV_TYPE,
                                             "env_kwargs": {"task": task}})
        valid = names[9::10]
        f.create_dataset("mask/valid", data=np.array(valid, dtype="S"))
        f.create_dataset("mask/train", data=np.array([n for n in names if n not in valid], dtype="S"))
        return int(data.attrs["total"])


def _demos(path: str | Path, data: h5py.Group) -> Iterable[tuple[str, h5py.Group]]:
    """The demo groups in numeric order (demo_2 before demo_10); ValueError naming anything else under data/."""
    for name in data:
        if not re.fullmatch(r"demo_\d+", name) or not isinstance(data[name], h5py.Group):
            raise ValueError(f"{path}: data/{name}: not a demo_<N> group (robomimic's data/ holds only those)")
    return sorted(((name, data[name]) for name in data), key=lambda item: int(item[0][len("demo_"):]))


def read_robomimic(path: str | Path) -> list[Episode]:
    """The episodes of a robomimic file; steps without dagger's labels get the policy's action = the action, version
    0, no gate, and "demo" as who acted. ValueError naming the demo and key when one is missing or misshaped."""
    episodes = []
    with _open(path) as f:
        if not isinstance(f.get("data"), h5py.Group):
            raise ValueError(f"{path}: no 'data' group: not a robomimic file")
        for i, (name, demo) in enumerate(_demos(path, f["data"])):
            try:
                episodes.append(_episode(demo, i))
            except ValueError as err:
                raise ValueError(f"{path}: data/{name}: {err}") from err
    return episodes


SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"%PDF": "PDF",
              b"PK\x03\x04": "ZIP", b"\x1f\x8b": "gzip", b"PAR1": "parquet", b"\x93NUMPY": "numpy .npy"}
"""what a file that is not HDF5 most likely is, by its first bytes"""


def _open(path: str | Path) -> h5py.File:
    """The file opened for reading; ValueError naming it when it is empty, not HDF5 (and what its first bytes
    say it is), or an HDF5 file h5py cannot open."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise ValueError(f"{path}: empty file")
    if not h5py.is_hdf5(path):  # the signature at 0, or at 512, 1024, ... after a user block
        kind = next((f"{name} signature" for sig, name in SIGNATURES.items() if head.startswith(sig)), repr(head[:8]))
        raise ValueError(f"{path}: not an HDF5 file (starts with {kind})")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({str(err).splitlines()[0]})") from err


def _read(demo: h5py.Group, key: str) -> np.ndarray:
    if not isinstance(demo.get(key), h5py.Dataset):
        raise ValueError(f"no dataset {key!r}")
    return np.asarray(demo[key])


def _episode(demo: h5py.Group, index: int) -> Episode:
    if "obs/state" not in demo:
        keys = sorted(demo["obs"]) if isinstance(demo.get("obs"), h5py.Group) else []
        raise ValueError(f"no obs/state (obs holds {', '.join(keys) or 'nothing'}): dagger reads one 'state' vector")
    obs, actions = _read(demo, "obs/state"), _read(demo, "actions")
    if obs.ndim != 2 or actions.ndim != 2 or len(obs) != len(actions):
        raise ValueError(f"obs/state {obs.shape} and actions {actions.shape}: expected [T, obs_dim] and [T, act_dim]")
    n = len(actions)
    found = {"obs": obs, "action": actions, "reward": _read(demo, "rewards"), "done": _read(demo, "dones"),
             "image": _read(demo, "obs/image") if "obs/image" in demo else np.zeros((n, *NO_IMAGE.shape), np.uint8)}
    found.update({field: _read(demo, label) for label, field in (OLD_LABELS | LABELS).items() if label in demo})
    if wall_time.COLUMN in demo:
        found["t_wall"] = wall_time.from_ns(_read(demo, wall_time.COLUMN))
    steps = with_defaults(found)
    controller = [c.decode() for c in _read(demo, "controller")] if "controller" in demo else ["demo"] * n
    if len(controller) != n:
        raise ValueError(f"controller: {len(controller)} steps, actions has {n}")
    return Episode(int(demo.attrs.get("robot", -1)), int(demo.attrs.get("episode", index)), steps, controller,
                   str(demo.attrs.get("missing", "")))
