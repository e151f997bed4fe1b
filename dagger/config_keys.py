"""Every setting's dotted key, value and docstring (the string under each dataclass field), for `dagger config
--keys` and the command line's help.

    for key, value, doc in config_keys(RunConfig()): print(key, value, doc)
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
from pathlib import Path
from typing import Any


@functools.cache
def _classes(path: str) -> dict[str, ast.ClassDef]:
    """A source file's top-level classes by name, the file parsed once (`--help` reads a dozen settings classes)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), path)
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """field name -> the docstring written under it in the class body ("" when there is none)."""
    try:
        body = _classes(str(inspect.getsourcefile(cls)))[cls.__qualname__]
    except (OSError, TypeError, KeyError):  # no source (a frozen install), or not a top-level class: no docstrings
        return {}
    docs = {}
    for node, after in zip(body.body, body.body[1:] + [None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            text = after.value.value if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) else ""
            docs[node.target.id] = " ".join(str(text).split())
    return docs


def config_keys(obj: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, value, docstring) of every setting of a settings dataclass, sections expanded in order."""
    out: list[tuple[str, Any, str]] = []
    docs = {k: v for cls in reversed(type(obj).__mro__) if dataclasses.is_dataclass(cls)
            for k, v in field_docs(cls).items()}  # inherited fields are documented in their own class
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += config_keys(value, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", value, docs.get(f.name, "")))
    return out
