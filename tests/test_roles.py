"""Each worker class is what its role (workers.roles) promises, and a call names its method by reference."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from buffers.labels import LabelBuffer
from workers.buffer import BufferWorker
from workers.evaluator import Evaluator
from workers.learner import Learner
from workers.robot import RobotWorker
from workers.roles import BufferRole, EvaluatorRole, LearnerRole, RobotRole, SampleSource
from workers.transport import LocalEndpoint, settled

ROOT = Path(__file__).resolve().parents[1]


def members(role: type) -> list[str]:
    """The methods a role Protocol declares (its own and those it inherits from other roles)."""
    return sorted(name for name, value in inspect.getmembers(role, inspect.isfunction) if not name.startswith("_"))


def mismatch(role: type, cls: type, name: str) -> str:
    """Why cls's method `name` cannot stand for the role's ('' when it can): every parameter the role names is there,
    of the same kind and at the same place, defaulted where the role's is; the class's extra ones are defaulted."""
    if not callable(getattr(cls, name, None)):
        return f"{cls.__name__} has no method {name!r}"
    want = list(inspect.signature(getattr(role, name)).parameters.values())
    got = list(inspect.signature(getattr(cls, name)).parameters.values())
    for i, param in enumerate(want):
        if i >= len(got) or (got[i].name, got[i].kind) != (param.name, param.kind):
            return f"{cls.__name__}.{name}: parameter {i} is not {param.name!r}"
        if param.default is not param.empty and got[i].default is param.empty:
            return f"{cls.__name__}.{name}: {param.name!r} has no default"
    varying = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    extra = [p.name for p in got[len(want):] if p.default is p.empty and p.kind not in varying]
    return f"{cls.__name__}.{name}: {extra} not in the role" if extra else ""


@pytest.mark.parametrize(("role", "cls"), [
    (RobotRole, RobotWorker), (BufferRole, BufferWorker), (SampleSource, LabelBuffer), (LearnerRole, Learner),
    (EvaluatorRole, Evaluator),
])
def test_each_worker_class_has_every_method_of_its_role(role: type, cls: type) -> None:
    assert members(role), role
    assert [why for name in members(role) if (why := mismatch(role, cls, name))] == []


def test_the_check_finds_a_missing_method_a_renamed_parameter_and_an_undefaulted_extra() -> None:
    class Robot:
        def allow(self, robot: int, steps: int, sequence: int) -> None: ...

        def storage(self, why: str, colour: bool) -> None: ...

    assert "no method 'poll'" in mismatch(RobotRole, Robot, "poll")
    assert "'seq'" in mismatch(RobotRole, Robot, "allow")
    assert "colour" in mismatch(RobotRole, Robot, "storage")


def test_a_local_call_runs_the_targets_method_of_that_name_with_its_arguments() -> None:
    class Buffer:
        def sample(self, count: int, horizon: int = 1, history: int = 1) -> dict[str, Any]:
            return {"count": count, "horizon": horizon, "history": history}

        def stats(self) -> dict[str, int]:
            raise OSError("disk gone")

    buffer = LocalEndpoint(Buffer())
    assert buffer.call(SampleSource.sample, 4, history=3).result() == {"count": 4, "horizon": 1, "history": 3}
    assert settled(buffer, SampleSource.sample, 2) == {"count": 2, "horizon": 1, "history": 1}
    failed = buffer.call(SampleSource.stats)  # an error waits for result(), as a remote one does
    assert failed.ready()
    with pytest.raises(OSError, match="disk gone"):
        failed.result()


def test_a_ray_call_sends_the_method_of_that_name_to_the_actor() -> None:
    from workers.ray_fleet import RayEndpoint

    class Method:
        def __init__(self, name: str):
            self.name = name

        def remote(self, *args: Any, **kwargs: Any) -> tuple:
            return self.name, args, kwargs

    class Handle:
        add, poll = Method("add"), Method("poll")

    endpoint = RayEndpoint(Handle())
    assert endpoint.call(BufferRole.add, []).ref == ("add", ([],), {})
    assert endpoint.call(BufferRole.poll).ref == ("poll", (), {})


def test_mypy_rejects_a_misspelt_method_and_a_wrong_argument(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent("""
        from workers.roles import BufferRole, RobotRole
        from workers.transport import Endpoint, settled


        def use(buffer: Endpoint[BufferRole], robot: Endpoint[RobotRole]) -> list[str]:
            buffer.call(BufferRole.ad, [])
            robot.call(RobotRole.allow, 0, 10, "1")
            buffer.call(RobotRole.poll)
            return settled(buffer, BufferRole.add, [])
    """))
    cache = tmp_path / "cache"
    try:  # a copy of the cache `make lint` filled: mypy rechecks any module whose source changed since, not the rest
        shutil.copytree(ROOT / ".mypy_cache", cache)
    except (FileNotFoundError, shutil.Error):  # none yet, or lint writing it now: from scratch (about 20 s)
        shutil.rmtree(cache, ignore_errors=True)
    found = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-error-summary",
                            "--config-file", str(ROOT / "pyproject.toml"), str(snippet)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line.split(": error: ")[0].rsplit(":", 1)[-1] for line in found.stdout.splitlines() if ": error: " in line]
    assert lines == ["7", "8", "9"], found.stdout
