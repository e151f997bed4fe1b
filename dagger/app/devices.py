"""`dagger devices`: the connected gamepads and SpaceMice, and with --watch their live readings.

    dagger devices            # one line per device: kind, name, vendor:product, path
    dagger devices --watch    # a live table: report rate, last-report age, deadman, action
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from dagger.config import RunConfig
from teleop_devices.gamepad import GamepadMapping, SdlGamepad
from teleop_devices.human import GamepadOperator, SpaceMouseOperator
from teleop_devices.spacemouse import SpaceMouse, enumerate_spacemice


def list_devices() -> list[dict[str, Any]]:
    found = [{"kind": "spacemouse", **d} for d in enumerate_spacemice()]
    for i in range(SdlGamepad.count()):
        pad = SdlGamepad.open(i)
        found.append({"kind": "gamepad", "name": pad.name(), "vendor_id": None, "product_id": None,
                      "path": f"SDL controller {i}"})
    return found


def describe(device: dict[str, Any]) -> str:
    ids = "" if device["vendor_id"] is None else f"{device['vendor_id']:04x}:{device['product_id']:04x}  "
    return f"{device['kind']:<10} {device['name']:<28} {ids}{device['path']}"


def watch(cfg: RunConfig, console: Console, act_dim: int = 6, seconds: float = 0.0) -> None:
    """Opens every device and shows live readings until Ctrl-C (or `seconds`)."""
    import pygame

    pygame.display.init()
    devices: list[Any] = [SpaceMouseOperator(SpaceMouse.open(config=cfg.spacemouse, index=i), act_dim)
                          for i in range(len(enumerate_spacemice()))]
    devices += [GamepadOperator(SdlGamepad.open(i), GamepadMapping(cfg.gamepad, min(act_dim, 4)))
                for i in range(SdlGamepad.count())]
    started = time.time()
    with Live(console=console, refresh_per_second=10) as live:
        while not seconds or time.time() - started < seconds:
            pygame.event.pump()
            table = Table("device", "rate", "age", "deadman", "action")
            for device in devices:
                r = device.reading()
                action = "—" if r.action is None else " ".join(f"{a:+.2f}" for a in r.action)
                table.add_row(device.label, f"{device.rate_hz():.0f} Hz", f"{1000 * r.age_s:.0f} ms",
                              "held" if r.deadman else "released", action)
            live.update(table)
            time.sleep(0.02)
