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

import cv2
import numpy as np

from runtime.overlay import OverlayStyle, View, colorize, depth_display, draw_hud, hud_box, hud_text, mask_view

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


def overlay(i420: np.ndarray, in_focus: np.ndarray, alpha: float, cmap: str, scratch: Scratch | None = None) -> np.ndarray:
    """The heat map blended onto the frame, weighted by the in-focus probability (as overlay_view).
    With `scratch`, the result lives in its buffer until the next call."""
    scratch = scratch or Scratch()
    mh, mw = in_focus.shape
    coloured = colorize(in_focus, cmap)
    heat = from_bgr(coloured if mh % 2 == 0 and mw % 2 == 0 else cv2.resize(coloured, (mw + mw % 2, mh + mh % 2)))
    weight = np.clip(in_focus, 0.0, 1.0) * np.float32(alpha)
    keep = 1.0 - weight  # at the map's size: cheaper to scale up than to subtract at the frame's
    out = scratch.get("out", i420.shape)
    for i, (frame_plane, heat_plane, out_plane) in enumerate(zip(planes(i420), planes(heat), planes(out))):
        shape, size = frame_plane.shape, (frame_plane.shape[1], frame_plane.shape[0])
        w, k = scratch.get("weight", shape, np.float32), scratch.get("keep", shape, np.float32)
        if i < 2:  # U and V share one set of weights
            cv2.resize(weight, size, dst=w, interpolation=cv2.INTER_LINEAR)
            cv2.resize(keep, size, dst=k, interpolation=cv2.INTER_LINEAR)
        up_heat = cv2.resize(heat_plane, size, dst=scratch.get("heat", shape), interpolation=cv2.INTER_LINEAR)
        cv2.blendLinear(up_heat, frame_plane, w, k, dst=out_plane)
    return out


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
    h, w = frame_size(i420)
    text = hud_text(fps, latency_ms, label)
    bw, bh = hud_box(text, h)
    ph, pw = min(h, bh + bh % 2), min(w, bw + bw % 2)
    corner = np.empty((ph * 3 // 2, pw), np.uint8)
    for src, dst in zip(planes(i420), planes(corner)):
        dst[...] = src[: dst.shape[0], : dst.shape[1]]
    patch = to_bgr(corner)
    draw_hud(patch, fps, latency_ms, label, frame_height=h)
    for src, dst in zip(planes(from_bgr(patch)), planes(i420)):
        dst[: src.shape[0], : src.shape[1]] = src
    return i420
