"""The operator console under SDL's dummy video driver: saved to PNG and checked, and the text it draws."""

import numpy as np
import pygame
import pytest

from dagger.app.console import OperatorConsole, reason_text
from dagger.config import load_config
from dagger.gates import GATES
from dagger.tasks import make_task

ROBOTS = {i: {"robot": i, "state": s, "uncertainty": 0.01 * (i + 1), "version": 9, "episode": 2, "episode_steps": 3,
              "successes": 1, "steps": 50, "operator": -1} for i, s in enumerate(["operator", "waiting", "waiting"])}


def status(queue):
    task = make_task("point")
    task.reset(seed=0)
    return {"robots": ROBOTS, "frames": {0: task.render()}, "serving": {0: [0]}, "queue": queue,
            "devices": {0: {"device": "SpaceMouse Compact (/dev/hidraw7)", "present": True, "rate_hz": 62.0,
                            "age_s": 0.004, "deadman": True}}}


QUEUE = [{"robot": 1, "reason": "novelty", "waiting_s": 2.5, "urgency": 3.1},
         {"robot": 2, "reason": "stale_input", "waiting_s": 0.4, "urgency": 1.2}]


def queue_pixels(path):
    image = pygame.surfarray.array3d(pygame.image.load(str(path)))  # [x, y, rgb]
    return image[26:336, 100:400]  # the queue panel's rows


def test_console_png_shows_the_queue_camera_and_device(tmp_path):
    cfg = load_config(None, ["task=point", "robots=3", "operator.kinds=[spacemouse]"])
    console = OperatorConsole(cfg)
    console.update(status([]))
    console.draw(status([]))
    console.save(tmp_path / "empty.png")
    console.draw(status(QUEUE))
    console.save(tmp_path / "console.png")
    console.close()
    shown, empty = queue_pixels(tmp_path / "console.png"), queue_pixels(tmp_path / "empty.png")
    waiting_color = np.array([240, 190, 60])
    assert (np.abs(shown - waiting_color).sum(-1) < 30).sum() > 50, "queue rows are drawn in the waiting color"
    assert not (np.abs(empty - waiting_color).sum(-1) < 30).any()
    image = pygame.surfarray.array3d(pygame.image.load(str(tmp_path / "console.png")))
    camera = image[358:678, 82:340]
    assert (np.abs(camera - np.array([60, 200, 90])).sum(-1) < 10).sum() > 20, "the camera shows the goal"


def served(controller, devices=None):
    robots = {0: ROBOTS[0] | {"operator": 0, "controller": controller}, 1: ROBOTS[1]}
    return {"robots": robots, "frames": {}, "serving": {0: [0], 1: []}, "queue": [], "devices": devices or {}}


@pytest.fixture
def console():
    cfg = load_config(None, ["task=point", "robots=2", "operators=2", "operator.kinds=[keyboard, gamepad]"])
    console = OperatorConsole(cfg)
    yield console
    console.close()


def test_a_robot_is_offered_until_its_operator_takes_over(console):
    console.draw(served("policy"))
    assert {"robot 0  offered to operator 0", "offered robot 0", "robot 0  ·  offered to operator 0  ·  v9"} <= set(
        console.labels)
    assert not [s for s in console.labels if "in control" in s]
    console.draw(served("operator:0"))
    assert {"robot 0  operator 0 in control", "in control of robot 0",
            "robot 0  ·  operator 0 in control  ·  v9"} <= set(console.labels)
    assert not [s for s in console.labels if "offered to" in s or s.startswith("offered")]


def test_queue_reasons_are_words(console):
    queue = [{"robot": 1, "reason": reason, "waiting_s": 1.0, "urgency": 1.0}
             for reason in ("not_claimed", "stale_input", "ensemble", "human")]
    console.draw(served("policy") | {"queue": queue})
    assert {"offer timed out", "input went stale", "policy unsure", "operator stepped in"} <= set(console.labels)
    assert not [s for s in console.labels if "_" in s]
    stops = ("device_lost", "e_stop", "skipped", "not_claimed", "stale_input", "deadman_released")
    for reason in (*GATES, *stops):  # every reason a robot asks with: its gate, or the safety stop that queued it
        assert reason_text(reason) != reason and "_" not in reason_text(reason)


def test_the_keyboard_shows_its_rate_and_no_deadman(console):
    devices = {0: {"device": "keyboard", "present": True, "rate_hz": 50.0, "age_s": 0.004, "deadman": True},
               1: {"device": "gamepad Xbox", "present": True, "rate_hz": 100.0, "age_s": 0.002, "deadman": False}}
    console.draw(served("operator:0", devices))
    assert {"50 Hz  ·  age 4 ms", "100 Hz  ·  age 2 ms"} <= set(console.labels)
    assert [s for s in console.labels if s.startswith("deadman")] == ["deadman released"]  # the gamepad's only


def red_rows(console, tmp_path):
    """The rows of the trace panel's plot that the red threshold line crosses."""
    console.save(tmp_path / "trace.png")
    plot = pygame.surfarray.array3d(pygame.image.load(str(tmp_path / "trace.png")))[358:678, 390:480]  # [x, y, rgb]
    red = (np.abs(plot - np.array([235, 80, 80])).sum(-1) < 30).sum(0)
    return [390 + int(y) for y in np.flatnonzero(red > 200)]


def test_the_trace_draws_the_threshold_the_supervisor_tuned_as_the_dashboard_does(tmp_path):
    cfg = load_config(None, ["task=point", "robots=3", "gate.name=auto", "gate.threshold=0.1"])
    console = OperatorConsole(cfg)
    console.update(status([]))  # robot 0 (served, shown) has uncertainty 0.01 in its trace
    console.draw(status([]))
    assert "uncertainty vs threshold 0.1000 (red)" in console.labels
    assert red_rows(console, tmp_path) == [435]  # the prior: the plot's top is twice it, the line at half height
    console.draw(status([]) | {"thresholds": {"threshold": 0.004}})
    assert "uncertainty vs threshold 0.0040 (red)" in console.labels
    assert red_rows(console, tmp_path) == [444]  # tuned: the plot's top is the trace's 0.01; 0.4 of 90 px up
    console.close()


def test_failed_storage_is_said_above_the_panels_with_the_buffers_own_error_below(console):
    error = "OSError: [Errno 28] segment log " + "/very/long/path" * 12 + ": No space left on device"
    console.draw(served("policy") | {"storage": {"ok": False, "error": error, "for_s": 3.0, "stops_in_s": 57.0}})
    said = [s for s in console.labels if "storage" in s or "No space" in s]
    assert said[0].startswith("storage failed 3 s ago: robots hold and nobody is asked for help; the run stops in 57")
    assert said[1].endswith("No space left on device") and len(said[1]) <= 128  # the cause, which comes last
    console.draw(served("policy"))
    assert not [s for s in console.labels if "storage" in s]
