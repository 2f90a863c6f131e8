"""`dbd-rt`: live in-focus and depth maps for videos, cameras and photos."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from runtime.backends import Backend, BackendError, BackendOptions, open_backend
from runtime.console import EXIT_BAD_INPUT, EXIT_INTERRUPTED, err, error, fail, note, say, warn
from runtime.datasets import IMAGE_SUFFIXES
from runtime.metrics import focus_png
from runtime.model_info import ModelError
from runtime.overlay import COLORMAPS, OverlayStyle, View
from runtime.pipeline import PHOTO_IMGSZ, VIDEO_IMGSZ, FrameProcessor, Renderer, StageTimes
from runtime.video_io import DEFAULT_PRESET, X264_PRESETS, VideoError, VideoWriter, probe_video
from runtime.video_job import process_video

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Real-time defocus blur detection: what is in focus, and how deep the scene is.")


class BackendName(str, Enum):
    auto = "auto"
    onnxruntime = "onnxruntime"
    tensorrt = "tensorrt"
    torch = "torch"


Cmap = Enum("Cmap", {c: c for c in COLORMAPS}, type=str)  # type: ignore[misc]

MODEL_OPT = typer.Option(
    None, "--model", "-m", help="An .onnx model, an .engine (TensorRT) or a .pt checkpoint (torch). Default: the embedded model (for tensorrt: an engine built from it on first use and cached)."
)
BACKEND_OPT = typer.Option(BackendName.auto, help="Inference backend; auto = TensorRT for .engine, torch for .pt, else ONNX Runtime.")
GPU_OPT = typer.Option(0, min=0, help="CUDA device index for tensorrt, torch and ONNX Runtime's GPU providers.")
THREADS_OPT = typer.Option(0, help="CPU threads for inference (0 = all cores this process may use).")
IN_FLIGHT_OPT = typer.Option(
    0, min=0, help="Frames ONNX Runtime infers at once, sharing the threads (0 = auto: 2 on a CPU with 2+ threads; more fps, one frame more latency)."
)
VIDEO_IMGSZ_OPT = typer.Option(
    VIDEO_IMGSZ, min=32, help="Short side of the network input, rounded to a multiple of 32 (a static model uses its own size); larger is more accurate and slower."
)
VIEW_OPT = typer.Option(View.overlay, help="overlay, side-by-side (frame | in-focus | depth), maps, or mask (in-focus contour).")
ALPHA_OPT = typer.Option(0.5, min=0.0, max=1.0, help="Opacity of the heat map in the overlay view.")
FOCUS_CMAP_OPT = typer.Option("inferno", help="Colour map of the in-focus map.")
DEPTH_CMAP_OPT = typer.Option("viridis", help="Colour map of the depth map (near is bright).")
HUD_OPT = typer.Option(True, "--hud/--no-hud", help="Draw fps and latency on the picture.")
JSON_OPT = typer.Option(False, "--json", help="Print the summary as one JSON document on stdout.")
REBUILD_OPT = typer.Option(False, "--rebuild", help="Rebuild a TensorRT engine that was built for another GPU or TensorRT version.")


@dataclass(frozen=True)
class Session:
    backend: Backend
    style: OverlayStyle


def open_session(model: Optional[Path], backend: BackendName, options: BackendOptions, style: OverlayStyle) -> Session:
    try:
        be = open_backend(model, backend.value, options)
    except (ModelError, BackendError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    size = "dynamic" if be.input_size is None else f"{be.input_size[0]}x{be.input_size[1]}"
    say(f"backend: {be.name} ({be.describe()}) model: {be.info.path.name} [{size}]")
    return Session(be, style)


def make_style(view: View, alpha: float, focus_cmap: Any, depth_cmap: Any, hud: bool) -> OverlayStyle:
    return OverlayStyle(view=view, alpha=alpha, focus_cmap=_value(focus_cmap), depth_cmap=_value(depth_cmap), hud=hud)


def _value(x: Any) -> str:
    return x.value if isinstance(x, Enum) else str(x)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output_path(out: Path, inputs: list[Path]) -> None:
    """Refuse, before any work, an output that is an input or sits in a missing folder."""
    for i in inputs:
        if _same_file(i, out):
            raise fail(f"{out}: the output would overwrite the input; choose another --out")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise fail(f"{out}: the output folder {parent} does not exist")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def format_stages(stages: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in stages.items())


def summary_line(frames: int, seconds: float, stages: dict[str, float]) -> str:
    fps = frames / seconds if seconds > 0 else 0.0
    return f"{frames} frames in {seconds:.1f} s: {fps:.1f} fps end to end; mean ms per frame: {format_stages(stages)}"


@app.command()
def video(
    source: Path = typer.Argument(..., help="Input video file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output video (.mp4, H.264; written to a temporary name and renamed when complete)."),
    model: Optional[Path] = MODEL_OPT,
    backend: BackendName = BACKEND_OPT,
    threads: int = THREADS_OPT,
    frames_in_flight: int = IN_FLIGHT_OPT,
    imgsz: int = VIDEO_IMGSZ_OPT,
    view: View = VIEW_OPT,
    alpha: float = ALPHA_OPT,
    focus_cmap: Cmap = FOCUS_CMAP_OPT,  # type: ignore[valid-type]
    depth_cmap: Cmap = DEPTH_CMAP_OPT,  # type: ignore[valid-type]
    hud: bool = HUD_OPT,
    gpu: int = GPU_OPT,
    rebuild: bool = REBUILD_OPT,
    preset: str = typer.Option(DEFAULT_PRESET, help=f"x264 speed preset ({', '.join(X264_PRESETS)}): faster presets leave more CPU to the network."),
    json_out: bool = JSON_OPT,
) -> None:
    """Process every frame of a video and write the chosen view, with the input's audio."""
    if preset not in X264_PRESETS:
        raise fail(f"unknown x264 preset {preset!r}; choose one of {', '.join(X264_PRESETS)}")
    try:
        probe = probe_video(source)
    except VideoError as exc:
        raise fail(str(exc)) from None
    check_output_path(out, [source])
    if probe.rate_fallback:
        warn(f"{source}: the container reports no usable frame rate; using {float(probe.rate):g} fps")
    options = BackendOptions(threads=threads, frames_in_flight=frames_in_flight, gpu=gpu, rebuild=rebuild)
    session = open_session(model, backend, options, make_style(view, alpha, focus_cmap, depth_cmap, hud))
    summary = run_video(probe, out, session, preset, imgsz)
    if json_out:
        print(json.dumps(summary))
    if summary["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)


def run_video(probe: Any, out: Path, session: Session, preset: str, imgsz: int = VIDEO_IMGSZ) -> dict[str, Any]:
    """The video job with a progress bar and a printed summary."""
    try:
        with _progress() as progress:
            task = progress.add_task(probe.path.name, total=probe.frames or None, fps=0.0)

            def tick(frames: int, fps: float) -> None:
                progress.update(task, completed=frames, fps=fps)

            def announce(message: str) -> None:
                note(message)

            result = process_video(probe, out, session.backend, session.style, on_frame=tick, on_note=announce, preset=preset, imgsz=imgsz)
            progress.update(task, completed=result.frames, total=result.frames)
    except VideoError as exc:
        raise fail(str(exc)) from None
    finally:
        session.backend.close()
    if result.interrupted:
        warn(f"interrupted: finished {result.output} cleanly with the {result.frames} frames done so far")
    say(summary_line(result.frames, result.seconds, result.stages_ms))
    say(
        f"wrote {result.output} ({result.codec}, {result.rate:g} fps, {result.width}x{result.height}{', audio copied' if result.audio else ''}; network input {result.input_size})"
    )
    return result.as_dict()


def _camera_source(device: str) -> int | str:
    return int(device) if device.isdigit() else device


@app.command()
def webcam(
    device: str = typer.Option("0", help="Camera index (0) or device path (/dev/video0)."),
    width: int = typer.Option(0, help="Requested capture width (0 = camera default)."),
    height: int = typer.Option(0, help="Requested capture height (0 = camera default)."),
    fps: float = typer.Option(0.0, help="Requested capture frame rate (0 = camera default)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also record the view to this .mp4."),
    show: bool = typer.Option(True, "--show/--no-show", help="Show a window; --no-show runs headless."),
    max_frames: int = typer.Option(0, help="Stop after this many frames (0 = until q/Esc or Ctrl-C)."),
    snapshot_dir: Path = typer.Option(Path("."), help="Where the s key saves snapshots."),
    model: Optional[Path] = MODEL_OPT,
    backend: BackendName = BACKEND_OPT,
    threads: int = THREADS_OPT,
    frames_in_flight: int = IN_FLIGHT_OPT,
    imgsz: int = VIDEO_IMGSZ_OPT,
    view: View = VIEW_OPT,
    alpha: float = ALPHA_OPT,
    focus_cmap: Cmap = FOCUS_CMAP_OPT,  # type: ignore[valid-type]
    depth_cmap: Cmap = DEPTH_CMAP_OPT,  # type: ignore[valid-type]
    hud: bool = HUD_OPT,
    gpu: int = GPU_OPT,
    rebuild: bool = REBUILD_OPT,
) -> None:
    """Live view of a camera. Keys: q/Esc quit, v next view, space pause, s snapshot."""
    from dataclasses import replace

    from runtime.capture import LatestFrameCapture

    src = _camera_source(device)
    cam = cv2.VideoCapture(src)
    if not cam.isOpened():
        raise fail(f"cannot open camera {device}" + (f" (/dev/video{device})" if isinstance(src, int) else ""))
    for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height), (cv2.CAP_PROP_FPS, fps)):
        if value:
            cam.set(prop, value)
    if out is not None:
        check_output_path(out, [])
    options = BackendOptions(threads=threads, frames_in_flight=frames_in_flight, gpu=gpu, rebuild=rebuild)
    session = open_session(model, backend, options, make_style(view, alpha, focus_cmap, depth_cmap, hud))
    times = StageTimes()
    processor = FrameProcessor(session.backend, times, imgsz)
    renderer = Renderer(session.style, times)
    capture = LatestFrameCapture(cam).start()
    writer: VideoWriter | None = None
    frames, paused, last = 0, False, None
    rate = cam.get(cv2.CAP_PROP_FPS) or 30.0
    try:
        while not max_frames or frames < max_frames:
            if not paused:
                frame = capture.latest()
                if frame is None:
                    raise fail(f"camera {device} stopped delivering frames")
                # With two frames in flight a push returns the previous frame's result (or none yet).
                for result in processor.push(frame):
                    image = renderer(result, session.style.view.value)
                    last = image
                    if out is not None:
                        if writer is None:
                            writer = VideoWriter(out, Fraction(rate).limit_denominator(1001), image.shape[1], image.shape[0])
                        if image.shape[:2] != (writer.height, writer.width):  # the view changed (v): keep the file's size
                            image = cv2.resize(image, (writer.width, writer.height), interpolation=cv2.INTER_AREA)
                        writer.write(image)
                    frames += 1
            if show and last is not None:
                cv2.imshow("dbd-rt", last)
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27):
                    break
                if key == ord("v"):
                    renderer.style = replace(renderer.style, view=renderer.style.view.next())
                elif key == ord(" "):
                    paused = not paused
                elif key == ord("s") and last is not None:
                    snap = snapshot_dir / f"dbd-rt-{time.strftime('%Y%m%d-%H%M%S')}-{frames:05d}.png"
                    cv2.imwrite(str(snap), last)
                    say(f"saved {snap}")
    except KeyboardInterrupt:
        warn("interrupted")
    finally:
        capture.stop()
        if show:
            cv2.destroyAllWindows()
        if writer is not None:
            say(f"recorded {writer.finish()}")
        session.backend.close()
    say(f"{frames} frames shown, {capture.dropped} stale camera frames skipped; mean ms: " + format_stages(times.per_frame(frames)))


def collect_images(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise fail(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise fail(f"{p}: file not found")
    return files


def write_image(path: Path, image: np.ndarray) -> None:
    """cv2.imwrite to a temporary name, then rename: never a half-written file at `path`."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    if not cv2.imwrite(str(tmp), image):
        tmp.unlink(missing_ok=True)
        raise OSError(f"{path}: could not write the image")
    os.replace(tmp, path)


@app.command()
def image(
    paths: list[Path] = typer.Argument(..., help="Photos, or folders of photos."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the rendered views (STEM_VIEW.png); created if missing."),
    save_maps: Optional[Path] = typer.Option(None, help="Also write STEM.png (8-bit in-focus, 255 = in focus) and STEM_depth.png (16-bit, 0 = near) at native size here."),
    model: Optional[Path] = MODEL_OPT,
    backend: BackendName = BACKEND_OPT,
    threads: int = THREADS_OPT,
    imgsz: int = typer.Option(
        PHOTO_IMGSZ, min=32, help="Short side of the network input, rounded to a multiple of 32 (a static model uses its own size); larger than for video, since photos need no frame rate."
    ),
    view: View = VIEW_OPT,
    alpha: float = ALPHA_OPT,
    focus_cmap: Cmap = FOCUS_CMAP_OPT,  # type: ignore[valid-type]
    depth_cmap: Cmap = DEPTH_CMAP_OPT,  # type: ignore[valid-type]
    gpu: int = GPU_OPT,
    rebuild: bool = REBUILD_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Run the model on photos at their native size and save the chosen view (and the raw maps)."""
    files = collect_images(paths)
    for folder in (out, save_maps):
        if folder is not None:
            if folder.exists() and not folder.is_dir():
                raise fail(f"{folder}: exists and is not a folder")
            if not folder.parent.is_dir():
                raise fail(f"{folder}: the parent folder {folder.parent} does not exist")
    style = make_style(view, alpha, focus_cmap, depth_cmap, hud=False)
    session = open_session(model, backend, BackendOptions(threads=threads, frames_in_flight=1, gpu=gpu, rebuild=rebuild), style)
    out.mkdir(exist_ok=True)
    if save_maps is not None:
        save_maps.mkdir(exist_ok=True)
    times = StageTimes()
    processor = FrameProcessor(session.backend, times, imgsz)
    renderer = Renderer(style, times)
    failed, written = [], []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None or img.dtype != np.uint8:
            failed.append(f)
            error(f"{f}: unreadable or not an 8-bit image")
            continue
        result = processor.process(img)
        targets = [(out / f"{f.stem}_{view.value}.png", renderer(result))]
        if save_maps is not None:
            targets.append((save_maps / f"{f.stem}.png", focus_png(result.in_focus)))
            targets.append((save_maps / f"{f.stem}_depth.png", (np.clip(result.depth, 0, 1) * 65535 + 0.5).astype(np.uint16)))
        for path, pic in targets:
            if any(_same_file(i, path) for i in files):
                raise fail(f"{path}: would overwrite an input photo; choose another folder")
            write_image(path, pic)
            written.append(str(path))
    session.backend.close()
    say(f"{len(files) - len(failed)} of {len(files)} photos done; mean ms: " + format_stages(times.per_frame(len(files) - len(failed))))
    if json_out:
        print(json.dumps({"images": len(files), "failed": [str(f) for f in failed], "written": written}))
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def info(
    model: Optional[Path] = MODEL_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """The model in use, its metadata, and the backends this machine offers."""
    from runtime.backends import available_backends, choose_backend, resolve_model

    try:
        path = resolve_model(model, "onnxruntime" if model is None else choose_backend(model))
        is_onnx = path.suffix.lower() == ".onnx"
        if is_onnx:
            from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

            described = OnnxRuntimeBackend(path, threads=1).info.describe()
        else:
            described = {"path": str(path), "metadata": {}}
            sidecar = path.with_suffix(".json")
            if sidecar.is_file():
                described["metadata"] = json.loads(sidecar.read_text())
    except (ModelError, BackendError) as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:  # a sidecar that is not JSON
        raise fail(f"{path.with_suffix('.json')}: unreadable engine sidecar ({exc})") from None
    doc = {"model": described, "backends": available_backends()}
    if json_out:
        print(json.dumps(doc, indent=2))
        return
    out = Console(highlight=False)
    out.print(f"[bold]model[/] {described['path']}")
    if described.get("input_size"):
        out.print(f"  input size: {described['input_size']}")
    elif is_onnx:
        out.print(f"  input size: dynamic, the frame's aspect ratio with --imgsz on the short side (video and webcam {VIDEO_IMGSZ}, image {PHOTO_IMGSZ})")
    for k, v in described.get("metadata", {}).items():
        out.print(f"  {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    out.print("[bold]backends[/]")
    for k, v in doc["backends"].items():
        out.print(f"  {k}: {v}")


if __name__ == "__main__":
    app()
