"""The operator console: one pygame window per operator station.

It shows the queue of robots asking for help, the camera of the robot an operator is serving (or
the next in the queue), that robot's uncertainty trace against the gate threshold (as the supervisor last tuned it,
for a tuned gate), and each operator's device health. Keyboard operators type into this window.

    console = OperatorConsole(cfg, keyboards=[kb]); console.update(status); console.save("console.png")
"""

from __future__ import annotations

from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import numpy as np

import teleop_devices  # noqa: F401 - SDL environment before pygame
from dagger.app.words import in_control, reason_text, robot_state, storage_lines, with_operator
from dagger.config import RunConfig
from teleop_devices.keyboard import KeyboardTeleop

BG, PANEL, TEXT, DIM = (18, 20, 24), (32, 35, 42), (225, 228, 232), (130, 135, 145)
STATE_COLOR = {"autonomous": (90, 200, 120), "waiting": (240, 190, 60), "operator": (80, 180, 240),
               "resetting": (130, 135, 145), "starting": (130, 135, 145)}
RED, GREEN = (235, 80, 80), (90, 200, 120)
KEYS = "SPACE take over   TAB skip   ENTER hand back   ESC e-stop   WASD/QE/RF move   1/0 mark success/failure"
class OperatorConsole:
    def __init__(self, cfg: RunConfig, keyboards: list[KeyboardTeleop] | None = None,
                 size: tuple[int, int] = (960, 560), refresh_s: float = 0.1):
        import pygame

        pygame.display.init()
        pygame.font.init()
        self.pygame = pygame
        self.cfg, self.keyboards, self.refresh_s = cfg, keyboards or [], refresh_s
        self.screen = pygame.display.set_mode(size)
        pygame.display.set_caption("dagger operator console")
        self.font, self.small, self.big = (pygame.font.Font(None, s) for s in (22, 18, 28))
        self.trace: dict[int, deque[float]] = defaultdict(lambda: deque(maxlen=240))
        self.last_draw = 0.0
        self.labels: list[str] = []  # the text of the last frame drawn, in drawing order

    def pump(self) -> None:
        """Reads the window's events on the main thread; closing the window stops the run like Ctrl-C."""
        for event in self.pygame.event.get():
            if event.type == self.pygame.QUIT:
                raise KeyboardInterrupt
            for keyboard in self.keyboards:
                keyboard.handle(event)
        for keyboard in self.keyboards:
            keyboard.pumped()

    def update(self, status: dict[str, Any]) -> None:
        import time

        for rid, robot in status["robots"].items():
            self.trace[rid].append(robot["uncertainty"])
        if time.time() - self.last_draw >= self.refresh_s:
            self.last_draw = time.time()
            self.draw(status)
            self.pygame.display.flip()

    def save(self, path: str | Path) -> None:
        self.pygame.image.save(self.screen, str(path))

    def close(self) -> None:
        self.pygame.display.quit()

    # ---- drawing ----
    def text(self, s: str, pos: tuple[int, int], color: tuple[int, int, int] = TEXT, font: Any = None) -> None:
        self.labels.append(s)
        self.screen.blit((font or self.font).render(s, True, color), pos)

    def panel(self, rect: tuple[int, int, int, int], title: str) -> None:
        self.pygame.draw.rect(self.screen, PANEL, rect, border_radius=6)
        self.text(title, (rect[0] + 10, rect[1] + 8), DIM)

    def focus(self, status: dict[str, Any]) -> int | None:
        """The robot to show: the first served by an operator, else the top of the queue."""
        served = [r for robots in status.get("serving", {}).values() for r in robots]
        queue = [q["robot"] for q in status.get("queue", [])]
        return (served + queue + sorted(status["robots"]))[0] if status["robots"] else None

    def draw(self, status: dict[str, Any]) -> None:
        self.labels = []
        self.screen.fill(BG)
        c = self.cfg
        self.text(f"dagger operator console  ·  {c.task.name}  ·  gate {c.gate.name}  ·  {c.robots} robots, "
                  f"{c.operators} operator(s)", (16, 12), TEXT, self.big)
        self.draw_queue(status, (16, 50, 320, 440))
        self.draw_camera(status, (348, 50, 340, 300))
        self.draw_trace(status, (348, 360, 340, 130))
        self.draw_operators(status, (700, 50, 244, 440))
        self.text(KEYS, (16, 510), DIM, self.small)
        what, why = storage_lines(status.get("storage", {}))
        if what:  # in red above the panels, the buffer's own error below them
            self.text(what, (16, 32), RED, self.small)
            self.text(why if len(why) <= 128 else f"…{why[-127:]}", (16, 492), RED, self.small)  # the cause is last

    def draw_queue(self, status: dict[str, Any], rect: tuple[int, int, int, int]) -> None:
        x, y, w, _ = rect
        self.panel(rect, "help queue")
        columns = (x + 10, x + 50, x + 195, x + 255)
        for col, head in zip(columns, ("robot", "reason", "waiting", "urgency"), strict=True):
            self.text(head, (col, y + 32), DIM, self.small)
        row = y + 52
        for q in status.get("queue", [])[:14]:
            cells = (str(q["robot"]), reason_text(q["reason"]), f"{q['waiting_s']:.1f} s", f"{q['urgency']:.2f}")
            for col, cell in zip(columns, cells, strict=True):
                self.text(cell, (col, row), STATE_COLOR["waiting"])
            row += 22
        if not status.get("queue"):
            self.text("no robot is waiting", (x + 10, row), DIM)
            row += 22
        row += 10
        self.text("with an operator", (x + 10, row), DIM, self.small)
        row += 20
        for op, robots in status.get("serving", {}).items():
            for rid in robots:
                robot = status["robots"].get(rid, {})
                color = STATE_COLOR["operator"] if in_control(robot) else TEXT
                self.text(f"robot {rid}  {with_operator(robot, op)}", (x + 10, row), color)
                row += 22

    def draw_camera(self, status: dict[str, Any], rect: tuple[int, int, int, int]) -> None:
        x, y, w, h = rect
        rid = self.focus(status)
        robot = status["robots"].get(rid, {}) if rid is not None else {}
        title = "camera" if rid is None else f"robot {rid}  ·  {robot_state(robot)}  ·  v{robot.get('version', 0)}"
        self.panel(rect, title)
        frame = status.get("frames", {}).get(rid)
        view = (x + 10, y + 32, w - 20, h - 42)
        if frame is None:
            self.text("no camera frame", (x + 110, y + h // 2), DIM)
            return
        surface = self.pygame.surfarray.make_surface(np.ascontiguousarray(np.asarray(frame).swapaxes(0, 1)))
        self.screen.blit(self.pygame.transform.smoothscale(surface, view[2:]), view[:2])
        offered = robot.get("state") == "operator" and not in_control(robot)  # it holds until the takeover
        color = STATE_COLOR["waiting"] if offered else STATE_COLOR.get(robot.get("state", ""), DIM)
        self.pygame.draw.rect(self.screen, color, view, width=3)

    def draw_trace(self, status: dict[str, Any], rect: tuple[int, int, int, int]) -> None:
        x, y, w, h = rect
        rid = self.focus(status)
        threshold = self.threshold(status)
        self.panel(rect, f"uncertainty vs threshold {threshold:.4f} (red)")
        values = list(self.trace.get(rid, [])) if rid is not None else []
        top = max([threshold * 2, *values]) or 1.0
        plot = (x + 10, y + 30, w - 20, h - 40)

        def to_y(v: float) -> int:
            return int(plot[1] + plot[3] - min(v, top) / top * plot[3])

        self.pygame.draw.line(self.screen, RED, (plot[0], to_y(threshold)), (plot[0] + plot[2], to_y(threshold)))
        if len(values) > 1:
            step = plot[2] / (len(values) - 1)
            points = [(int(plot[0] + i * step), to_y(v)) for i, v in enumerate(values)]
            self.pygame.draw.lines(self.screen, STATE_COLOR["operator"], False, points, 2)

    def threshold(self, status: dict[str, Any]) -> float:
        """The gate's threshold now: as the supervisor last tuned it (auto, thrifty: status["thresholds"], as the
        dashboard shows it), else the config's."""
        return float(status.get("thresholds", {}).get("threshold", self.cfg.gate.threshold))

    def draw_operators(self, status: dict[str, Any], rect: tuple[int, int, int, int]) -> None:
        x, y, _, _ = rect
        self.panel(rect, "operators & devices")
        devices = status.get("devices", {})
        row = y + 36
        kinds = self.cfg.operator.kinds
        for op in range(self.cfg.operators):
            kind = kinds[op % len(kinds)]
            served = status.get("serving", {}).get(op, [])
            controlled = [r for r in served if in_control(status["robots"].get(r, {}))]
            offered = [r for r in served if r not in controlled]
            self.text(f"operator {op}  ({kind})", (x + 10, row), TEXT)
            row += 20
            for label, rids in (("in control of", controlled), ("offered", offered)):
                if rids:
                    self.text(f"{label} " + ", ".join(f"robot {r}" for r in rids), (x + 20, row), DIM, self.small)
                    row += 18
            if not served:
                self.text("no robot offered", (x + 20, row), DIM, self.small)
                row += 18
            health = devices.get(op)
            if health is not None:
                age = "—" if health["age_s"] is None else f"{1000 * health['age_s']:.0f} ms"
                ok = health["present"]
                name, _, path = health["device"].partition(" (")
                self.text(name, (x + 20, row), TEXT if ok else RED, self.small)
                row += 18
                if path:
                    self.text(path.rstrip(")"), (x + 20, row), DIM, self.small)
                    row += 18
                self.text(f"{health['rate_hz']:.0f} Hz  ·  age {age}", (x + 20, row), DIM, self.small)
                row += 18
                if kind != "keyboard":  # Space takes control until Enter or Escape: no switch to hold
                    self.text("deadman held" if health["deadman"] else "deadman released", (x + 20, row),
                              GREEN if health["deadman"] else DIM, self.small)
                    row += 18
                if not ok:
                    self.text("DEVICE LOST", (x + 20, row), RED)
                    row += 20
            row += 12
