"""Drawing the maps: colour maps, the views and the HUD. Pure numpy/OpenCV on BGR uint8."""

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


# Peaking colours by name (BGR), the ones camera monitors offer.
COLORS = {
    "red": (40, 40, 255),
    "green": (60, 230, 60),
    "yellow": (0, 230, 255),
    "blue": (255, 140, 30),
    "cyan": (255, 230, 0),
    "magenta": (255, 60, 255),
    "white": (255, 255, 255),
}
# Focus-plane colours: warm for nearer than the focal plane, cool for farther (BGR).
NEARER, FARTHER = (0, 150, 255), (255, 120, 20)


class View(str, Enum):
    overlay = "overlay"
    side_by_side = "side-by-side"
    maps = "maps"
    mask = "mask"
    peaking = "peaking"
    focus_plane = "focus-plane"

    @property
    def panels(self) -> int:
        """How many frame-sized panels wide the view is."""
        return {View.side_by_side: 3, View.maps: 2}.get(self, 1)

    @property
    def shows_depth(self) -> bool:
        return self in (View.side_by_side, View.maps, View.focus_plane)

    @property
    def frame_sized(self) -> bool:
        """Drawn at the frame's size from the frame-size in-focus map (the others colour the small map)."""
        return self in (View.overlay, View.mask)

    def next(self) -> View:
        members = list(View)
        return members[(members.index(self) + 1) % len(members)]


class PeakingMode(str, Enum):
    fill = "fill"  # the in-focus region tinted: shows flat sharp areas edge peaking cannot
    edges = "edges"  # the frame's own edges, only inside the in-focus region: classic peaking without blurred false edges


@dataclass(frozen=True)
class FocusThreshold:
    """Where "in focus" starts: a probability, or (`top_percent`) the sharpest `value` % of the frame."""

    value: float = 0.5
    top_percent: bool = False

    @classmethod
    def parse(cls, text: str) -> FocusThreshold:
        """ "0.5" (probability) or "20%" (the sharpest fifth); ValueError otherwise."""
        text = text.strip()
        percent = text.endswith("%")
        value = float(text[:-1] if percent else text)
        if not (0 < value < 100 if percent else 0 <= value <= 1):
            raise ValueError(f"threshold {text!r} is out of range: a probability in [0, 1] or a share like 20%")
        return cls(value, percent)

    def level(self, in_focus: np.ndarray) -> float:
        """The probability cut for this map (the map may be at any size; the network's is cheapest)."""
        if not self.top_percent:
            return self.value
        step = max(1, int(np.sqrt(in_focus.size / 40_000)))  # a frame-size map: a sample gives the same cut
        return float(np.percentile(in_focus[::step, ::step], 100.0 - self.value))

    def nudged(self, up: bool) -> FocusThreshold:
        """One step stricter (`up`) or looser: 0.05 of probability or 5 points of share."""
        if self.top_percent:
            return FocusThreshold(min(95.0, max(5.0, self.value + (-5.0 if up else 5.0))), True)
        return FocusThreshold(round(min(0.95, max(0.05, self.value + (0.05 if up else -0.05))), 2))

    def __str__(self) -> str:
        return f"top {self.value:g}%" if self.top_percent else f"p>={self.value:g}"


@dataclass(frozen=True)
class OverlayStyle:
    view: View = View.overlay
    alpha: float = 0.5
    focus_cmap: str = "inferno"
    depth_cmap: str = "viridis"
    hud: bool = True
    color: str = "red"  # peaking colour, a name in COLORS
    threshold: FocusThreshold = FocusThreshold()  # the in-focus region of the peaking and focus-plane views
    peaking: PeakingMode = PeakingMode.fill
    mono: bool = True  # peaking over a greyscale frame, as camera monitors do


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


def region_mask(in_focus: np.ndarray, level: float, frame_hw: tuple[int, int]) -> np.ndarray:
    """The in-focus region (probability >= `level`) at the frame's size, 0/1 uint8: thresholded at the
    map's size, then scaled (a uint8 resize, cheaper than scaling the float map)."""
    small = (in_focus >= level).astype(np.uint8) * 255
    if small.shape == frame_hw:
        return small // 255
    return (cv2.resize(small, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR) >= 128).astype(np.uint8)


def region_contours(in_focus: np.ndarray, level: float, frame_hw: tuple[int, int]) -> list[np.ndarray]:
    """The in-focus region's outline in frame pixels, traced at the map's size (a tenth of the points
    of tracing the frame-size mask) and scaled."""
    contours, _ = cv2.findContours((in_focus >= level).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    scale = np.array([frame_hw[1] / in_focus.shape[1], frame_hw[0] / in_focus.shape[0]], np.float32)
    return [np.round((c.astype(np.float32) + 0.5) * scale - 0.5).astype(np.int32) for c in contours]


def outline_width(frame_hw: tuple[int, int]) -> int:
    return max(1, round(min(frame_hw) / 300))


def _outline(image: np.ndarray, in_focus: np.ndarray, level: float, color: tuple[int, int, int]) -> None:
    # Hard lines, as the I420 drawing paints them: the two paths stay alike.
    cv2.drawContours(image, region_contours(in_focus, level, image.shape[:2]), -1, color, outline_width(image.shape[:2]))


def tint(image: np.ndarray, color: tuple[int, int, int], amount: float = 0.45) -> np.ndarray:
    """The picture mixed with a flat colour, in one pass."""
    m = np.zeros((3, 4), np.float32)
    np.fill_diagonal(m, 1.0 - amount)
    m[:, 3] = np.array(color, np.float32) * amount
    return cv2.transform(image, m)


def peaking_view(frame: np.ndarray, in_focus: np.ndarray, level: float, color: str, mode: PeakingMode = PeakingMode.fill, mono: bool = True) -> np.ndarray:
    """Focus peaking from the map (any size): the in-focus region (probability >= `level`) tinted and
    outlined, or the frame's edges inside it, in `color`, over a grey (or the colour) frame."""
    bgr = COLORS[color]
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    out = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR) if mono else frame.copy()
    if mode is PeakingMode.fill:
        cv2.copyTo(tint(out, bgr), region_mask(in_focus, level, frame.shape[:2]), out)
        _outline(out, in_focus, level, bgr)
        return out
    out[peak_edges(grey, region_mask(in_focus, level, frame.shape[:2])) > 0] = bgr
    return out


def peak_edges(grey: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The frame's strong edges inside `region` (0/1 uint8), as a 0/255 mask. Canny's thresholds follow
    the frame's median brightness, so dim and bright scenes both peak; lines thicken with resolution."""
    low = float(np.clip(np.median(grey[::4, ::4]), 40.0, 120.0))
    edges = cv2.Canny(grey, low, 2 * low)
    edges = cv2.bitwise_and(edges, edges, mask=region)
    width = round(min(grey.shape) / 720)
    return cv2.dilate(edges, np.ones((width + 1, width + 1), np.uint8)) if width > 0 else edges


def focal_plane(in_focus: np.ndarray, depth: np.ndarray, level: float) -> float:
    """Median depth of the in-focus region; of the sharpest twentieth when nothing reaches `level`."""
    region = in_focus >= level
    if not region.any():
        region = in_focus >= np.percentile(in_focus, 95)
    return float(np.median(depth[region]))


def focus_plane_layer(in_focus: np.ndarray, depth: np.ndarray, level: float, alpha: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """At the maps' size: the colour (nearer or farther than the focal plane) and its blend weight,
    which grows with how far out of focus and how far from the plane (in the map's own depth range) a
    pixel is."""
    plane = focal_plane(in_focus, depth, level)
    lo, hi = np.percentile(depth[::2, ::2], (2, 98))
    offset = np.subtract(depth, plane, dtype=np.float32)  # depth 0 is near: negative = nearer
    nearer = (offset < 0).astype(np.uint8)
    colour = cv2.LUT(cv2.cvtColor(nearer, cv2.COLOR_GRAY2BGR), _SIDE_COLOURS)
    weight = np.abs(offset, out=offset)
    weight *= 4.0 / max(float(hi - lo), 1e-6)
    np.minimum(weight, 1.0, out=weight)
    weight *= 1.0 - np.clip(in_focus, 0.0, 1.0)
    weight *= alpha
    return colour, weight


_SIDE_COLOURS = np.zeros((1, 256, 3), np.uint8)  # a lookup: 0 -> farther's colour, 1 -> nearer's
_SIDE_COLOURS[0, 0], _SIDE_COLOURS[0, 1] = FARTHER, NEARER

LEGEND_LINES: tuple[tuple[str, tuple[int, int, int] | None], ...] = (("nearer than focus", NEARER), ("farther than focus", FARTHER), ("(relative depth)", None))


def _legend_layout(frame_height: int) -> tuple[float, int, int, int, int, int]:
    scale, thick = _hud_font(frame_height)
    scale *= 0.8
    (tw, th), base = cv2.getTextSize(max((t for t, _ in LEGEND_LINES), key=len), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    row = th + base + 6
    return scale, thick, th, row, tw + th + 22, row * len(LEGEND_LINES) + 8


def legend_box(frame_height: int) -> tuple[int, int]:
    """(width, height) of the focus-plane legend on a frame of that height."""
    return _legend_layout(frame_height)[4:]


def draw_legend(image: np.ndarray, frame_height: int | None = None) -> np.ndarray:
    """The focus-plane legend in the bottom-right corner, in place, sized for `frame_height`."""
    scale, thick, th, row, box_w, box_h = _legend_layout(frame_height or image.shape[0])
    lines = LEGEND_LINES
    h, w = image.shape[:2]
    x0, y0 = max(0, w - box_w), max(0, h - box_h)
    cv2.rectangle(image, (x0, y0), (w, h), (0, 0, 0), -1)
    for i, (text, colour) in enumerate(lines):
        y = y0 + 4 + row * i
        if colour is not None:
            cv2.rectangle(image, (x0 + 6, y + 3), (x0 + 6 + th, y + 3 + th), colour, -1)
        cv2.putText(image, text, (x0 + th + 14, y + th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image


def focus_plane_view(frame: np.ndarray, in_focus: np.ndarray, depth: np.ndarray, level: float, legend: bool = True) -> np.ndarray:
    """Out-of-focus regions coloured by which side of the focal plane they lie (maps at any size)."""
    shape = frame.shape[:2]
    colour, weight = focus_plane_layer(in_focus, depth, level)
    if colour.shape[:2] != shape:
        colour = cv2.resize(colour, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        weight = upsample(weight, shape)
    out = cv2.blendLinear(colour, frame, weight, 1.0 - weight)
    _outline(out, in_focus, level, (255, 255, 255))
    return draw_legend(out) if legend else out


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
    if style.view is View.peaking:
        return peaking_view(frame, in_focus, style.threshold.level(in_focus), style.color, style.peaking, style.mono)
    if style.view is View.focus_plane:
        return focus_plane_view(frame, in_focus, depth, style.threshold.level(in_focus))
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


def draw_help(image: np.ndarray, keys: tuple[tuple[str, str], ...]) -> np.ndarray:
    """The key list over a darkened picture, in place."""
    image[...] = cv2.convertScaleAbs(image, alpha=0.35)
    scale, thick = _hud_font(image.shape[0])
    scale = min(scale, image.shape[0] / (len(keys) + 2) / 30)
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    row = th + base + 4
    key_w = max(cv2.getTextSize(k, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for k, _ in keys)
    for i, (key, action) in enumerate(keys):
        y = row * (i + 1) + 4
        cv2.putText(image, key, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 230, 255), thick, cv2.LINE_AA)
        cv2.putText(image, action, (24 + key_w, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image
