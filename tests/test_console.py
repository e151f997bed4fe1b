"""The operator console under SDL's dummy video driver, saved to PNG and checked."""

import numpy as np
import pygame

from dagger.app.console import OperatorConsole
from dagger.config import load_config
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
