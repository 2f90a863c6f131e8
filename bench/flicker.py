"""How steady the maps are over time, and how fast they follow a real focus change.

- flicker: the mean absolute change of the in-focus map from one frame to the next, as it is
  (`raw`) and after carrying the previous map along with the picture by optical flow
  (`compensated`: on a pan the scene moves, and only what changes beyond that motion is flicker);
- lag: on a focus pull between two planes (focus_pull_scene), how many frames after each step the
  near plane's score takes to come within 10 % of the step of where the unsmoothed map puts it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.clips import write_clip
from runtime.backends import Backend
from runtime.chart import Chart
from runtime.focus_assist import Box, roi_score
from runtime.pipeline import VIDEO_IMGSZ, FrameProcessor
from runtime.smoothing import MotionFlow, SmoothingConfig, carry
from runtime.video_io import VideoReader, probe_video

PULL_BLUR = 4.0  # sigma of the defocused plane in the focus-pull clip (pixels at 640x480)
PULL_STEP = 30  # frames per stage: sharp, blurred, sharp


SENSOR_NOISE = 3.0  # grey levels (sigma) of fresh noise in every frame of the generated clips


def noisy(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(frame + rng.normal(0, SENSOR_NOISE, frame.shape), 0, 255).astype(np.uint8)


def static_clip(path: Path, photo: np.ndarray, frames: int = 90) -> Path:
    """A camera that does not move: one photo with fresh sensor noise in every frame."""
    rng = np.random.default_rng(0)
    write_clip(path, (noisy(photo, rng) for _ in range(frames)), rate=Fraction(30), tone_hz=None, crf=20)
    return path


def focus_pull_scene(near: np.ndarray, far: np.ndarray) -> tuple[list[np.ndarray], Box]:
    """Two planes from real photos: a sharp crop of `near` held in front of `far`. A thin lens
    focused on one plane blurs the other; focus is pulled from near to far and back, in steps
    (the hardest case for smoothing), PULL_STEP frames each. Returns the frames and the near plane's
    box (its known mask)."""
    h, w = far.shape[:2]
    bw, bh = w * 2 // 5, h * 2 // 5
    box = (w // 10, h - bh - h // 10, bw, bh)
    ny, nx = (near.shape[0] - bh) // 2, (near.shape[1] - bw) // 2
    patch = near[ny : ny + bh, nx : nx + bw]
    frames = []
    for focus_near in (True, False, True):
        picture = cv2.GaussianBlur(far, (0, 0), PULL_BLUR) if focus_near else far.copy()
        x, y = box[:2]
        picture[y : y + bh, x : x + bw] = patch if focus_near else cv2.GaussianBlur(patch, (0, 0), PULL_BLUR)
        frames += [picture] * PULL_STEP
    return frames, box


def focus_pull_clip(path: Path, near: np.ndarray, far: np.ndarray) -> tuple[Path, Box]:
    """The focus pull as a clip, with sensor noise, so flicker and following show together."""
    frames, box = focus_pull_scene(near, far)
    rng = np.random.default_rng(1)
    write_clip(path, (noisy(f, rng) for f in frames), rate=Fraction(30), tone_hz=None, crf=20)
    return path, box


def map_sequence(clip: Path, backend: Backend, smoothing: SmoothingConfig | None, imgsz: int = VIDEO_IMGSZ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The in-focus maps of every frame (network size), and the network input frames in grey."""
    processor = FrameProcessor(backend, imgsz=imgsz, smoothing=smoothing)
    maps, greys = [], []
    reader = VideoReader(probe_video(clip))
    try:
        for frame in reader:
            result = processor.process(frame.bgr())
            maps.append(result.in_focus_model)
            h, w = result.in_focus_model.shape
            greys.append(cv2.cvtColor(frame.resized_bgr(h, w), cv2.COLOR_BGR2GRAY))
    finally:
        reader.close()
    return maps, greys


def flicker(maps: list[np.ndarray], greys: list[np.ndarray]) -> dict[str, float]:
    """Mean absolute frame-to-frame change of the maps, as is and motion-compensated; scene cuts
    (found as the smoother finds them) are left out: there the map should change."""
    motion = MotionFlow()
    raw, compensated, cuts = [], [], 0
    for t in range(1, len(maps)):
        step = motion.estimate(greys[t - 1], greys[t])
        if step.mismatch > SmoothingConfig().cut:
            cuts += 1
            continue
        raw.append(float(np.abs(maps[t] - maps[t - 1]).mean()))
        compensated.append(float(np.abs(maps[t] - carry(maps[t - 1], step.sampling)).mean()))
    return {"raw": float(np.mean(raw)), "compensated": float(np.mean(compensated)), "cuts": cuts}


def plane_scores(maps: list[np.ndarray], box: Box, frame_hw: tuple[int, int]) -> np.ndarray:
    """Mean in-focus probability of the near plane in every frame."""
    return np.array([roi_score(m, box, frame_hw) for m in maps])


def lag_frames(smoothed: np.ndarray, unsmoothed: np.ndarray) -> list[int]:
    """Frames after each focus step until the smoothed score is within 10 % of the step of the
    unsmoothed one."""
    a, b = smoothed, unsmoothed
    lags = []
    for step in (PULL_STEP, 2 * PULL_STEP):
        size = abs(b[step] - b[step - 1]) or 1e-6
        lags.append(next((i for i in range(PULL_STEP) if abs(a[step + i] - b[step + i]) <= 0.1 * size), PULL_STEP))
    return lags


def measure(
    backend: Backend, clips: dict[str, Path], pull: tuple[Path, Box], smoothing: SmoothingConfig, imgsz: int = VIDEO_IMGSZ
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Rows per clip and setting (off, then on): flicker raw and compensated; on the focus pull the
    near plane's score in each stage (median) and the lag after each step. Also the near plane's
    score per frame of the pull, per setting."""
    rows = []
    settings = (("off", None), (f"on ({smoothing.strength:g})", smoothing))
    for label, setting in settings:
        for name, clip in clips.items():
            maps, greys = map_sequence(clip, backend, setting, imgsz)
            rows.append({"clip": name, "smoothing": label, **flicker(maps, greys)})
    clip, box = pull
    hw = probe_video(clip)
    scores = {label: plane_scores(map_sequence(clip, backend, setting, imgsz)[0], box, (hw.height, hw.width)) for label, setting in settings}
    plain = scores["off"]
    for label, s in scores.items():
        stages = [round(float(np.median(s[i * PULL_STEP : (i + 1) * PULL_STEP])), 3) for i in range(3)]
        rows.append({"clip": "focus pull", "smoothing": label, "near_plane_score": stages, **flicker_of(s), "lag_frames": lag_frames(s, plain)})
    return rows, scores


def pull_chart(scores: dict[str, np.ndarray], rate: float = 30.0) -> np.ndarray:
    """The near plane's score over the focus pull, per setting; the focus steps marked."""
    n = len(next(iter(scores.values())))
    chart = Chart((n - 1) / rate)
    for step in (PULL_STEP, 2 * PULL_STEP):
        chart.span((step - 0.5) / rate, (step + 0.5) / rate, (225, 225, 225))
    colours = [(0, 140, 255), (200, 90, 0)]
    for (label, s), colour in zip(scores.items(), colours):
        chart.line(np.arange(n) / rate, s, colour, 2 if label == "off" else 1)
    return chart.legend([(f"near-plane score, smoothing {label}", c) for label, c in zip(scores, colours)] + [("focus step", (200, 200, 200))])


def flicker_of(scores: np.ndarray) -> dict[str, float]:
    """Frame-to-frame change of the near plane's score inside each stage (the steps excluded)."""
    inside = [abs(scores[t] - scores[t - 1]) for t in range(1, len(scores)) if t % PULL_STEP]
    return {"score_flicker": round(float(np.mean(inside)), 5)}
