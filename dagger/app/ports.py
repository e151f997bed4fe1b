"""The --port flags of `dagger serve` and `dagger robot-agent`: a TCP port, 0..65535, 0 meaning any free one.

    parser.add_argument("--port", type=port, default=7000, help="port to listen on (0: any free one)")
"""

from __future__ import annotations

import argparse

MAX_PORT = 65535


def port(text: str) -> int:
    """An argparse type: the port, or an error naming the value and the valid range (argparse adds the flag)."""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0..{MAX_PORT} (0: any free port)")
    return int(text)
