"""Speed: the network alone (interleaved across backends) and the full video pipeline."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends import Backend, infer
from runtime.overlay import OverlayStyle, View
from runtime.pipeline import VIDEO_IMGSZ, model_size_for, resize_for_model
from runtime.video_io import probe_video
from runtime.video_job import process_video

# Per-frame stages in pipeline order; host<->device copies are 0 where the backend runs on the CPU.
STAGE_KEYS = ("decode", "preprocess", "host_to_device", "compute", "device_to_host", "postprocess", "overlay", "encode")


@dataclass(frozen=True)
class FpsConfig:
    warmup: int = 20
    iters: int = 100
    imgsz: int = VIDEO_IMGSZ  # short side for a dynamic model, as `dbd-rt video` uses
    view: View = View.side_by_side


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def network_latency(backends: list[Backend], frame: np.ndarray, cfg: FpsConfig) -> list[list[float]]:
    """Per-call latency (ms) of each backend on the same resized frame, calls interleaved round-robin
    so that machine noise hits every backend alike."""
    batches = [resize_for_model(frame, model_size_for(frame.shape[:2], b, cfg.imgsz))[None] for b in backends]
    for _ in range(cfg.warmup):
        for b, x in zip(backends, batches):
            infer(b, x)
    samples: list[list[float]] = [[] for _ in backends]
    for _ in range(cfg.iters):
        for i, (b, x) in enumerate(zip(backends, batches)):
            t0 = time.perf_counter()
            infer(b, x)
            samples[i].append((time.perf_counter() - t0) * 1000)
    return samples


def pipeline_stages(backend: Backend, video: Path, cfg: FpsConfig, threaded_backend: Backend | None = None) -> tuple[dict[str, float], float, float]:
    """(additive per-stage ms from a single-threaded pass, its total ms per frame, threaded e2e fps).

    `threaded_backend` (default: `backend`) runs the threaded pass, as `dbd-rt video` would set it up
    (several frames in flight); the single-threaded pass keeps one frame at a time so stages add up.
    """
    probe = probe_video(video)
    style = OverlayStyle(view=cfg.view)
    with tempfile.TemporaryDirectory() as tmp:
        sequential = process_video(probe, Path(tmp) / "seq.mp4", backend, style, threaded=False, imgsz=cfg.imgsz)
        threaded = process_video(probe, Path(tmp) / "thr.mp4", threaded_backend or backend, style, threaded=True, imgsz=cfg.imgsz)
    raw = sequential.stages_ms
    # A GPU backend that times its own copies (CUDA events) splits `infer`; on the CPU there are no copies.
    split = backend.stage_ms()
    h2d, d2h = split.get("host_to_device", 0.0), split.get("device_to_host", 0.0)
    stages = {
        "decode": raw.get("decode", 0.0),
        "preprocess": raw.get("preprocess", 0.0),
        "host_to_device": h2d,
        "compute": raw.get("infer", 0.0) - h2d - d2h,
        "device_to_host": d2h,
        "postprocess": raw.get("postprocess", 0.0),
        "overlay": raw.get("overlay", 0.0),
        "encode": raw.get("encode", 0.0),
    }
    return stages, sequential.seconds * 1000 / max(1, sequential.frames), threaded.fps


def result_row(
    backend: Backend,
    latency_ms: list[float],
    stages: dict[str, float] | None,
    seq_ms: float | None,
    e2e_fps: float | None,
    cfg: FpsConfig,
    frame_shape: tuple[int, int],
    frames_in_flight: int = 1,
) -> dict[str, Any]:
    size = model_size_for(frame_shape, backend, cfg.imgsz)
    pct = percentiles(latency_ms)
    return {
        "backend": backend.name,
        "device": backend.device,
        "precision": backend.precision,
        "imgsz": f"{size[0]}x{size[1]}",
        "warmup": cfg.warmup,
        "iters": cfg.iters,
        "fps": 1000.0 / pct["mean"],
        "latency_ms": {k: pct[k] for k in ("p50", "p90", "p99")},
        "stages_ms": stages,
        "stages_total_ms": seq_ms,
        "e2e_fps": e2e_fps,
        "frames_in_flight": frames_in_flight,
    }
