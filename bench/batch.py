"""dbd-bench batch: how dbd-rt batch scales with workers, and what Ray costs over local workers."""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2

from bench.clips import ken_burns, write_clip
from runtime.backends.onnxruntime_backend import default_threads
from runtime.batch_job import BatchOptions, collect_inputs, run_local, run_on_ray
from runtime.model_info import DEFAULT_MODEL, SAMPLE_CLIP
from runtime.overlay import OverlayStyle
from runtime.video_io import read_frames


def make_inputs(folder: Path, clips: int, photos: int) -> Path:
    """`clips` 2-second 640x480 clips and `photos` 640x480 photos, from the bundled photos."""
    sources = read_frames(SAMPLE_CLIP, indices=(30, 90, 150))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(clips):
        write_clip(folder / f"clip{i:03d}.mp4", ken_burns(sources[i % 3], 640, 480, 60, zoom=1.05 + 0.01 * (i % 5)), rate=Fraction(30), tone_hz=None)
    for i in range(photos):
        frame = next(ken_burns(sources[i % 3], 640, 480, 1, zoom=1.0 + 0.02 * (i % 10)))
        cv2.imwrite(str(folder / f"photo{i:03d}.jpg"), frame)
    return folder


def batch_throughput(folder: Path, clips: int, photos: int, worker_counts: list[int], ray: bool, video: bool, on_step: Callable[[str], None]) -> list[dict[str, Any]]:
    inputs = make_inputs(folder / "inputs", clips, photos)
    items, _ = collect_inputs([inputs])
    cores = default_threads()
    runs = [("local", w) for w in worker_counts] + ([("ray", max(worker_counts))] if ray else [])
    rows = []
    for runner, workers in runs:
        options = BatchOptions(model=str(DEFAULT_MODEL), threads=max(1, cores // workers), style=OverlayStyle(hud=False), write_video=video)
        out = folder / f"out-{runner}-{workers}"
        on_step(f"{runner} with {workers} worker{'s' if workers > 1 else ''}")
        t0 = time.perf_counter()
        run = run_on_ray(items, options, out, "bench", workers, "local", 0.0) if runner == "ray" else run_local(items, options, out, "bench", workers)
        results = list(run)
        seconds = time.perf_counter() - t0
        frames = sum(r.frames for r in results if r.status == "done")
        rows.append(
            {
                "runner": runner,
                "workers": workers,
                "seconds": seconds,
                "frames_per_s": frames / seconds,
                "files_per_min": len(results) / seconds * 60,
                "failed": sum(r.status == "failed" for r in results),
            }
        )
    for r in rows:
        r["ratio"] = r["frames_per_s"] / rows[0]["frames_per_s"]
    return rows
