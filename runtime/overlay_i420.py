"""The views drawn straight on I420 (YUV 4:2:0) frames, the decoder's and the encoder's own layout.

For video files no full-resolution BGR picture is ever made: the maps are coloured at the network's
size, converted to YUV there, and only then scaled up and blended into the frame's planes. At
1080p that is what made the overlay view several times cheaper (README: speed). The pictures are
the BGR views of runtime.overlay converted to YUV, up to rounding and 4:2:0 chroma (a test holds
the two paths within a small tolerance).

An I420 array is (H * 3 / 2, W) uint8: the Y plane (H rows), then U and V (H/2 x W/2 each, stored
as H/4 rows of W). H and W are even.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from runtime.overlay import (
    COLORS,
    OverlayStyle,
    PeakingMode,
    View,
    colorize,
    depth_display,
    draw_hud,
    draw_legend,
    focus_plane_layer,
    hud_box,
    hud_text,
    legend_box,
    mask_view,
    outline_width,
    peak_edges,
    region_contours,
    region_mask,
)

# Widest output a multi-panel view may have: what common players and hardware decoders accept.
MAX_OUTPUT_WIDTH = 3840


def frame_size(i420: np.ndarray) -> tuple[int, int]:
    """(height, width) of the picture an I420 array holds."""
    return i420.shape[0] * 2 // 3, i420.shape[1]


def planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes (no copy; the array must be contiguous). The chroma planes
    start mid-row when H is not a multiple of 4, so they are cut from the flat buffer."""
    h, w = frame_size(i420)
    flat = i420.reshape(-1)
    n = h * w
    return flat[:n].reshape(h, w), flat[n : n * 5 // 4].reshape(h // 2, w // 2), flat[n * 5 // 4 :].reshape(h // 2, w // 2)


def from_bgr(bgr: np.ndarray) -> np.ndarray:
    """BGR (even sides) to I420 (BT.601 limited range, as libswscale's default)."""
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)


def to_bgr(i420: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)


def resize(i420: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Each plane scaled to `size` (height, width; even), into one new I420 array."""
    h, w = size
    out = np.empty((h * 3 // 2, w), np.uint8)
    for src, dst in zip(planes(i420), planes(out)):
        cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=interpolation)
    return out


class Scratch:
    """Buffers reused from frame to frame by one drawing thread. A 1080p overlay needs ~25 MB of
    temporaries; allocated afresh per frame they cost page faults (a tenth of the CPU time there)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...], str], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
        key = (name, shape, np.dtype(dtype).str)
        if key not in self._buffers:
            self._buffers[key] = np.empty(shape, dtype)
        return self._buffers[key]


def yuv(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """A BGR colour's (Y, U, V), as from_bgr converts it."""
    y, u, v = cv2.cvtColor(np.array([[color] * 2] * 2, np.uint8), cv2.COLOR_BGR2YUV_I420).reshape(-1)[[0, 4, 5]]
    return int(y), int(u), int(v)


def blend(i420: np.ndarray, coloured: np.ndarray, weight: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """`coloured` (BGR at the maps' size) blended onto the frame with per-pixel `weight` (same size),
    both scaled up plane by plane. With `scratch`, the result lives in its buffer until the next call."""
    scratch = scratch or Scratch()
    weight = weight.astype(np.float32, copy=False)  # the scratch planes are float32: resize must not reallocate
    mh, mw = weight.shape
    layer = from_bgr(coloured if mh % 2 == 0 and mw % 2 == 0 else cv2.resize(coloured, (mw + mw % 2, mh + mh % 2)))
    keep = 1.0 - weight  # at the map's size: cheaper to scale up than to subtract at the frame's
    out = scratch.get("out", i420.shape)
    for i, (frame_plane, layer_plane, out_plane) in enumerate(zip(planes(i420), planes(layer), planes(out))):
        shape, size = frame_plane.shape, (frame_plane.shape[1], frame_plane.shape[0])
        w, k = scratch.get("weight", shape, np.float32), scratch.get("keep", shape, np.float32)
        if i < 2:  # U and V share one set of weights
            cv2.resize(weight, size, dst=w, interpolation=cv2.INTER_LINEAR)
            cv2.resize(keep, size, dst=k, interpolation=cv2.INTER_LINEAR)
        up = cv2.resize(layer_plane, size, dst=scratch.get("layer", shape), interpolation=cv2.INTER_LINEAR)
        cv2.blendLinear(up, frame_plane, w, k, dst=out_plane)
    return out


def overlay(i420: np.ndarray, in_focus: np.ndarray, alpha: float, cmap: str, scratch: Scratch | None = None) -> np.ndarray:
    """The heat map blended onto the frame, weighted by the in-focus probability (as overlay_view)."""
    return blend(i420, colorize(in_focus, cmap), np.clip(in_focus, 0.0, 1.0) * np.float32(alpha), scratch)


def paint(i420: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> None:
    """Set the pixels of a frame-size 0/1 `mask` to `color`, in place. Chroma follows each 2x2
    block's top-left pixel, as OpenCV's BGR -> I420 (the BGR views' way to the encoder) samples it."""
    hit = mask.astype(bool)
    top_left = hit[0::2, 0::2]
    for plane, value, where in zip(planes(i420), yuv(color), (hit, top_left, top_left)):
        plane[where] = value


def outline(i420: np.ndarray, in_focus: np.ndarray, level: float, color: tuple[int, int, int]) -> None:
    """The region's contour drawn in place, as the BGR views draw it."""
    frame_hw = frame_size(i420)
    lines = np.zeros(frame_hw, np.uint8)
    cv2.drawContours(lines, region_contours(in_focus, level, frame_hw), -1, 1, outline_width(frame_hw))
    paint(i420, lines, color)


def peaking(i420: np.ndarray, in_focus: np.ndarray, level: float, color: str, mode: PeakingMode, mono: bool) -> np.ndarray:
    """peaking_view on I420: the Y plane is the grey frame already, and grey is U = V = 128."""
    frame_hw = frame_size(i420)
    out = i420.copy()
    y, u, v = planes(out)
    if mono:
        u[:] = 128
        v[:] = 128
    region = region_mask(in_focus, level, frame_hw)
    if mode is PeakingMode.fill:
        half = cv2.resize(region, (u.shape[1], u.shape[0]), interpolation=cv2.INTER_NEAREST)
        for plane, value, m in zip((y, u, v), yuv(COLORS[color]), (region, half, half)):
            cv2.copyTo(cv2.convertScaleAbs(plane, alpha=0.55, beta=0.45 * value), m, plane)
        outline(out, in_focus, level, COLORS[color])
        return out
    paint(out, peak_edges(y, region) // 255, COLORS[color])
    return out


def focus_plane(i420: np.ndarray, in_focus: np.ndarray, depth: np.ndarray, level: float, scratch: Scratch | None = None) -> np.ndarray:
    """focus_plane_view on I420: the colour layer made at the maps' size, blended, outlined, legend."""
    colour, weight = focus_plane_layer(in_focus, depth, level)
    out = blend(i420, colour, weight, scratch)
    frame_hw = frame_size(out)
    outline(out, in_focus, level, (255, 255, 255))
    bw, bh = legend_box(frame_hw[0])
    with bgr_region(out, frame_hw[1] - bw, frame_hw[0] - bh, bw, bh) as (corner, _):
        draw_legend(corner, frame_height=frame_hw[0])
    return out


def _even_box(i420: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """The box clipped to the picture and widened to even coordinates (4:2:0 chroma): x0, y0, x1, y1."""
    fh, fw = frame_size(i420)
    return max(0, x) & ~1, max(0, y) & ~1, min(fw, x + w + 1) & ~1, min(fh, y + h + 1) & ~1


def _crop(i420: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    part = np.empty(((y1 - y0) * 3 // 2, x1 - x0), np.uint8)
    for src, dst, s in zip(planes(i420), planes(part), (1, 2, 2)):
        dst[...] = src[y0 // s : y1 // s, x0 // s : x1 // s]
    return part


def crop_bgr(i420: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """A part of the picture as BGR; only that part is converted."""
    x0, y0, x1, y1 = _even_box(i420, x, y, w, h)
    return to_bgr(_crop(i420, x0, y0, x1, y1))[y - y0 : y - y0 + h, x - x0 : x - x0 + w]


@contextmanager
def bgr_region(i420: np.ndarray, x: int, y: int, w: int, h: int) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
    """A part of the picture as BGR to draw on, and the picture coordinates of its top-left corner;
    written back into the planes on exit. The box is clipped to the picture and widened to even
    coordinates (4:2:0 chroma)."""
    x0, y0, x1, y1 = _even_box(i420, x, y, w, h)
    if x1 <= x0 or y1 <= y0:
        yield np.zeros((0, 0, 3), np.uint8), (x0, y0)
        return
    bgr = to_bgr(_crop(i420, x0, y0, x1, y1))
    yield bgr, (x0, y0)
    for src, dst, s in zip(planes(from_bgr(bgr)), planes(i420), (1, 2, 2)):
        dst[y0 // s : y1 // s, x0 // s : x1 // s] = src


def panel_size(frame_hw: tuple[int, int], panels: int, max_width: int = MAX_OUTPUT_WIDTH) -> tuple[int, int]:
    """(height, width) of each panel: the frame's, scaled down so `panels` of them fit `max_width`;
    even sides."""
    h, w = frame_hw
    scale = min(1.0, max_width / (w * panels))
    return max(2, round(h * scale / 2) * 2), max(2, round(w * scale / 2) * 2)


def view_size(view: View, frame_hw: tuple[int, int], max_width: int = MAX_OUTPUT_WIDTH) -> tuple[int, int]:
    """(height, width) of the picture `render` makes for a frame of `frame_hw` (even sides)."""
    if view.panels == 1:
        return frame_hw
    ph, pw = panel_size(frame_hw, view.panels, max_width)
    return ph, pw * view.panels


def _map_panel(values: np.ndarray, cmap: str, size: tuple[int, int]) -> np.ndarray:
    coloured = colorize(values, cmap)
    return from_bgr(cv2.resize(coloured, (size[1], size[0]), interpolation=cv2.INTER_LINEAR))


def _hstack(parts: list[np.ndarray]) -> np.ndarray:
    """I420 pictures of one height side by side (each of even width)."""
    h = frame_size(parts[0])[0]
    out = np.empty((h * 3 // 2, sum(p.shape[1] for p in parts)), np.uint8)
    oy, ou, ov = planes(out)
    x = 0
    for part in parts:
        y, u, v = planes(part)
        pw = y.shape[1]
        oy[:, x : x + pw] = y
        ou[:, x // 2 : (x + pw) // 2] = u
        ov[:, x // 2 : (x + pw) // 2] = v
        x += pw
    return out


def render(i420: np.ndarray, in_focus: np.ndarray, depth: np.ndarray, style: OverlayStyle, max_width: int = MAX_OUTPUT_WIDTH, scratch: Scratch | None = None) -> np.ndarray:
    """The chosen view of one frame as I420. The maps are at the network's size."""
    frame_hw = frame_size(i420)
    if style.view is View.overlay:
        return overlay(i420, in_focus, style.alpha, style.focus_cmap, scratch)
    if style.view is View.peaking:
        return peaking(i420, in_focus, style.threshold.level(in_focus), style.color, style.peaking, style.mono)
    if style.view is View.focus_plane:
        return focus_plane(i420, in_focus, depth, style.threshold.level(in_focus), scratch)
    if style.view is View.mask:  # contours: drawn the BGR way, it is not the view HD speed is about
        bgr = to_bgr(i420)
        return from_bgr(mask_view(bgr, cv2.resize(in_focus, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR)))
    size = panel_size(frame_hw, style.view.panels, max_width)
    maps = [_map_panel(in_focus, style.focus_cmap, size), _map_panel(depth_display(depth), style.depth_cmap, size)]
    if style.view is View.maps:
        return _hstack(maps)
    frame = i420 if size == frame_hw else resize(i420, size, cv2.INTER_AREA)
    return _hstack([frame, *maps])


def draw_hud_i420(i420: np.ndarray, fps: float, latency_ms: float, label: str = "") -> np.ndarray:
    """The HUD drawn in place: the corner it covers is drawn as on BGR views and written back."""
    h = frame_size(i420)[0]
    bw, bh = hud_box(hud_text(fps, latency_ms, label), h)
    with bgr_region(i420, 0, 0, bw, bh) as (corner, _):
        draw_hud(corner, fps, latency_ms, label, frame_height=h)
    return i420
