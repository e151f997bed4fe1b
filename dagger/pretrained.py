"""A trained policy in your own loop: load a run's checkpoint, act on numpy or torch observations, one or a batch.

    policy = load_policy("runs/demo")               # a run dir, its checkpoints/ or a checkpoint file
    env = gymnasium.make(policy.env_id)             # the task it was trained on, as a gymnasium env
    action = policy.predict(obs)                    # obs [obs_dim] -> [act_dim]; a batch [B, obs_dim] -> [B, act_dim]
    action, spread = policy.predict(obs, with_spread=True)    # with the family's uncertainty
    policy.reset()                                  # at every episode's start (chunking and diffusion queue actions)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch

from dagger.checkpoint import check_compatible, policy_config, read_checkpoint, task_spaces, to_arrays
from dagger.config import task_config
from dagger.core import PolicyOutput
from dagger.envs import env_id
from dagger.policies import BasePolicy, PolicyConfig, make_policy
from dagger.tasks import TaskConfig, make_task

Observation = np.ndarray | torch.Tensor | Mapping[str, Any]
"""a numpy array or torch tensor [obs_dim] or [B, obs_dim] (a list works too), or an image task's gymnasium
observation {"state": ..., "image": ...}"""


def load_policy(path: str | Path, task: str | TaskConfig | None = None) -> PretrainedPolicy:
    """The policy in a checkpoint (a run dir, its checkpoints/ or a .pt file), ready to act. `task`: the task it acts
    on — by default the one it was trained on with the run's settings; a name replaces the task's name, a TaskConfig
    all its settings. A task with other observation or action sizes is a CheckpointError naming both."""
    ckpt = read_checkpoint(path)
    if isinstance(task, TaskConfig):
        settings = task
    else:
        saved = ckpt.get("config", {}).get("task", ckpt["task"]["name"])  # a checkpoint from before run configs
        settings = task_config(saved, [] if task is None else [f"task.name={task}"])
    spaces = dict(ckpt["task"]) if task is None else task_spaces(make_task(settings))
    config = policy_config(ckpt)
    check_compatible(ckpt, spaces, config)
    return PretrainedPolicy(config, spaces, to_arrays(ckpt["weights"]), settings, ckpt["path"])


class PretrainedPolicy:
    """A checkpoint's policy behind a predict() that takes what a user's loop has (see the module docstring).

    A batch is B episodes run at once. A family that carries state within an episode (keeps_episode_state:
    chunking's overlapping chunks, diffusion's action queue and observation history) keeps one copy per row, so each
    row's answers are those a policy loaded for that row alone would give; the batch size is then fixed from the first
    call after reset() until the next. reset(row) starts one row's episode again (a vector env's autoreset).
    It is a dagger.core.Policy: run_episode and evaluate_policy take it.
    """

    def __init__(self, config: PolicyConfig, spaces: dict, weights: dict, task: TaskConfig, path: str) -> None:
        self.config, self._weights, self.path = config, weights, path
        self.task_config = task
        self.task: str = task.name
        self.env_id = env_id(task.name)  # gymnasium.make(policy.env_id): registered by `import dagger`
        self.obs_dim, self.act_dim = int(spaces["obs_dim"]), int(spaces["act_dim"])
        image = spaces.get("image_shape")
        self.image_shape: tuple[int, int, int] | None = (None if image is None
                                                          else (int(image[0]), int(image[1]), int(image[2])))
        self._rows: list[BasePolicy] = [self._fresh()]  # row i's policy; one for all rows when it keeps no state
        self.family = self._rows[0].family
        self.version: int = self._rows[0].version
        self._batch: int | None = None  # rows in this episode's batch, for a family that keeps episode state

    def __repr__(self) -> str:
        return (f"PretrainedPolicy({self.family} v{self.version}, task {self.task}, obs {self.obs_dim} -> "
                f"act {self.act_dim}, {self.path})")

    def _fresh(self) -> BasePolicy:
        policy = make_policy(self.config, self.obs_dim, self.act_dim, image_shape=self.image_shape)
        policy.load(self._weights)
        return policy

    @overload
    def predict(self, obs: Observation, image: Any = None, with_spread: Literal[False] = False) -> np.ndarray: ...

    @overload
    def predict(self, obs: Observation, image: Any = None, *,
                with_spread: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...

    def predict(self, obs: Observation, image: Any = None,
                with_spread: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The action in the task's units, float32 [act_dim] for one observation, [B, act_dim] for a batch. An image
        task takes its camera image (uint8 [H, W, 3], or [B, H, W, 3]) as `image`, or inside a dict obs.
        `with_spread`: also the family's uncertainty, [] or [B] (what the ensemble gate compares with its
        threshold)."""
        states, images, batched = self._inputs(obs, image)
        outs = self._act(states, images)
        actions = np.stack([out.action for out in outs]).astype(np.float32)
        spreads = np.array([out.spread for out in outs])
        if not batched:
            actions, spreads = actions[0], spreads[0, ...]
        return (actions, spreads) if with_spread else actions

    def act(self, obs: Observation, image: Any = None) -> PolicyOutput:
        """Everything the policy says about one observation: the action, its spread, the samples behind it and the
        learned signals the gates read (dagger.core.PolicyOutput)."""
        states, images, batched = self._inputs(obs, image)
        if batched:
            raise ValueError(f"act takes one observation ({self.obs_dim},), got a batch {states.shape}: "
                             "predict(obs, with_spread=True) answers a batch")
        return self._act(states, images)[0]

    def reset(self, row: int | None = None) -> None:
        """A new episode for every row (None), or for batch row `row` alone."""
        if row is None:
            for policy in self._rows:
                policy.reset()
            self._batch = None
            return
        if self._batch is not None and not 0 <= row < self._batch:
            raise ValueError(f"reset(row={row}): this episode's batch has rows 0..{self._batch - 1}")
        if 0 <= row < len(self._rows):
            self._rows[row].reset()

    def load(self, weights: dict) -> None:
        """Takes newer weights (a policy's weights(); an older or equal version is ignored), in every row."""
        for policy in self._rows:
            policy.load(weights)
        if self._rows[0].version > self.version:
            self._weights, self.version = weights, self._rows[0].version

    def _act(self, states: np.ndarray, images: np.ndarray | None) -> list[PolicyOutput]:
        n = len(states)
        if not keeps_episode_state(self._rows[0]):
            policies = self._rows * n
        else:
            if self._batch is None:
                self._batch = n
            elif n != self._batch:
                got = "one observation" if n == 1 else f"a batch of {n}"
                raise ValueError(f"this {self.family} policy keeps each episode's state and this episode's batch has "
                                 f"{self._batch} rows; got {got} (reset() before acting on another batch size)")
            self._rows += [self._fresh() for _ in range(n - len(self._rows))]
            policies = self._rows[:n]
        return [policy.act(state, None if images is None else images[i])
                for i, (policy, state) in enumerate(zip(policies, states, strict=True))]

    def _inputs(self, obs: Observation, image: Any) -> tuple[np.ndarray, np.ndarray | None, bool]:
        """obs, image -> states float32 [B, obs_dim], images uint8 [B, H, W, 3] or None, and whether obs was a
        batch; a ValueError naming the expected and the given shape otherwise."""
        if isinstance(obs, Mapping):  # an image task's gymnasium observation
            if image is not None:
                raise ValueError("obs is a dict that holds its image {'state', 'image'}; pass no image beside it")
            if "state" not in obs:
                raise ValueError(f"a dict obs needs 'state' (and 'image' on an image task), as dagger's gymnasium "
                                 f"envs give; got keys {sorted(obs)}")
            image = obs.get("image")
            obs = obs["state"]
        x = as_array(obs)
        if x.dtype.kind not in "biuf":
            raise ValueError(f"obs has dtype {x.dtype}; this policy takes numbers")
        if x.ndim not in (1, 2) or x.shape[-1] != self.obs_dim or x.size == 0:
            raise ValueError(f"obs has shape {tuple(x.shape)}; this policy (task {self.task}) takes ({self.obs_dim},) "
                             f"or a batch (B, {self.obs_dim})")
        batched = x.ndim == 2
        states = x.reshape(-1, self.obs_dim).astype(np.float32)
        bad = ~np.isfinite(states).all(-1)
        if bad.any():
            raise ValueError("obs " + (f"row {int(bad.argmax())} " if batched else "") + "has NaN or inf")
        return states, self._images(image, len(states) if batched else None), batched

    def _images(self, image: Any, rows: int | None) -> np.ndarray | None:
        """The camera images uint8 [B, H, W, 3] for `rows` observations (None: one observation)."""
        if self.image_shape is None:
            if image is not None:
                raise ValueError(f"this policy (task {self.task}) sees the state only; got an image")
            return None
        want = self.image_shape if rows is None else (rows, *self.image_shape)
        if image is None:
            raise ValueError(f"this policy (task {self.task}) sees camera images: predict(obs, image) needs the "
                             f"image, uint8 {want}")
        pixels = as_array(image)
        if pixels.shape != want or pixels.dtype != np.uint8:
            raise ValueError(f"image has shape {tuple(pixels.shape)} and dtype {pixels.dtype}; this policy "
                             f"(task {self.task}) takes uint8 {want}")
        return pixels if rows is not None else pixels[None]


def keeps_episode_state(policy: BasePolicy) -> bool:
    """Whether acting carries something from step to step within an episode: an observation history (`history`) or
    action chunks queued or overlapping (`horizon`), what BasePolicy.reset() and the families' resets forget."""
    return policy.history > 1 or policy.horizon > 1


def as_array(value: Any) -> np.ndarray:
    """A numpy array from a numpy array, a torch tensor (on any device, with or without grad) or a nested list."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        return (tensor.float() if tensor.is_floating_point() else tensor).numpy()  # bfloat16 has no numpy type
    return np.asarray(value)
