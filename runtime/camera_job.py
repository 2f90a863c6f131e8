"""A live camera through the model: newest frame in, view on screen (and optionally recorded).

The device can be a camera index, a device path, or a video file played as if it were a camera
(frames as fast as they decode), which is also how the loop is tested without a camera.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from runtime.capture import LatestFrameCapture
from runtime.interrupts import interrupts_deferred, signal_name
from runtime.pipeline import FrameProcessor, Renderer
from runtime.video_io import VideoWriter

WINDOW = "dbd-rt"
# Recordings carry each frame's wall-clock time (ms), so a stalled camera does not speed playback up.
RECORD_TIME_BASE = Fraction(1, 1000)


class CameraError(ValueError):
    """A camera that cannot be opened or stopped delivering; the message names it."""


@dataclass(frozen=True)
class CameraConfig:
    device: str = "0"  # index, device path, or a video file played as a camera
    width: int = 0  # requested capture size and rate; 0 = the camera's default
    height: int = 0
    fps: float = 0.0
    show: bool = True
    max_frames: int = 0  # 0 = until q, Esc, Ctrl-C or the end of a file
    snapshot_dir: Path = Path(".")
    record: Path | None = None


@dataclass(frozen=True)
class CameraResult:
    frames: int
    dropped: int  # camera frames skipped because a newer one had arrived
    recorded: str | None
    interrupted: str | None  # "Ctrl-C", "SIGTERM" or None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """OpenCV and its FFmpeg print a dozen warnings for a missing camera; our one line says it."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_camera(config: CameraConfig) -> cv2.VideoCapture:
    source: int | str = int(config.device) if config.device.isdigit() else config.device
    with _quiet_stderr():
        cam = cv2.VideoCapture(source)
        opened = cam.isOpened()
    if not opened:
        where = f" (/dev/video{config.device})" if isinstance(source, int) else ""
        raise CameraError(f"cannot open camera {config.device}{where}")
    for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, config.width), (cv2.CAP_PROP_FRAME_HEIGHT, config.height), (cv2.CAP_PROP_FPS, config.fps)):
        if value:
            cam.set(prop, value)
    return cam


class _Recorder:
    """Writes the shown pictures at their wall-clock times; the file keeps its first picture's size."""

    def __init__(self, out: Path, rate: float) -> None:
        self.out, self.rate = out, Fraction(rate or 30.0).limit_denominator(1001)
        self.writer: VideoWriter | None = None
        self._t0 = time.perf_counter()
        self._last = -1

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self.writer = VideoWriter(self.out, image.shape[1], image.shape[0], RECORD_TIME_BASE, self.rate)
        if image.shape[:2] != (self.writer.height, self.writer.width):  # the view changed (v)
            image = cv2.resize(image, (self.writer.width, self.writer.height), interpolation=cv2.INTER_AREA)
        pts = max(self._last + 1, int((time.perf_counter() - self._t0) * 1000))
        self.writer.write(image, pts)
        self._last = pts

    def finish(self) -> str | None:
        return None if self.writer is None else str(self.writer.finish())


def run_camera(cam: cv2.VideoCapture, config: CameraConfig, processor: FrameProcessor, renderer: Renderer, on_note: Callable[[str], None] | None = None) -> CameraResult:
    """Keys in the window: q/Esc quit, v next view, space pause, s snapshot."""
    note = on_note or (lambda message: None)
    capture = LatestFrameCapture(cam).start()
    recorder = _Recorder(config.record, cam.get(cv2.CAP_PROP_FPS)) if config.record is not None else None
    frames, paused, last, interrupt = 0, False, None, None
    try:
        while not config.max_frames or frames < config.max_frames:
            if not paused:
                frame = capture.latest()
                if frame is None:
                    if capture.failed and not str(config.device).isdigit() and frames:
                        break  # a file played as a camera has ended
                    raise CameraError(f"camera {config.device} stopped delivering frames")
                # With two frames in flight a push returns the previous frame's result (or none yet).
                for result in processor.push(frame):
                    last = renderer(result, renderer.style.view.value)
                    if recorder is not None:
                        recorder.write(last)
                    frames += 1
            if config.show and last is not None:
                cv2.imshow(WINDOW, last)
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27):
                    break
                if key == ord("v"):
                    renderer.style = replace(renderer.style, view=renderer.style.view.next())
                elif key == ord(" "):
                    paused = not paused
                elif key == ord("s"):
                    snap = config.snapshot_dir / f"dbd-rt-{time.strftime('%Y%m%d-%H%M%S')}-{frames:05d}.png"
                    cv2.imwrite(str(snap), last)
                    note(f"saved {snap}")
    except KeyboardInterrupt as exc:
        interrupt = exc
    with interrupts_deferred(lambda sig: note(f"{sig} again: still finishing, one moment")):
        capture.stop()
        if config.show:
            cv2.destroyAllWindows()
        recorded = recorder.finish() if recorder is not None else None
    return CameraResult(frames, capture.dropped, recorded, None if interrupt is None else signal_name(interrupt))
