"""What an operator turning the focus ring needs on top of a view: a region of interest with its
focus score, a short history graph of that score, and a magnifier.

All of it is drawn after the view, on its first (frame) panel, into BGR pictures or, through small
BGR patches, into I420 ones (video files), so it costs the same at any resolution.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import cv2
import numpy as np

from runtime import overlay_i420
from runtime.focus_report import ReportConfig, roi_slices

Box = tuple[int, int, int, int]  # x, y, width, height in frame pixels
GOOD, POOR = (80, 220, 80), (0, 170, 255)  # score colours (BGR): at or above the in-focus line, below


@dataclass(frozen=True)
class AssistConfig:
    roi: Box | None = None  # region of interest in frame pixels; None: none drawn, no graph
    magnifier: bool = False  # a zoomed inset of the region of interest, or else of the sharpest region
    zoom: float = 2.0  # magnifier zoom: frame pixels to picture pixels
    graph_seconds: float = 5.0  # how much of the region's score history the graph shows; 0 = no graph
    in_focus: float = 0.5  # the score line drawn on the graph, and where the ROI turns from amber to green

    @property
    def active(self) -> bool:
        return self.roi is not None or self.magnifier


def parse_roi(text: str) -> Box:
    """ "X,Y,W,H" in frame pixels; ValueError with the reason otherwise."""
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError(f"--roi takes X,Y,W,H in pixels, got {text!r}")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--roi takes X,Y,W,H in whole pixels, got {text!r}") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ValueError(f"--roi needs X, Y >= 0 and W, H > 0, got {text!r}")
    return x, y, w, h


def clip_box(box: Box, frame_hw: tuple[int, int]) -> Box | None:
    """The box cut to the frame; None when nothing of it is inside."""
    x, y, w, h = box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(frame_hw[1], x + w), min(frame_hw[0], y + h)
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def roi_score(in_focus: np.ndarray, roi: Box, frame_hw: tuple[int, int]) -> float:
    """Mean in-focus probability over the region (the maps may be at the network's size)."""
    return float(in_focus[roi_slices(ReportConfig(roi=roi), frame_hw, in_focus.shape)].mean())


def sharpest_box(in_focus: np.ndarray, frame_hw: tuple[int, int], size_hw: tuple[int, int]) -> Box:
    """The frame box of `size_hw` whose mean in-focus probability is highest."""
    mh, mw = in_focus.shape
    fh, fw = frame_hw
    kh, kw = max(1, round(size_hw[0] * mh / fh)), max(1, round(size_hw[1] * mw / fw))
    scores = cv2.boxFilter(in_focus.astype(np.float32, copy=False), -1, (kw, kh), borderType=cv2.BORDER_REFLECT)
    cy, cx = np.unravel_index(int(np.argmax(scores)), scores.shape)
    x = int(np.clip((cx + 0.5) * fw / mw - size_hw[1] / 2, 0, fw - size_hw[1]))
    y = int(np.clip((cy + 0.5) * fh / mh - size_hw[0] / 2, 0, fh - size_hw[0]))
    return x, y, size_hw[1], size_hw[0]


@contextmanager
def bgr_region(image: np.ndarray, i420: bool, x: int, y: int, w: int, h: int) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
    """A part of the picture as BGR to draw on in place (for I420 pictures a converted patch), and
    the picture coordinates of its top-left corner (the box is clipped to the picture)."""
    if i420:
        with overlay_i420.bgr_region(image, x, y, w, h) as region:
            yield region
        return
    x0, y0 = max(0, x), max(0, y)
    yield image[y0 : max(y0, y + h), x0 : max(x0, x + w)], (x0, y0)


def frame_crop(frame: np.ndarray, i420: bool, box: Box) -> np.ndarray:
    """The frame's pixels in `box`, as BGR (for I420 frames only that part is converted)."""
    x, y, w, h = box
    return overlay_i420.crop_bgr(frame, x, y, w, h) if i420 else frame[y : y + h, x : x + w]


class FocusAssist:
    """The region, graph and magnifier of one stream; keeps the score history between frames."""

    def __init__(self, config: AssistConfig = AssistConfig()) -> None:
        self.config = config
        self.history: deque[tuple[float, float]] = deque()
        self.score: float | None = None

    def set_roi(self, roi: Box | None) -> None:
        """A new region starts a new history."""
        self.config = replace(self.config, roi=roi)
        self.history.clear()
        self.score = None

    def label(self) -> str:
        return "" if self.score is None else f"ROI {self.score:.2f}"

    def draw(self, image: np.ndarray, i420: bool, frame: np.ndarray, frame_hw: tuple[int, int], in_focus: np.ndarray, t: float | None = None) -> None:
        """Draw onto the view `image` (in place). `frame` is the source frame (BGR or I420) for the
        magnifier; `in_focus` the map at any size; `t` the frame's time in seconds (default: now)."""
        cfg = self.config
        pic_h = overlay_i420.frame_size(image)[0] if i420 else image.shape[0]
        scale = pic_h / frame_hw[0]  # every panel of a view has the frame's height, scaled alike
        panel_w = round(frame_hw[1] * scale)
        roi = clip_box(cfg.roi, frame_hw) if cfg.roi is not None else None
        self.score = None
        if roi is not None:
            self.score = roi_score(in_focus, roi, frame_hw)
            now = time.monotonic() if t is None else t
            self.history.append((now, self.score))
            while self.history and (now - self.history[0][0] > cfg.graph_seconds + 1e-6 or self.history[0][0] > now):
                self.history.popleft()
            self._box(image, i420, roi, scale, GOOD if self.score >= cfg.in_focus else POOR, pic_h)
            if cfg.graph_seconds > 0:
                self._graph(image, i420, panel_w, pic_h, now)
        if cfg.magnifier:
            self._magnifier(image, i420, frame, frame_hw, in_focus, roi, scale, panel_w, pic_h)

    @staticmethod
    def _box(image: np.ndarray, i420: bool, box: Box, scale: float, color: tuple[int, int, int], pic_h: int) -> None:
        x, y, w, h = (round(v * scale) for v in box)
        t = max(1, round(pic_h / 360))
        with bgr_region(image, i420, x - t, y - t, w + 2 * t + 1, h + 2 * t + 1) as (patch, (ox, oy)):
            cv2.rectangle(patch, (x - ox, y - oy), (x - ox + w, y - oy + h), color, t, cv2.LINE_AA)

    def _graph(self, image: np.ndarray, i420: bool, panel_w: int, pic_h: int, now: float) -> None:
        gw, gh = max(60, panel_w // 3), max(30, pic_h // 6)
        x0, y0 = 0, pic_h - gh
        with bgr_region(image, i420, x0, y0, gw, gh) as (patch, _):
            ph, pw = patch.shape[:2]
            if ph == 0 or pw == 0:
                return
            patch[...] = cv2.convertScaleAbs(patch, alpha=0.3)
            cv2.rectangle(patch, (0, 0), (pw - 1, ph - 1), (160, 160, 160), 1)
            level = round((ph - 1) * (1 - self.config.in_focus))
            cv2.line(patch, (0, level), (pw - 1, level), (120, 120, 120), 1)
            span = max(self.config.graph_seconds, 1e-6)
            points = np.array([((pw - 1) * (1 - (now - ts) / span), (ph - 1) * (1 - s)) for ts, s in self.history], np.float32)
            if len(points) > 1:
                cv2.polylines(patch, [np.round(points).astype(np.int32)], False, GOOD if self.history[-1][1] >= self.config.in_focus else POOR, max(2, ph // 30), cv2.LINE_AA)

    def _magnifier(
        self, image: np.ndarray, i420: bool, frame: np.ndarray, frame_hw: tuple[int, int], in_focus: np.ndarray, roi: Box | None, scale: float, panel_w: int, pic_h: int
    ) -> None:
        zoom = max(1.0, self.config.zoom)
        inset_w = max(32, panel_w // 3)  # picture pixels; it shows inset_w / zoom frame pixels
        src_w = max(8, min(frame_hw[1], round(inset_w / zoom)))
        if roi is not None:
            cx, cy = roi[0] + roi[2] // 2, roi[1] + roi[3] // 2
            src_h = max(8, min(frame_hw[0], round(src_w * 0.75)))
            source = (int(np.clip(cx - src_w // 2, 0, frame_hw[1] - src_w)), int(np.clip(cy - src_h // 2, 0, frame_hw[0] - src_h)), src_w, src_h)
        else:
            source = sharpest_box(in_focus, frame_hw, (max(8, min(frame_hw[0], round(src_w * 0.75))), src_w))
        crop = frame_crop(frame, i420, source)
        iw, ih = min(panel_w, round(crop.shape[1] * zoom)), min(pic_h, round(crop.shape[0] * zoom))
        self._box(image, i420, source, scale, (255, 255, 255), pic_h)
        with bgr_region(image, i420, panel_w - iw, 0, iw, ih) as (patch, _):
            if patch.size:
                # Nearest neighbour: the frame's own pixels, enlarged, are what focus is judged on.
                patch[...] = cv2.resize(crop, (patch.shape[1], patch.shape[0]), interpolation=cv2.INTER_NEAREST)
                cv2.rectangle(patch, (0, 0), (patch.shape[1] - 1, patch.shape[0] - 1), (255, 255, 255), max(1, pic_h // 360))
