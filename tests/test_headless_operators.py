"""A keyboard operator where nobody can type: refused before the run starts, in one line that names what is
missing (instead of a run that waits at 0 steps for a takeover that cannot come)."""

import sys

import pygame
import pytest

from dagger.app.errors import UserError
from dagger.app.start import open_operator_devices
from dagger.config import load_config
from teleop_devices.human import open_devices
from tests.conftest import run_dagger

KEYBOARD = load_config(None, ["task=point", "operator.kinds=[keyboard]"])


def refusal(monkeypatch, **env):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(OSError) as err:
        open_devices(KEYBOARD, act_dim=2)
    message = str(err.value)
    assert message.startswith("keyboard: no window to type into: ") and "\n" not in message
    return message


@pytest.fixture
def no_display_yet():
    """SDL picks its video driver when the display is initialized: start from none, leave none."""
    pygame.display.quit()
    yield
    pygame.display.quit()


@pytest.mark.skipif(sys.platform != "linux", reason="DISPLAY / WAYLAND_DISPLAY are Linux's")
def test_no_display_is_named(monkeypatch, no_display_yet):
    assert "no display (DISPLAY and WAYLAND_DISPLAY are unset)" in refusal(monkeypatch)


@pytest.mark.parametrize("driver", ["dummy", "offscreen"])
def test_a_driver_that_draws_into_memory_is_refused(monkeypatch, no_display_yet, driver):
    assert f"SDL_VIDEODRIVER={driver} draws into memory only; unset it" in refusal(monkeypatch, SDL_VIDEODRIVER=driver,
                                                                                   DISPLAY=":0")


@pytest.mark.skipif(sys.platform != "linux", reason="an X display name")
def test_a_display_nothing_answers_at_is_named(monkeypatch, no_display_yet):
    """SDL falls back to its offscreen driver without a word; the refusal names the display that did not answer."""
    assert refusal(monkeypatch, DISPLAY=":87").endswith("no display answers at DISPLAY=:87")


def test_a_video_driver_sdl_cannot_start_is_named(monkeypatch, no_display_yet):
    assert "SDL cannot open a window (nosuchdriver not available)" in refusal(monkeypatch,
                                                                              SDL_VIDEODRIVER="nosuchdriver")


def test_the_cli_turns_the_refusal_into_a_user_error(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    with pytest.raises(UserError, match="^keyboard: no window to type into: SDL_VIDEODRIVER=dummy"):
        open_operator_devices(KEYBOARD)


def test_dagger_start_with_a_keyboard_and_no_window_exits_2_in_one_line(tmp_path):
    result = run_dagger("start", "--in-process", "--task", "point", "--operator", "keyboard",
                        "--run-dir", str(tmp_path / "run"), timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("dagger: error: keyboard: no window to type into: SDL_VIDEODRIVER=dummy draws "
                                     "into memory only; unset it")
    assert not (tmp_path / "run").exists()
