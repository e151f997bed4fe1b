"""MP4 camera frames with PyAV, as LeRobot writes and reads them (lerobot datasets/video_utils.py), but lossless:
H.264 in RGB (libx264rgb, crf 0, a key frame every 2 frames) so frames read back bit for bit; and playable MP4s
for people (H.264 in yuv420p, what every player and browser shows).

    if available(): clip = encode(frames, fps)             # uint8 (T, H, W, 3) -> MP4 bytes
    with Writer(path, fps, playable=True) as out: out.write(frame)   # a frame at a time, into a file
    with Appender(path) as out: first_s, end_s = out.append(clip)   # clips one after another in one file
    times, frames = decode(path)                           # every frame and its timestamp in seconds
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from buffers.schema import NO_IMAGE

CODEC, OPTIONS = "libx264rgb", {"g": "2", "crf": "0"}  # video_utils.py encode_video_frames: g=2; crf 0: lossless
PLAYABLE_CODEC, PLAYABLE_OPTIONS = "libx264", {"crf": "18", "preset": "fast"}  # crf 18: the text stays sharp


def available() -> bool:
    """Whether PyAV imports (the `video` extra)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


class Writer:
    """An MP4 written a frame at a time (uint8 H x W x 3 RGB; the first frame sets the size). Lossless RGB by
    default, for reading back; `playable`: yuv420p, which players need, and so an even width and height."""

    def __init__(self, target: Path | BinaryIO, fps: int, playable: bool = False) -> None:
        import av

        self.target, self.fps, self.playable = target, fps, playable
        file = isinstance(target, Path)
        faststart = {"movflags": "faststart"} if playable and file else {}  # the index first, for streaming (a file's)
        self.out: Any = av.open(str(target) if file else target, "w", format="mp4", options=faststart)
        self.stream: Any = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import av

        height, width = frame.shape[:2]
        if self.stream is None:
            if self.playable and (height % 2 or width % 2):
                raise ValueError(f"{self.target}: a playable MP4 needs an even width and height, not {width}x{height}")
            codec, options = (PLAYABLE_CODEC, PLAYABLE_OPTIONS) if self.playable else (CODEC, OPTIONS)
            self.stream = self.out.add_stream(codec, self.fps, options=options)
            self.stream.pix_fmt = "yuv420p" if self.playable else "rgb24"
            self.stream.height, self.stream.width = height, width
        elif (height, width) != (self.stream.height, self.stream.width):
            raise ValueError(f"{self.target}: frame {self.frames} is {width}x{height}, the video "
                             f"{self.stream.width}x{self.stream.height}")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, np.uint8), format="rgb24")
        self.out.mux(self.stream.encode(picture))  # PyAV converts to the stream's pixel format
        self.frames += 1

    def close(self) -> None:
        if self.stream is not None:
            self.out.mux(self.stream.encode())  # the frames the encoder still holds
        self.out.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def encode(frames: np.ndarray, fps: int) -> bytes:
    """Frames (uint8, T x H x W x 3) as a lossless MP4 in memory."""
    buffer = io.BytesIO()
    with Writer(buffer, fps) as out:
        for frame in frames:
            out.write(frame)
    return buffer.getvalue()


class Appender:
    """One MP4 file that clips from encode() are appended to, their timestamps going on (LeRobot's concatenation of
    episodes, without re-encoding the file each time)."""

    def __init__(self, path: Path) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.out: Any = av.open(str(path), "w", options={"movflags": "faststart"})
        self.stream: Any = None
        self.ticks = 0

    def append(self, clip: bytes) -> tuple[float, float]:
        """Appends a clip; returns where it starts and ends in the file, in seconds."""
        import av

        with av.open(io.BytesIO(clip), "r") as source:
            stream = source.streams.video[0]
            if self.stream is None:
                self.stream = self.out.add_stream_from_template(stream)
                self.stream.time_base = stream.time_base
            for packet in source.demux(stream):
                if packet.dts is not None:  # not the demuxer's flushing packet
                    packet.pts, packet.dts = (packet.pts or 0) + self.ticks, packet.dts + self.ticks
                    packet.stream = self.stream
                    self.out.mux(packet)
            first, self.ticks, time_base = self.ticks, self.ticks + (stream.duration or 0), stream.time_base or 0
        return float(first * time_base), float(self.ticks * time_base)

    def close(self) -> None:
        self.out.close()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def info(path: Path) -> dict[str, Any]:
    """A LeRobot "video" feature's info: what the file holds (video_utils.py get_video_info, lerobot 0.4)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {"video.height": stream.height, "video.width": stream.width,
                "video.codec": stream.codec.canonical_name, "video.pix_fmt": stream.pix_fmt,
                "video.is_depth_map": False, "video.fps": int(stream.base_rate or 0),
                "video.channels": len(stream.format.components),  # gbrp: 3 (pyav_utils.py get_pix_fmt_channels)
                "has_audio": bool(container.streams.audio)}


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of an MP4 (uint8 RGB) and its timestamp in seconds; ValueError naming the file when it cannot be
    read (or PyAV is missing)."""
    try:
        import av
    except ImportError as err:
        raise ValueError(f"{path}: reading videos needs PyAV (pip install 'dagger-fleet[video]')") from err
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            decoded = [(float(f.pts * (stream.time_base or 0)), f.to_ndarray(format="rgb24"))
                       for f in container.decode(stream) if f.pts is not None]
    except (OSError, av.error.FFmpegError, IndexError) as err:
        raise ValueError(f"{path}: not a readable video ({err})") from err
    if not decoded:
        return np.zeros(0), np.zeros((0, *NO_IMAGE.shape), np.uint8)
    return np.array([t for t, _ in decoded]), np.stack([f for _, f in decoded])


def errors() -> tuple[type[Exception], ...]:
    """PyAV's errors (FFmpeg's, not all of them OSError or ValueError), to catch where writing a video may fail."""
    try:
        import av
    except ImportError:
        return ()
    return (av.FFmpegError,)
