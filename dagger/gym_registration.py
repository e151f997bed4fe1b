"""`import dagger` registers every task with gymnasium as dagger/<CamelCaseName>-v0 without importing gymnasium (a
tenth of a second that `dagger --help` would pay): at once when gymnasium is already imported, else the moment it is.

    import dagger, gymnasium
    env = gymnasium.make("dagger/PickPlace-v0")
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


def env_id(task: str) -> str:
    """The gymnasium id of a dagger task: "pick-place" -> "dagger/PickPlace-v0"."""
    return "dagger/" + "".join(word.capitalize() for word in task.replace("_", "-").split("-")) + "-v0"


def register_envs() -> None:
    """Registers every task in dagger.tasks.TASKS that is not registered yet; makes nothing."""
    from gymnasium.envs.registration import register, registry

    from dagger.tasks import TASKS

    for name in TASKS:
        if env_id(name) not in registry:
            register(id=env_id(name), entry_point="dagger.envs:TaskEnv", kwargs={"task": name})


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Finds gymnasium as the other finders would, and has its loader register the tasks once the package ran."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)  # once: the other finders answer from here on, this lookup included
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                run(module)
                register_envs()

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def register_when_imported() -> None:
    """Registers the tasks now if gymnasium is imported, else right after its import (by whoever imports it)."""
    if "gymnasium" in sys.modules:
        register_envs()
    elif not any(isinstance(finder, _RegisterOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())
