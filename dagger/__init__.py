"""dagger: fleet-scale interactive imitation learning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagger.gym_registration import register_envs, register_when_imported

if TYPE_CHECKING:
    from dagger.pretrained import PretrainedPolicy, load_policy

__version__ = "0.1.0"  # the one place it is written: setup.cfg reads it
__all__ = ["PretrainedPolicy", "load_policy", "register_envs"]

register_when_imported()  # gymnasium.make("dagger/Reacher-v0"), without importing gymnasium before it is used


def __getattr__(name: str) -> Any:
    """`from dagger import load_policy` imports torch then, not at `import dagger` (the command line starts without)."""
    if name in ("PretrainedPolicy", "load_policy"):
        from dagger import pretrained

        return getattr(pretrained, name)
    raise AttributeError(f"module 'dagger' has no attribute {name!r}")
