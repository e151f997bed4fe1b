"""Checkpoints: the trained policy as a file that loads without executing code.

A checkpoint is a `torch.save` of plain containers and tensors, read back with
`torch.load(weights_only=True)`: every network the policy carries (ensemble, goal critic,
classifier), its normaliser and version, the task's name and spaces, the run's config, the
trainer's state (optimisers, critic target, update count) and how much of the log it had seen.
Files are written atomically (temporary file, fsync, rename) and `latest` names the newest.

    path = write_checkpoint(run_dir / "checkpoints", payload)
    ckpt = read_checkpoint(run_dir)                     # a run dir, its checkpoints/ or a file
    policy = policy_from(ckpt, task)                    # refuses another task or shape in one line
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dagger.core import Task
from dagger.events import first_line
from dagger.policies import POLICIES, BasePolicy, PolicyConfig, make_policy, trained_family

FORMAT = "dagger-checkpoint/1"
LATEST = "latest"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or for another task; the message names it."""


def to_tensors(value: Any) -> Any:
    """numpy arrays -> tensors, recursively (weights_only loading accepts tensors, not arrays)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: to_tensors(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_tensors(v) for v in value]
    return value


def to_arrays(value: Any) -> Any:
    """tensors -> numpy arrays, recursively (the policy's weights() format)."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {k: to_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_arrays(v) for v in value]
    return value


def _atomic_write(path: Path, write: Any) -> None:
    """Writes path whole or not at all (a temporary file renamed over it); a full disk is an OSError naming path."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except Exception as err:
        tmp.unlink(missing_ok=True)
        cause = next((e for e in _chain(err) if isinstance(e, OSError)), None)  # torch.save wraps it in a RuntimeError
        if cause is None:
            raise
        raise OSError(cause.errno, f"cannot write {path}: {cause.strerror or cause}") from err
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


def _chain(err: BaseException | None) -> Any:
    """err and the exceptions it was raised from or while handling."""
    while err is not None:
        yield err
        err = err.__cause__ or err.__context__


def write_checkpoint(directory: Path, payload: dict, keep: int = 3) -> Path:
    """directory/v<version>.pt, then `latest` pointing at it; keeps the newest `keep` files."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"v{int(payload['version']):06d}.pt"
    _atomic_write(path, lambda f: torch.save({"format": FORMAT, **payload}, f))
    _atomic_write(directory / LATEST, lambda f: f.write(path.name.encode() + b"\n"))
    for old in sorted(directory.glob("v*.pt"))[:-keep]:
        old.unlink()
    return path


def has_checkpoint(path: str | Path) -> bool:
    """Whether a run dir or a checkpoints dir holds a checkpoint (its `latest` pointer)."""
    path = Path(path)
    return (path / LATEST).is_file() or (path / "checkpoints" / LATEST).is_file()


def resolve(path: str | Path) -> Path:
    """A checkpoint file from a file, a checkpoints dir, or a run dir."""
    path = Path(path)
    if path.is_dir() and (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if path.is_dir():
        pointer = path / LATEST
        if not pointer.is_file():
            raise CheckpointError(f"{path}: no checkpoint here (no {LATEST} file)")
        path = path / pointer.read_text().strip()
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents (tensors), with "path" added; never unpickles arbitrary objects."""
    file = resolve(path)
    if not zipfile.is_zipfile(file):  # torch.save writes a zip archive; anything else would be read as a pickle
        raise CheckpointError(f"{file}: not a dagger checkpoint (not a torch zip archive)")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad or unsafe file
        raise CheckpointError(f"{file}: not a loadable checkpoint ({first_line(err, 200)})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a dagger checkpoint (format {FORMAT} expected)")
    data["path"] = str(file)
    return data


def describe(task: dict, policy: dict) -> str:
    shape = ", ".join(f"{k} {v}" for k, v in policy.items() if k != "type")
    return f"task {task['name']} (obs {task['obs_dim']}, act {task['act_dim']}), a {policy['type']} policy ({shape})"


def task_spaces(task: Task) -> dict:
    spaces = {"name": task.name, "obs_dim": task.obs_dim, "act_dim": task.act_dim}
    return spaces if task.image_shape is None else {**spaces, "image_shape": list(task.image_shape)}


def check_compatible(ckpt: dict, want_task: dict, config: PolicyConfig) -> None:
    """One line naming both sides when the checkpoint was trained for another task or network shape."""
    want_policy = shape(asdict(trained_family(config)))
    have_policy = shape(ckpt["policy"])
    if ckpt["task"] != want_task or have_policy != want_policy:
        raise CheckpointError(f"{ckpt['path']} holds {describe(ckpt['task'], have_policy)}; "
                              f"this run needs {describe(want_task, want_policy)}")


def shape(policy: dict) -> dict:
    """The family and its settings that fix the networks' shapes, of `policy` (a PolicyConfig as a dict; a checkpoint
    from before a setting existed has its default)."""
    settings = {**asdict(PolicyConfig()), **policy}
    family = settings["type"]
    keys = POLICIES[family].shape_keys if family in POLICIES else ()
    return {"type": family, **{k: settings[k] for k in keys}}


def policy_config(ckpt: dict) -> PolicyConfig:
    return PolicyConfig(**ckpt["policy"])


def policy_from(ckpt: dict, task: Task) -> BasePolicy:
    """The checkpoint's policy, ready to act on `task` (for a run with a remote policy: the family it served; the
    learner writes that family's name into the checkpoint)."""
    config = policy_config(ckpt)
    check_compatible(ckpt, task_spaces(task), config)
    policy = make_policy(config, task.obs_dim, task.act_dim, image_shape=task.image_shape)
    policy.load(to_arrays(ckpt["weights"]))
    return policy
