"""Imports run one way: teleop_devices and buffers, then the dagger library, then workers, then dagger.app.

Every import counts, including those inside functions and under TYPE_CHECKING.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["teleop_devices", "buffers", "dagger", "workers", "dagger.app"]
#: what each layer may import from the project (itself included)
ALLOWED = {
    "teleop_devices": {"teleop_devices"},
    "buffers": {"buffers"},
    "dagger": {"teleop_devices", "buffers", "dagger"},
    "workers": {"teleop_devices", "buffers", "dagger", "workers"},
    "dagger.app": set(LAYERS),
}


def layer_of(module: str) -> str | None:
    if module == "dagger.app" or module.startswith("dagger.app."):
        return "dagger.app"
    top = module.split(".")[0]
    return top if top in LAYERS else None


def imports(source: str, name: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def violations(source: str, module: str, where: str) -> list[str]:
    own = layer_of(module)
    assert own is not None
    bad = []
    for line, name in imports(source, where):
        target = layer_of(name)
        if target is not None and target not in ALLOWED[own]:
            bad.append(f"{where}:{line}: {own} imports {name} ({target})")
    return bad


def project_modules() -> list[tuple[Path, str]]:
    out = []
    for package in ("teleop_devices", "buffers", "dagger", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            out.append((path, ".".join(path.relative_to(ROOT).with_suffix("").parts)))
    return out


def test_every_import_runs_one_way() -> None:
    modules = project_modules()
    assert len(modules) > 60 and any(m == "dagger.app.cli" for _, m in modules)
    bad = [v for path, module in modules for v in violations(path.read_text(), module, str(path.relative_to(ROOT)))]
    assert bad == [], "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize(("module", "source", "ok"), [
    ("teleop_devices.gamepad", "from dagger.core import DeviceReading\n", False),
    ("buffers.codec", "import workers.transport\n", False),
    ("dagger.policies.base", "def f():\n    from workers.learner import Learner\n", False),
    ("dagger.metrics", "from dagger.app.plots import plot_alpha\n", False),
    ("workers.supervisor", "from dagger.app.live import LiveStats\n", False),
    ("workers.robot", "from dagger.policies import EnsemblePolicy\nimport buffers.schema\n", True),
    ("dagger.app.cli", "from workers.launch import run_loop\n", True),
])
def test_the_check_catches_an_import_against_the_direction(module: str, source: str, ok: bool) -> None:
    assert (violations(source, module, "probe.py") == []) is ok
