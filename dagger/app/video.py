"""Rollout videos people can read: frames at least WIDTH pixels wide under a caption bar (episode, seed, step and the
episode's outcome), written as a playable MP4 (PyAV) or an animated GIF (Pillow) under a temporary name that
becomes the file only once every frame is in.

    check_video_path(Path("rollouts.mp4"))               # ValueError for a kind of file we cannot write
    with video_file(Path("rollouts.mp4"), fps=25) as out:
        out.write(captioned(frame, Caption(episode=1, seed=seed, step=3, steps=40, success=True)))
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from dagger.formats import mp4

SUFFIXES = (".mp4", ".gif")
WIDTH = 640  # frames narrower than this are enlarged (nearest neighbour, by a whole factor): 160x120 -> 640x480
BAR_HEIGHT = 40  # the caption bar above each frame
FONT_PX = 14
ASCENT, DESCENT = 14, 4  # pixel rows of a text line above and below its baseline
BAR, TEXT = (24, 24, 28), (235, 235, 235)
BADGE = {True: (34, 139, 60), False: (190, 40, 40)}  # success green, failure red


class FrameWriter(Protocol):
    """A video being written: frames (uint8 H x W x 3 RGB, all one size) go in one at a time; close() finishes it."""

    frames: int  # written so far

    def write(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...


class Caption(NamedTuple):
    """What a frame's caption bar says."""

    episode: int  # 1, 2, ... in the evaluation
    seed: int
    step: int  # the frame's step in its episode (0: after the reset)
    steps: int  # the episode's length
    success: bool  # the episode's outcome, on its last step
    violated: bool = False  # some step violated the task's constraint

    def left(self) -> str:
        return f"episode {self.episode}  seed {self.seed}  step {self.step}"  # its last step: on the badge

    def badge(self) -> str:
        if self.success:
            return f"SUCCESS at step {self.steps}" + (", VIOLATED" if self.violated else "")
        return f"{'VIOLATION' if self.violated else 'FAILURE'} after {self.steps} steps"


def check_video_path(path: Path) -> None:
    """ValueError naming the file when its suffix is not one we write, or an MP4 without PyAV."""
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: a video is written as .mp4 or .gif, not {path.suffix or 'a file without suffix'}")
    if path.suffix.lower() == ".mp4" and not mp4.available():
        raise ValueError(f"{path}: writing MP4 needs PyAV (pip install 'dagger-fleet[video]'), or use .gif")


def enlarged(frame: np.ndarray, width: int = WIDTH) -> np.ndarray:
    """The frame at least `width` wide (nearest neighbour, by a whole factor), with an even width and height."""
    factor = -(-width // frame.shape[1])
    if factor > 1:
        frame = frame.repeat(factor, axis=0).repeat(factor, axis=1)
    if frame.shape[0] % 2 or frame.shape[1] % 2:  # yuv420p: a colour sample per 2x2 pixels
        frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
    return frame


def captioned(frame: np.ndarray, caption: Caption) -> np.ndarray:
    """The frame under a caption bar: episode, seed and step on the left, the outcome in a coloured badge."""
    width = frame.shape[1]
    bar = np.empty((BAR_HEIGHT, width, 3), np.uint8)
    bar[:] = BAR
    badge = _text(caption.badge(), bold=True)
    badge_w = badge.shape[1] + 16
    left = width - badge_w - 8
    bar[6:BAR_HEIGHT - 6, left:left + badge_w] = BADGE[caption.success and not caption.violated]
    _draw(bar, badge, left + 8, TEXT)
    _draw(bar[:, :max(left - 8, 0)], _text(caption.left()), 10, TEXT)
    return np.concatenate([bar, frame])


@cache
def _font(bold: bool) -> Any:
    import matplotlib
    from matplotlib.ft2font import FT2Font

    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"  # monospace: the text holds still as it counts
    return FT2Font(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name))


def _text(text: str, bold: bool = False) -> np.ndarray:
    """The text's coverage (uint8, 0..255) on a fixed line: ASCENT rows above the baseline and DESCENT below, so
    texts drawn at the same place share a baseline whatever letters they hold."""
    font = _font(bold)
    font.set_size(FONT_PX, 72)  # 72 dpi: points are pixels
    font.set_text(text, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    ink = np.asarray(font.get_image())
    below = -(-font.get_descent() // 64)  # rows of ink under the baseline (26.6 fixed point, rounded up)
    above = ink.shape[0] - below
    rows = ink[max(0, above - ASCENT):above + min(below, DESCENT)]
    out = np.zeros((ASCENT + DESCENT, ink.shape[1]), np.uint8)
    out[ASCENT - min(above, ASCENT):][:rows.shape[0]] = rows
    return out


def _draw(bar: np.ndarray, coverage: np.ndarray, x: int, colour: tuple[int, int, int]) -> None:
    """Blends the text's coverage into the bar at x, its baseline at the bar's text line (clipped at the right)."""
    top = (bar.shape[0] - ASCENT - DESCENT) // 2 + 2  # capitals and digits centred; descenders hang below
    width = min(coverage.shape[1], bar.shape[1] - x)
    if width <= 0:
        return
    alpha = coverage[:, :width, None].astype(np.float32) / 255
    region = bar[top:top + coverage.shape[0], x:x + width]
    region[:] = (region * (1 - alpha) + np.array(colour, np.float32) * alpha).round().astype(np.uint8)


class GifWriter:
    """An animated GIF written a frame at a time, saved by close(). Every frame shares one 256-colour palette, made
    from the first frame and the caption's colours, so a frame differs from the one before only where the scene
    moved (a small file) and colours hold still."""

    def __init__(self, path: Path, fps: int) -> None:
        self.path, self.fps, self.frames = path, fps, 0
        self.images: list[Any] = []  # PIL images, 1 byte a pixel
        self.palette: Any = None

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        image = Image.fromarray(np.ascontiguousarray(frame, np.uint8))
        if self.palette is None:
            self.palette = Image.fromarray(np.concatenate([frame, _swatch(frame.shape[1])])).quantize(256)
        self.images.append(image.quantize(palette=self.palette, dither=Image.Dither.NONE))
        self.frames += 1

    def close(self) -> None:
        if not self.images:
            raise ValueError(f"{self.path}: a GIF needs at least one frame")
        first, *rest = self.images
        first.save(self.path, format="GIF", save_all=True, append_images=rest, duration=round(1000 / self.fps),
                   loop=0)


def _swatch(width: int) -> np.ndarray:
    """Rows of the caption's colours and the blends its text makes with them, for a palette to hold."""
    shades = np.linspace(0, 1, 16)[:, None]
    rows = [(1 - shades) * np.array(back) + shades * np.array(TEXT) for back in (BAR, *BADGE.values())]
    strip = np.concatenate(rows).round().astype(np.uint8)  # 48 colours
    return np.repeat(strip, -(-width // len(strip)), axis=0)[:width][None].repeat(8, axis=0)


@contextmanager
def video_file(path: Path, fps: int) -> Iterator[FrameWriter]:
    """A writer for the path's kind of video; the frames go to a hidden temporary file beside it that replaces the
    path only when all are written, so a failure leaves no partial video (and no temporary file) behind."""
    check_video_path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:  # a file where the folder should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), err.filename) from err
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    writer: FrameWriter = (GifWriter(temporary, fps) if path.suffix.lower() == ".gif"
                           else mp4.Writer(temporary, fps, playable=True))
    try:
        yield writer
    except BaseException:
        with suppress(Exception):  # the first error is the one to report
            writer.close()
        temporary.unlink(missing_ok=True)
        raise
    try:
        writer.close()
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # gone already when the rename happened
