"""MP4 camera frames with PyAV, as LeRobot writes and reads them (lerobot datasets/video_utils.py), but lossless:
H.264 in RGB (libx264rgb, crf 0, a key frame every 2 frames) so frames read back bit for bit.

    if available(): clip = encode(frames, fps)             # uint8 (T, H, W, 3) -> MP4 bytes
    with Appender(path) as out: first_s, end_s = out.append(clip)   # clips one after another in one file
    times, frames = decode(path)                           # every frame and its timestamp in seconds
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from buffers.schema import NO_IMAGE

CODEC, OPTIONS = "libx264rgb", {"g": "2", "crf": "0"}  # video_utils.py encode_video_frames: g=2; crf 0: lossless


def available() -> bool:
    """Whether PyAV imports (the `video` extra)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def encode(frames: np.ndarray, fps: int) -> bytes:
    """Frames (uint8, T x H x W x 3) as an MP4 in memory."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream: av.VideoStream = out.add_stream(CODEC, fps, options=OPTIONS)  # type: ignore[assignment]
        stream.pix_fmt, stream.height, stream.width = "rgb24", frames.shape[1], frames.shape[2]
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode())
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
