"""Policy families behind one interface (dagger.policies.base.BasePolicy), registered by name like gates.

    policy = make_policy(PolicyConfig(type="chunking"), obs_dim=10, act_dim=2, seed=0)
    out = policy.act(obs)                # out.action, out.spread (the family's uncertainty), out.samples

A new family is one module with one BasePolicy subclass registered in POLICIES.
"""

from __future__ import annotations

from dataclasses import replace

from dagger.core import Policy, TaskSpec
from dagger.policies.base import HOLDOUT, BasePolicy, PolicyConfig, Proposal
from dagger.policies.chunking import ChunkingPolicy
from dagger.policies.diffusion import DiffusionPolicy
from dagger.policies.ensemble import EnsemblePolicy
from dagger.policies.implicit import ImplicitPolicy
from dagger.policies.remote import RemotePolicy
from dagger.wire import read_token

POLICIES: dict[str, type[BasePolicy]] = {
    "mlp-ensemble": EnsemblePolicy,
    "chunking": ChunkingPolicy,
    "diffusion": DiffusionPolicy,
    "implicit": ImplicitPolicy,
}


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
    if config.type != "remote":
        return make_policy(config, task.obs_dim, task.act_dim, seed=robot, image_shape=task.image_shape)  # own draws
    return RemotePolicy(config.address, read_token(config.token_file), config.deadline_ms, robot=robot,
                        instruction=task.instruction, act_dim=task.act_dim)


def trained_family(config: PolicyConfig) -> PolicyConfig:
    """What the learner trains and checkpoints hold: the family itself, or for `remote` the family its server hosts."""
    return replace(config, type=config.serve) if config.type == "remote" else config


__all__ = ["HOLDOUT", "POLICIES", "BasePolicy", "EnsemblePolicy", "PolicyConfig", "Proposal", "make_policy",
           "robot_policy", "trained_family"]
