"""Frames to maps to pictures: resize, infer, upsample, draw; with per-stage timing."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

import cv2
import numpy as np

from runtime import overlay_i420
from runtime.backends import Backend
from runtime.focus_assist import AssistConfig, FocusAssist
from runtime.model_info import STRIDE, ModelError
from runtime.overlay import OverlayStyle, draw_hud, render, to_bgr, upsample
from runtime.smoothing import MapSmoother, SmoothingConfig

# Per-frame stages in pipeline order, as StageTimes records them.
STAGES = ("decode", "preprocess", "infer", "postprocess", "overlay", "encode")

# Short side of the network input for a dynamic model, per job. On the 60 validation photos the
# shipped model scored MAE/F-beta 0.101/0.859 at 256 (better than a squashed 320x320 input, in 14%
# less time for a 640x480 frame) and 0.094/0.871 at 320, which takes 1.5x the time of 256.
VIDEO_IMGSZ = 256
PHOTO_IMGSZ = 320


@dataclass
class StageTimes:
    """Milliseconds per frame for each stage, kept whole so medians and means can both be read."""

    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage].append((time.perf_counter() - t0) * 1000)

    def add(self, stage: str, values: list[float]) -> None:
        self.ms[stage].extend(values)

    def per_frame(self, frames: int) -> dict[str, float]:
        """Total ms of each stage divided by the frame count (a stage may be timed in pieces:
        `infer` is the submit plus the collect of the same frame)."""
        return {k: float(np.sum(v)) / max(1, frames) for k, v in self.ms.items() if v}


def model_size_for(frame_shape: tuple[int, int], backend: Backend, imgsz: int = PHOTO_IMGSZ) -> tuple[int, int]:
    """The network input size: the engine's own, or for a dynamic graph `imgsz` on the short side
    with the long side scaled by the aspect ratio, both rounded to the network's stride (32)."""
    if backend.input_size is not None:
        return backend.input_size
    h, w = frame_shape
    scale = imgsz / min(h, w)
    return max(STRIDE, round(h * scale / STRIDE) * STRIDE), max(STRIDE, round(w * scale / STRIDE) * STRIDE)


def squash_note(frame_shape: tuple[int, int], backend: Backend) -> str | None:
    """A warning when a fixed-size model must stretch frames of another aspect ratio (a dynamic
    model never does: it sizes each frame by its own aspect ratio)."""
    if backend.input_size is None:
        return None
    (h, w), (mh, mw) = frame_shape, backend.input_size
    if abs((w / h) / (mw / mh) - 1) <= 0.03:
        return None
    return f"the model takes a fixed {mh}x{mw} input, so {w}x{h} frames are stretched to it (export it with --dynamic to keep their aspect ratio)"


def resize_for_model(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    interp = cv2.INTER_AREA if frame.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(frame, (w, h), interpolation=interp)


@dataclass
class FrameResult:
    """A frame and its maps. The network's maps are kept at its output size; the native-size ones are
    made on first use, since the side-by-side video view never needs them."""

    frame: np.ndarray  # at native size: BGR, or I420 (H * 3 / 2, W) for video files
    in_focus_model: np.ndarray  # float32 [0, 1] at the network's output size, 1 = in focus
    depth_model: np.ndarray  # float32 at the network's output size, 0 = near
    latency_ms: float = 0.0  # from handing the frame to the backend to its maps being ready
    pts: int = 0  # the frame's presentation time, carried through for the writer
    i420: bool = False  # the frame is I420, not BGR

    @property
    def frame_size(self) -> tuple[int, int]:
        return overlay_i420.frame_size(self.frame) if self.i420 else self.frame.shape[:2]

    @cached_property
    def in_focus(self) -> np.ndarray:
        """float32 [0, 1] at the frame's size."""
        return np.clip(upsample(self.in_focus_model, self.frame_size), 0.0, 1.0)

    @cached_property
    def depth(self) -> np.ndarray:
        """float32 at the frame's size."""
        return upsample(self.depth_model, self.frame_size)


class FrameProcessor:
    """Runs frames through a backend keeping up to `backend.in_flight` batches queued.

    `push` hands in a frame and returns the results that became ready (in order); `drain` returns
    the rest. With a synchronous backend each push returns its own frame's result.
    """

    def __init__(self, backend: Backend, times: StageTimes | None = None, imgsz: int = PHOTO_IMGSZ, smoothing: SmoothingConfig | None = None) -> None:
        """`smoothing`: carry the maps from frame to frame (video and camera; see runtime.smoothing)."""
        self.backend = backend
        self.times = times or StageTimes()
        self.imgsz = imgsz
        self.smoother: MapSmoother | None = None
        self.set_smoothing(smoothing)
        self._pending: list[tuple[np.ndarray, np.ndarray, int, bool, float]] = []  # frame, network input, pts, I420?, time submitted

    def set_smoothing(self, smoothing: SmoothingConfig | None) -> None:
        """Turn smoothing on (afresh) or off between frames."""
        self.smoother = MapSmoother(smoothing) if smoothing is not None and smoothing.strength > 0 else None

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The frame as BGR and the network's input batch; safe to run on another thread."""
        frame = to_bgr(frame)
        with self.times.time("preprocess"):
            batch = resize_for_model(frame, model_size_for(frame.shape[:2], self.backend, self.imgsz))[None]
        return frame, batch

    def push(self, frame: np.ndarray) -> list[FrameResult]:
        return self.push_prepared(*self.prepare(frame))

    def input_size(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        """The network input (height, width) for a frame of `frame_size`."""
        return model_size_for(frame_size, self.backend, self.imgsz)

    def push_prepared(self, frame: np.ndarray, batch: np.ndarray, pts: int = 0, i420: bool = False) -> list[FrameResult]:
        submitted = time.perf_counter()
        with self.times.time("infer"):
            self.backend.submit(batch)
        self._pending.append((frame, batch, pts, i420, submitted))
        out = []
        while len(self._pending) >= max(1, self.backend.in_flight):
            out.append(self._collect())
        return out

    def drain(self) -> list[FrameResult]:
        return [self._collect() for _ in range(len(self._pending))]

    def _collect(self) -> FrameResult:
        frame, batch, pts, i420, submitted = self._pending.pop(0)
        shape = batch.shape
        with self.times.time("infer"):
            in_focus, depth = self.backend.collect()
        want = (shape[0], 1, shape[1], shape[2])
        for name, m in (("in_focus", in_focus), ("depth", depth)):
            if m.shape != want:
                # A model with the right tensor names but another output contract would save garbage.
                raise ModelError(f"{self.backend.info.path}: output {name} is {tuple(m.shape)} for a {tuple(shape)} input; a dbd-rt model gives {want}")
        with self.times.time("postprocess"):
            f = np.clip(in_focus[0, 0].astype(np.float32, copy=False), 0.0, 1.0)
            d = depth[0, 0].astype(np.float32, copy=False)
            if self.smoother is not None:
                f, d = self.smoother(batch[0], f, d)
        return FrameResult(frame, f, d, (time.perf_counter() - submitted) * 1000, pts, i420)

    def process(self, frame: np.ndarray) -> FrameResult:
        """One frame, synchronously."""
        results = self.push(frame) + self.drain()
        return results[0]


class Renderer:
    """Draws the chosen view, the focus assist (region, graph, magnifier) and the HUD, with a
    smoothed fps and latency."""

    def __init__(self, style: OverlayStyle, times: StageTimes, assist: AssistConfig | None = None, time_base: Fraction | None = None) -> None:
        """`time_base`: the frames' pts unit, so the score graph runs on media time (default: wall clock)."""
        self.style = style
        self.times = times
        self.assist = FocusAssist(assist or AssistConfig())
        self.time_base = time_base
        self.picture_height = 0  # of the last picture drawn (the camera window maps mouse drags with it)
        self._scratch = overlay_i420.Scratch()  # one drawing thread per renderer
        self._fps = 0.0
        self._last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        dt = now - self._last
        self._last = now
        if dt > 0:
            self._fps = 1 / dt if self._fps == 0 else 0.9 * self._fps + 0.1 / dt

    def __call__(self, result: FrameResult, label: str = "") -> np.ndarray:
        if result.i420:
            return self.render_i420(result, label)
        with self.times.time("overlay"):
            # Views drawn at frame size use the frame-size map, made once per frame and cached (the
            # image command also saves it); the panel views colour the small map instead.
            image = render(result.frame, result.in_focus if self.style.view.frame_sized else result.in_focus_model, result.depth_model, self.style)
            label = self._assist(image, result, label)
            if self.style.hud:
                self.tick()
                draw_hud(image, self._fps, result.latency_ms, label)
        return image

    def _assist(self, image: np.ndarray, result: FrameResult, label: str) -> str:
        self.picture_height = overlay_i420.frame_size(image)[0] if result.i420 else image.shape[0]
        if not self.assist.config.active:
            return label
        t = float(result.pts * self.time_base) if self.time_base is not None else None
        self.assist.draw(image, result.i420, result.frame, result.frame_size, result.in_focus_model, t)
        return " ".join(part for part in (self.assist.label(), label) if part)

    def render_i420(self, result: FrameResult, label: str = "") -> np.ndarray:
        """The view of an I420 frame, as I420 (for the video encoder), with the HUD."""
        with self.times.time("overlay"):
            image = overlay_i420.render(result.frame, result.in_focus_model, result.depth_model, self.style, scratch=self._scratch)
            label = self._assist(image, result, label)
            if self.style.hud:
                self.tick()
                overlay_i420.draw_hud_i420(image, self._fps, result.latency_ms, label)
        return image
