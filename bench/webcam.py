"""dbd-bench webcam: the live loop's end-to-end fps per view and setting, in one interleaved run.

A camera is stood in for by a 640x480 clip made at 60 fps and played as a camera at that rate
(dbd-rt webcam --device CLIP): frames arrive on a camera's schedule, and the loop shows the newest,
as it would live. Settings are run round-robin, so a busy minute on the machine hits all alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.clips import sample_clip_at
from runtime.backends import Backend
from runtime.camera_job import CameraConfig, open_camera, run_camera
from runtime.focus_assist import AssistConfig
from runtime.overlay import OverlayStyle, View
from runtime.pipeline import VIDEO_IMGSZ, FrameProcessor, Renderer, StageTimes
from runtime.smoothing import SmoothingConfig

CAMERA_FPS = 60


@dataclass(frozen=True)
class LiveSetting:
    view: View
    smooth: float
    assist: bool  # a region of interest (score, graph) and the magnifier

    @property
    def label(self) -> str:
        return f"{self.view.value}, smooth {self.smooth:g}" + (", region + magnifier" if self.assist else "")


def camera_clip(folder: Path) -> Path:
    return sample_clip_at(folder / "camera_640x480_60fps.mp4", 640, 480, seconds=20.0, rate=CAMERA_FPS)


def run_once(clip: Path, backend: Backend, setting: LiveSetting, frames: int, imgsz: int = VIDEO_IMGSZ) -> dict[str, Any]:
    config = CameraConfig(device=str(clip), show=False, max_frames=frames)
    times = StageTimes()
    smoothing = SmoothingConfig(strength=setting.smooth)
    assist = AssistConfig(roi=(200, 150, 240, 180), magnifier=True) if setting.assist else None
    processor = FrameProcessor(backend, times, imgsz, smoothing)
    renderer = Renderer(OverlayStyle(view=setting.view), times, assist)
    cam = open_camera(config)
    t0 = time.perf_counter()
    result = run_camera(cam, config, processor, renderer, smoothing=smoothing)
    seconds = time.perf_counter() - t0
    return {"fps": result.frames / seconds, "stages": times.per_frame(result.frames)}


def measure_live(clip: Path, backend: Backend, settings: list[LiveSetting], frames: int, rounds: int, on_step: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Median fps and stage ms per setting over `rounds` round-robin runs; ratios against the first."""
    runs: dict[LiveSetting, list[dict[str, Any]]] = {s: [] for s in settings}
    for r in range(rounds):
        for s in settings:
            runs[s].append(run_once(clip, backend, s, frames))
            if on_step:
                on_step(f"round {r + 1}/{rounds}: {s.label}: {runs[s][-1]['fps']:.1f} fps")
    rows = []
    for s in settings:
        fps = [x["fps"] for x in runs[s]]
        stages = {k: statistics.median(x["stages"].get(k, 0.0) for x in runs[s]) for k in runs[s][0]["stages"]}
        rows.append({"view": s.view.value, "smooth": s.smooth, "assist": s.assist, "fps": statistics.median(fps), "runs": fps, "stages_ms": stages})
    for row in rows:
        row["ratio"] = row["fps"] / rows[0]["fps"]
    return rows
