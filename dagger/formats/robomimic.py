"""robomimic's HDF5 layout (robomimic.github.io/docs/datasets/overview.html), written and read with h5py:

    data                      attrs: total (steps), env_args (JSON: env_name, type, env_kwargs)
    data/demo_<i>             attrs: num_samples; actions [T, A], rewards [T], dones [T]
    data/demo_<i>/obs/state   [T, obs_dim]  (obs/image [T, H, W, 3] on an image task)
    mask/train, mask/valid    demo names as byte strings (every tenth demo is a validation one)

Beside robomimic's keys each demo keeps dagger's labels (robomimic's loaders read only the keys they are asked
for): controller (who acted, as bytes), intervention, operator, policy_actions, policy_version, gate_score,
gate_threshold, success, constraint, step, t_wall; attrs robot and episode.

    write_robomimic(episodes, "corrections.hdf5", task="reach")
    episodes = read_robomimic("corrections.hdf5")
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import h5py
import numpy as np

from buffers.schema import NO_IMAGE
from dagger.envs import env_id
from dagger.episodes import Episode, with_defaults

GYM_ENV_TYPE = 2  # robomimic.envs.env_base.EnvType.GYM_TYPE
LABELS = {"policy_actions": "policy_action", "policy_version": "version", "gate_score": "spread",
          "gate_threshold": "threshold", "success": "success", "constraint": "constraint", "step": "step",
          "t_wall": "t_wall"}
"""dagger's per-step labels in a demo group: the dataset's name -> the step field"""


def write_robomimic(episodes: list[Episode], path: str | Path, task: str,
                    progress: Callable[[int], None] = lambda _: None) -> int:
    """Writes the episodes as one robomimic file; returns its steps."""
    names = [f"demo_{i}" for i in range(len(episodes))]
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for name, ep in zip(names, episodes, strict=True):
            demo = data.create_group(name)
            demo.attrs["num_samples"] = len(ep)
            demo.attrs["robot"], demo.attrs["episode"] = ep.robot, ep.episode
            demo.create_dataset("obs/state", data=ep.steps["obs"])
            if ep.steps["image"].shape[1:] != NO_IMAGE.shape:
                demo.create_dataset("obs/image", data=ep.steps["image"])
            demo.create_dataset("actions", data=ep.steps["action"])
            demo.create_dataset("rewards", data=ep.steps["reward"])
            demo.create_dataset("dones", data=ep.steps["done"])
            demo.create_dataset("controller", data=np.array([c.encode() for c in ep.controller], dtype="S"))
            demo.create_dataset("intervention", data=ep.intervention)
            demo.create_dataset("operator", data=ep.operator)
            for label, field in LABELS.items():
                demo.create_dataset(label, data=ep.steps[field])
            progress(len(ep))
        data.attrs["total"] = sum(len(ep) for ep in episodes)
        data.attrs["env_args"] = json.dumps({"env_name": env_id(task), "type": GYM_ENV_TYPE,
                                             "env_kwargs": {"task": task}})
        valid = names[9::10]
        f.create_dataset("mask/valid", data=np.array(valid, dtype="S"))
        f.create_dataset("mask/train", data=np.array([n for n in names if n not in valid], dtype="S"))
        return int(data.attrs["total"])


def _demos(data: h5py.Group) -> Iterable[tuple[str, h5py.Group]]:
    """The demo groups in numeric order (demo_2 before demo_10)."""
    return sorted(((name, data[name]) for name in data), key=lambda item: int(item[0].rpartition("_")[2]))


def read_robomimic(path: str | Path) -> list[Episode]:
    """The episodes of a robomimic file; steps without dagger's labels get the policy's action = the action, version
    0, no gate, and "demo" as who acted. ValueError naming the demo and key when one is missing or misshaped."""
    episodes = []
    with h5py.File(path, "r") as f:
        if not isinstance(f.get("data"), h5py.Group):
            raise ValueError(f"{path}: no 'data' group: not a robomimic file")
        for i, (name, demo) in enumerate(_demos(f["data"])):
            try:
                episodes.append(_episode(demo, i))
            except (KeyError, ValueError) as err:
                raise ValueError(f"{path}: data/{name}: {err}") from err
    return episodes


def _episode(demo: h5py.Group, index: int) -> Episode:
    obs, actions = np.asarray(demo["obs/state"]), np.asarray(demo["actions"])
    n = len(actions)
    if obs.ndim != 2 or actions.ndim != 2 or len(obs) != n:
        raise ValueError(f"obs/state {obs.shape} and actions {actions.shape}: expected [T, obs_dim] and [T, act_dim]")
    found = {"obs": obs, "action": actions, "reward": np.asarray(demo["rewards"]), "done": np.asarray(demo["dones"]),
             "image": np.asarray(demo["obs/image"]) if "obs/image" in demo else np.zeros((n, *NO_IMAGE.shape))}
    found.update({field: np.asarray(demo[label]) for label, field in LABELS.items() if label in demo})
    steps = with_defaults(found)
    for name, arr in steps.items():
        if len(arr) != n:
            raise ValueError(f"{name}: {len(arr)} steps, actions has {n}")
    controller = [c.decode() for c in demo["controller"]] if "controller" in demo else ["demo"] * n
    return Episode(int(demo.attrs.get("robot", -1)), int(demo.attrs.get("episode", index)), steps, controller)
