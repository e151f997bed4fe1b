"""Regenerates the README's measured tables from the current code, so they cannot drift from what it prints.

Each table sits between two markers; the first names the table and the shell command that prints it:

    <!-- table gates: dagger bench configs/bench/gates.yaml --out $TMP/gates > /dev/null && ... -->
    ...what the command printed (a code block, or Markdown when the command prints a Markdown table)...
    <!-- /table -->

The command runs in the repository root with the virtual environment's bin/ first on PATH and $TMP set to a
fresh folder; its output replaces the block. A failing command leaves the README untouched.

    python benchmarks/readme_tables.py                    # every table (the fault benchmark alone takes ~1 h)
    python benchmarks/readme_tables.py --only gates,alpha # some of them
    python benchmarks/readme_tables.py --list
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^<!-- table (?P<name>[\w-]+): (?P<command>.+?) -->\n(?P<body>.*?)^<!-- /table -->$",
                   re.MULTILINE | re.DOTALL)


def tables(text: str) -> list[re.Match]:
    return list(BLOCK.finditer(text))


def render(output: str) -> str:
    """A Markdown table stays Markdown; anything else becomes a code block."""
    output = output.strip("\n")
    if output.startswith("|"):
        return output + "\n"
    return f"```\n{output}\n```\n"


def run(command: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TMP": tmp, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=ROOT, env=env, capture_output=True,
                              text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{command}` failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def regenerate(text: str, only: set[str] | None = None, runner=run) -> str:
    """The text with each selected table's body replaced by its command's output."""
    def replace(m: re.Match) -> str:
        if only is not None and m["name"] not in only:
            return m[0]
        print(f"{m['name']}: {m['command']}", file=sys.stderr, flush=True)
        return f"<!-- table {m['name']}: {m['command']} -->\n{render(runner(m['command']))}<!-- /table -->"

    return BLOCK.sub(replace, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--only", help="comma-separated table names")
    parser.add_argument("--list", action="store_true", help="print each table's name and command")
    args = parser.parse_args()
    text = args.readme.read_text()
    if args.list:
        for m in tables(text):
            print(f"{m['name']}: {m['command']}")
        return
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {m["name"] for m in tables(text)}
    if unknown:
        sys.exit(f"no table named {', '.join(sorted(unknown))} in {args.readme}")
    args.readme.write_text(regenerate(text, only))


if __name__ == "__main__":
    main()
