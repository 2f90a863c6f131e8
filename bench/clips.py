"""Writing test and demo clips: H.264 video from frames, optionally with an AAC tone as audio."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

AUDIO_RATE = 44100


def write_clip(path: Path, frames: Iterable[np.ndarray], rate: Fraction = Fraction(30), tone_hz: float | None = 440.0, crf: int = 23) -> int:
    """Encode BGR frames (even sizes) to an MP4; with `tone_hz`, add a quiet sine of the same length."""
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"preset": "veryfast", "crf": str(crf)}
        audio = container.add_stream("aac", rate=AUDIO_RATE) if tone_hz else None
        if audio is not None:
            audio.layout = "mono"
        n = 0
        for i, image in enumerate(_chain(first, frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in video.encode(frame):
                container.mux(packet)
            n += 1
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            seconds = n / float(rate)
            t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
            samples = (0.1 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = samples[start : start + 1024][None]
                af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                af.sample_rate = AUDIO_RATE
                af.pts = start
                af.time_base = Fraction(1, AUDIO_RATE)
                for packet in audio.encode(af):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return n


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def synthetic_frames(width: int, height: int, count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """A textured scene whose left half is sharp and right half blurred, drifting one pixel a frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width + count, 3), dtype=np.uint8)
    base = cv2.GaussianBlur(base, (0, 0), 1.0)
    for i in range(count):
        frame = np.ascontiguousarray(base[:, i : i + width])
        frame[:, width // 2 :] = cv2.GaussianBlur(frame[:, width // 2 :], (0, 0), 4.0)
        yield frame


def ken_burns(photo: np.ndarray, width: int, height: int, count: int, zoom: float = 1.15, pan: float = 0.08) -> Iterator[np.ndarray]:
    """A slow zoom-and-pan over a photo, `count` frames of width x height."""
    ph, pw = photo.shape[:2]
    for i in range(count):
        t = i / max(1, count - 1)
        z = 1 + (zoom - 1) * t
        # The largest crop of the output's aspect ratio, shrunk by the zoom, moving sideways.
        cw = min(pw, ph * width / height) / z
        ch = cw * height / width
        cx = pw / 2 + (t - 0.5) * pan * pw
        cy = ph / 2
        x0 = float(np.clip(cx - cw / 2, 0, pw - cw))
        y0 = float(np.clip(cy - ch / 2, 0, ph - ch))
        m = np.array([[width / cw, 0, -x0 * width / cw], [0, height / ch, -y0 * height / ch]], np.float32)
        yield cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def sample_clip_at(path: Path, width: int, height: int, seconds: float = 10.0, rate: int = 30) -> Path:
    """The bundled clip's three photos at any size: a slow zoom and pan over each, `seconds` long
    in all (real content, unlike synthetic noise, encodes and decodes like footage)."""
    from runtime.model_info import SAMPLE_CLIP
    from runtime.video_io import read_frames

    photos = read_frames(SAMPLE_CLIP, indices=(30, 90, 150))
    per_photo = max(1, int(seconds * rate) // len(photos))
    write_clip(path, (f for photo in photos for f in ken_burns(photo, width, height, per_photo)), rate=Fraction(rate))
    return path
