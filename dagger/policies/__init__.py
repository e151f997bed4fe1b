"""Policy families behind one interface (dagger.policies.base.BasePolicy), registered by name like gates.

    policy = make_policy(PolicyConfig(type="chunking"), obs_dim=10, act_dim=2, seed=0)
    out = policy.act(obs)                # out.action, out.spread (the family's uncertainty), out.samples
    outs = policy.act_batch(obs_k, None, [policy.stream(robot) for robot in robots])   # K robots, one pass

A new family is one module with one BasePolicy subclass and its entry in families.FAMILIES. Importing this package
imports no torch: a family's class (and BasePolicy, EnsemblePolicy, ...) loads when first asked for, so the
settings, `dagger config` and `--help` start quickly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from dagger.core import Policy, TaskSpec
from dagger.policies.families import FAMILIES, PolicyConfig, trained_family

if TYPE_CHECKING:
    from dagger.policies.base import HOLDOUT, BasePolicy, Proposal, Stream
    from dagger.policies.ensemble import EnsemblePolicy


class FamilyClasses(Mapping[str, "type[BasePolicy]"]):
    """Family name -> its BasePolicy subclass, imported (with torch) on first look-up."""

    def __getitem__(self, name: str) -> type[BasePolicy]:
        module, cls = FAMILIES[name].path.split(":")
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(FAMILIES)

    def __len__(self) -> int:
        return len(FAMILIES)


POLICIES: Mapping[str, type[BasePolicy]] = FamilyClasses()

_LAZY = {"HOLDOUT": "dagger.policies.base", "BasePolicy": "dagger.policies.base", "Proposal": "dagger.policies.base",
         "Stream": "dagger.policies.base", "EnsemblePolicy": "dagger.policies.ensemble"}
"""names this package hands out from the torch modules, imported when first used"""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_policy(config: PolicyConfig, obs_dim: int, act_dim: int, seed: int = 0,
                image_shape: tuple[int, int, int] | None = None) -> BasePolicy:
    """The configured family's policy (for `remote`: the family its server hosts, which the learner trains and
    checkpoints hold); the type must be one of POLICIES."""
    config = trained_family(config)
    if config.type not in POLICIES:
        raise ValueError(f"unknown policy type {config.type!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[config.type](obs_dim, act_dim, config, seed=seed, image_shape=image_shape)


def robot_policy(config: PolicyConfig, task: TaskSpec, robot: int = 0) -> Policy:
    """What a robot acts with: its own copy of the family, or for `remote` a client of the policy server."""
    from dagger.policies.remote import RemotePolicy
    from dagger.wire import client_tls, read_token

    if config.type != "remote":
        return make_policy(config, task.obs_dim, task.act_dim, seed=robot, image_shape=task.image_shape)  # own draws
    return RemotePolicy(config.address, read_token(config.token_file), config.deadline_ms, robot=robot,
                        instruction=task.instruction, act_dim=task.act_dim,
                        tls=client_tls(config.tls_ca) if config.tls_ca else None)


__all__ = ["FAMILIES", "HOLDOUT", "POLICIES", "BasePolicy", "EnsemblePolicy", "PolicyConfig", "Proposal", "Stream",
           "make_policy", "robot_policy", "trained_family"]
