"""Speed: the network alone (interleaved across backends) and the full video pipeline."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends import Backend, BackendOptions, infer, open_backend
from runtime.overlay import OverlayStyle, View
from runtime.overlay_i420 import view_size
from runtime.pipeline import VIDEO_IMGSZ, model_size_for, resize_for_model
from runtime.video_io import VideoReader, VideoWriter, probe_video, read_frames
from runtime.video_job import process_video


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
    # The job's stages in pipeline order, with `infer` split into the device's own three where it has them.
    stages = {"decode": raw.get("decode", 0.0), "preprocess": raw.get("preprocess", 0.0), "host_to_device": h2d, "compute": raw.get("infer", 0.0) - h2d - d2h}
    stages |= {"device_to_host": d2h, "postprocess": raw.get("postprocess", 0.0), "overlay": raw.get("overlay", 0.0), "encode": raw.get("encode", 0.0)}
    return stages, sequential.seconds * 1000 / max(1, sequential.frames), threaded.fps


def plumbing_fps(video: Path) -> float:
    """The ceiling of any view on this machine: decode to I420 and encode it again, on the same two
    threads as the video job, with no network and no drawing."""
    import queue
    import threading

    probe = probe_video(video)
    with tempfile.TemporaryDirectory() as tmp:
        reader = VideoReader(probe)
        h, w = view_size(View.overlay, (probe.height + probe.height % 2, probe.width + probe.width % 2))
        writer = VideoWriter(Path(tmp) / "plumbing.mp4", w, h, probe.time_base, probe.rate)
        frames: queue.Queue = queue.Queue(8)

        def encode() -> None:
            while (item := frames.get()) is not None:
                writer.write_i420(*item)

        encoder = threading.Thread(target=encode, daemon=True)
        t0 = time.perf_counter()
        encoder.start()
        count = 0
        try:
            for frame in reader:
                frames.put((frame.i420(), frame.pts))
                count += 1
        finally:  # the encoder is let go and the file closed whatever stopped the reading
            frames.put(None)
            encoder.join()
            reader.close()
        writer.finish()
        seconds = time.perf_counter() - t0
    return count / seconds


def size_sweep(open_video_backend, sizes: list[tuple[int, int]], views: list[View], cfg: FpsConfig, folder: Path, on_step=None) -> list[dict[str, Any]]:
    """Per input size: the plumbing ceiling, then per view the end-to-end fps (threaded, as dbd-rt
    video runs) and the additive stage breakdown (single-threaded pass), on a 10 s clip made from
    the bundled photos at that size."""
    from bench.clips import sample_clip_at

    rows = []
    for w, h in sizes:
        clip = sample_clip_at(folder / f"clip_{w}x{h}.mp4", w, h)
        ceiling = plumbing_fps(clip)
        for view in views:
            if on_step:
                on_step(f"{w}x{h} {view.value}")
            backend, threaded = open_video_backend(sequential=True), open_video_backend(sequential=False)
            try:
                stages, seq_ms, e2e = pipeline_stages(backend, clip, FpsConfig(cfg.warmup, cfg.iters, cfg.imgsz, view), threaded_backend=threaded)
            finally:
                backend.close()
                threaded.close()
            out_h, out_w = view_size(view, (h, w))
            rows.append(
                {
                    "input": f"{w}x{h}",
                    "view": view.value,
                    "output": f"{out_w}x{out_h}",
                    "e2e_fps": e2e,
                    "plumbing_fps": ceiling,
                    "share_of_ceiling": e2e / ceiling,
                    "stages_ms": stages,
                    "stages_total_ms": seq_ms,
                }
            )
    return rows


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


@dataclass(frozen=True)
class FpsPlan:
    """One dbd-bench fps run: which models on which backends, on what clip, measured how."""

    models: list[tuple[Path, str]]  # (model file, backend name); ratios are against the first
    clip: Path
    cfg: FpsConfig
    options: BackendOptions  # frames_in_flight applies to the threaded pipeline only
    pipeline: bool = True
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) for the size sweep
    views: list[View] = field(default_factory=list)


def measure(plan: FpsPlan, folder: Path, on_step: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """The whole run as one JSON-able document: network latency of every backend (interleaved),
    their pipelines, and the size sweep for the first."""
    from bench.machine import machine_info

    single = dataclasses.replace(plan.options, frames_in_flight=1)
    backends: list[Backend] = []
    try:
        for path, name in plan.models:
            backends.append(open_backend(path, name, single))
            on_step(f"measuring {name} ({path.name})")
        probe = probe_video(plan.clip)
        frame = read_frames(plan.clip, count=1)[0]
        rows = []
        for b, lat, (path, name) in zip(backends, network_latency(backends, frame, plan.cfg), plan.models):
            stages = seq_ms = e2e = None
            in_flight = b.in_flight
            if plan.pipeline:
                threaded = open_backend(path, name, plan.options)
                try:
                    stages, seq_ms, e2e = pipeline_stages(b, plan.clip, plan.cfg, threaded_backend=threaded)
                    in_flight = threaded.in_flight
                finally:
                    threaded.close()
            rows.append(result_row(b, lat, stages, seq_ms, e2e, plan.cfg, frame.shape[:2], in_flight))
        sweep = []
        if plan.sizes:
            path, name = plan.models[0]

            def video_backend(sequential: bool) -> Backend:
                return open_backend(path, name, single if sequential else plan.options)

            sweep = size_sweep(video_backend, plan.sizes, plan.views, plan.cfg, folder, on_step=lambda m: on_step(f"sweep: {m}"))
    finally:
        for b in backends:
            b.close()
    for r in rows:
        r["ratio_fps"] = r["fps"] / rows[0]["fps"]
        r["ratio_e2e_fps"] = r["e2e_fps"] / rows[0]["e2e_fps"] if r["e2e_fps"] and rows[0]["e2e_fps"] else None
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "video": {"path": str(plan.clip), "width": probe.width, "height": probe.height, "fps": float(probe.rate), "view": plan.cfg.view.value},
        "results": rows,
        "sizes": sweep,
        "machine": machine_info(),
    }
