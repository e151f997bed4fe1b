"""What produced a run, for RUN_DIR/run.json: the code's git commit (and whether the tree had changes), the
versions of the packages the numbers depend on, the command line, the host and the start time.

    record = provenance()            # {"git": {"commit": "3a0aa26…", "dirty": False}, "packages": {...}, ...}
"""

from __future__ import annotations

import datetime
import json
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("dagger-fleet", "torch", "numpy", "ray", "gymnasium", "mujoco", "pygame", "hidapi", "lz4", "msgpack",
            "rich", "pyyaml", "matplotlib", "tensorboardX")
SOURCE = Path(__file__).resolve().parents[1]


def git_state(where: Path = SOURCE) -> dict[str, Any]:
    """{"commit", "dirty"} of the checkout holding this code; {"commit": None} when it is not one (a wheel install)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None: not installed)."""
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {name: version(name) for name in names}


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    return {"git": git_state(), "packages": versions(), "python": platform.python_version(),
            "command": list(sys.argv if argv is None else argv), "cwd": str(Path.cwd()),
            "host": socket.gethostname(), "platform": platform.platform(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def record_start(directory: Path) -> dict[str, Any]:
    """Writes directory/run.json for a new run; a resumed one keeps the first record and appends to "resumed"."""
    path = directory / "run.json"
    now = provenance()
    try:
        record = json.loads(path.read_text())
        record.setdefault("resumed", []).append(now)
    except (OSError, ValueError, AttributeError):  # a new run, or a record too damaged to extend: start it again
        record = {**now, "resumed": []}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record
