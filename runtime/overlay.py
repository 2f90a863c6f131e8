"""Drawing the maps: colour maps, the four views and the HUD. Pure numpy/OpenCV on BGR uint8."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from runtime.metrics import adaptive_threshold

COLORMAPS = {
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET,
    "plasma": cv2.COLORMAP_PLASMA,
    "gray": None,
}


class View(str, Enum):
    overlay = "overlay"
    side_by_side = "side-by-side"
    maps = "maps"
    mask = "mask"

    @property
    def panels(self) -> int:
        """How many frame-sized panels wide the view is."""
        return {View.overlay: 1, View.side_by_side: 3, View.maps: 2, View.mask: 1}[self]

    def next(self) -> View:
        members = list(View)
        return members[(members.index(self) + 1) % len(members)]


@dataclass(frozen=True)
class OverlayStyle:
    view: View = View.overlay
    alpha: float = 0.5
    focus_cmap: str = "inferno"
    depth_cmap: str = "viridis"
    hud: bool = True


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Any 8-bit frame (grey, grey+1, BGR, BGRA) as contiguous BGR."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    channels = frame.shape[2]
    if channels == 1:
        return cv2.cvtColor(frame[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if channels == 3:
        return np.ascontiguousarray(frame)
    raise ValueError(f"unsupported frame with {channels} channels")


def colorize(values: np.ndarray, cmap: str) -> np.ndarray:
    """A [0, 1] float map as a BGR image through a named colour map."""
    if cmap not in COLORMAPS:
        raise ValueError(f"unknown colour map {cmap!r}; choose one of {', '.join(COLORMAPS)}")
    u8 = cv2.convertScaleAbs(np.maximum(values, 0.0), alpha=255.0)  # one saturating pass to uint8
    code = COLORMAPS[cmap]
    return cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR) if code is None else cv2.applyColorMap(u8, code)


def depth_display(depth: np.ndarray) -> np.ndarray:
    """Depth (0 near, 1 far) as shown: stretched between its 2nd and 98th percentiles (it is relative
    anyway, and the distilled maps use a narrow band of [0, 1]), near bright."""
    step = 4 if depth.size > 200_000 else 2  # a sample gives the same cut points for a fraction of the cost
    lo, hi = np.percentile(depth[::step, ::step], (2, 98))
    if hi - lo <= 1e-6:
        return np.full(depth.shape, 0.5, np.float32)
    # 1 - (d - lo) / (hi - lo), clipped, in place: this runs on every video frame.
    d = depth.astype(np.float32, copy=True)
    d -= hi
    d *= -1.0 / (hi - lo)
    return np.clip(d, 0.0, 1.0, out=d)


def adaptive_mask(in_focus: np.ndarray) -> np.ndarray:
    """The in-focus region at the metric's adaptive threshold, 1.5 x the map's mean."""
    return in_focus >= adaptive_threshold(in_focus)


def overlay_view(frame: np.ndarray, in_focus: np.ndarray, alpha: float, cmap: str) -> np.ndarray:
    """The focus heat map blended onto the frame, weighted by the in-focus probability itself."""
    heat = colorize(in_focus, cmap)
    w = np.clip(in_focus, 0.0, 1.0).astype(np.float32) * np.float32(alpha)
    return cv2.blendLinear(heat, frame, w, 1.0 - w)


def mask_view(frame: np.ndarray, in_focus: np.ndarray) -> np.ndarray:
    """Out-of-focus area dimmed, the in-focus region outlined."""
    region = adaptive_mask(in_focus).astype(np.uint8)
    # Whole-image OpenCV passes: boolean-index assignment took ~28 ms on a 640x480 frame.
    out = cv2.convertScaleAbs(frame, alpha=0.45)
    cv2.copyTo(frame, region, out)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(min(frame.shape[:2]) / 240))
    cv2.drawContours(out, contours, -1, (0, 255, 255), thickness, cv2.LINE_AA)
    return out


def upsample(map_: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (h, w) map to (H, W), bilinear, as float32; returned as is when already that size."""
    if map_.shape[:2] == shape and map_.dtype == np.float32:
        return map_
    return cv2.resize(map_.astype(np.float32, copy=False), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def panel(values: np.ndarray, cmap: str, shape: tuple[int, int]) -> np.ndarray:
    """A map coloured at its own (model) size, then scaled to the frame: a third of the pixels to colour
    for a 640x480 frame, and one uint8 resize instead of a float one."""
    coloured = colorize(values, cmap)
    if coloured.shape[:2] == shape:
        return coloured
    return cv2.resize(coloured, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def render(frame: np.ndarray, in_focus: np.ndarray, depth: np.ndarray, style: OverlayStyle) -> np.ndarray:
    """The chosen view for one frame. The maps may be at the model's size or the frame's."""
    shape = frame.shape[:2]
    if style.view is View.overlay:
        return overlay_view(frame, upsample(in_focus, shape), style.alpha, style.focus_cmap)
    if style.view is View.mask:
        return mask_view(frame, upsample(in_focus, shape))
    panels = [panel(in_focus, style.focus_cmap, shape), panel(depth_display(depth), style.depth_cmap, shape)]
    return np.hstack(panels if style.view is View.maps else [frame, *panels])


def hud_text(fps: float, latency_ms: float, label: str = "") -> str:
    return f"{fps:5.1f} fps  {latency_ms:5.1f} ms" + (f"  {label}" if label else "")


def _hud_font(frame_height: int) -> tuple[float, int]:
    scale = max(0.4, frame_height / 900)
    return scale, max(1, round(scale * 2))


def hud_box(text: str, frame_height: int) -> tuple[int, int]:
    """(width, height) of the HUD's black box on a frame of that height."""
    scale, thick = _hud_font(frame_height)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    return tw + 12, th + base + 12


def draw_hud(image: np.ndarray, fps: float, latency_ms: float, label: str = "", frame_height: int | None = None) -> np.ndarray:
    """fps and latency in the top-left corner, drawn in place, sized for `frame_height` (default:
    the image's own height)."""
    text = hud_text(fps, latency_ms, label)
    scale, thick = _hud_font(frame_height or image.shape[0])
    (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(image, (0, 0), hud_box(text, frame_height or image.shape[0]), (0, 0, 0), -1)
    cv2.putText(image, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image
