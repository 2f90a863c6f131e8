"""`dbd-rt`: live in-focus and depth maps for videos, cameras and photos.

The commands parse options, check inputs and outputs before any work, and print; the work itself
is in video_job, camera_job and photo_job. Exit codes (runtime.console): 0 done, 2 bad input,
130 Ctrl-C, 143 SIGTERM (the video is then finished cleanly with the frames done).
"""

from __future__ import annotations

import json
import os
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from runtime.backends import Backend, BackendError, BackendOptions, open_backend
from runtime.console import EXIT_BAD_INPUT, err, error, fail, note, say, warn
from runtime.interrupts import exit_code, signal_name
from runtime.model_info import ModelError
from runtime.overlay import COLORMAPS, OverlayStyle, View
from runtime.pipeline import PHOTO_IMGSZ, VIDEO_IMGSZ, FrameProcessor, Renderer, StageTimes
from runtime.video_io import DEFAULT_PRESET, X264_PRESETS, VideoError, check_output_video, probe_video

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Real-time defocus blur detection: what is in focus, and how deep the scene is.")


class BackendName(str, Enum):
    auto = "auto"
    onnxruntime = "onnxruntime"
    tensorrt = "tensorrt"
    torch = "torch"


Cmap = Enum("Cmap", {c: c for c in COLORMAPS}, type=str)  # type: ignore[misc]

MODEL = "Model"
VIEWS = "View"
ModelOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--model",
        "-m",
        help="An .onnx model, an .engine (TensorRT) or a .pt checkpoint (torch). Default: the embedded model (for tensorrt: an engine built from it on first use and cached).",
        rich_help_panel=MODEL,
    ),
]
BackendOpt = Annotated[BackendName, typer.Option(help="Inference backend; auto = TensorRT for .engine, torch for .pt, else ONNX Runtime.", rich_help_panel=MODEL)]
GpuOpt = Annotated[int, typer.Option(min=0, help="CUDA device index for tensorrt, torch and ONNX Runtime's GPU providers.", rich_help_panel=MODEL)]
ThreadsOpt = Annotated[int, typer.Option(help="CPU threads for inference (0 = all cores this process may use).", rich_help_panel=MODEL)]
InFlightOpt = Annotated[
    int,
    typer.Option(
        min=0, help="Frames ONNX Runtime infers at once, sharing the threads (0 = auto: 2 on a CPU with 2+ threads; more fps, one frame more latency).", rich_help_panel=MODEL
    ),
]
RebuildOpt = Annotated[bool, typer.Option("--rebuild", help="Rebuild a TensorRT engine that was built for another GPU or TensorRT version.", rich_help_panel=MODEL)]
VideoImgszOpt = Annotated[
    int,
    typer.Option(
        min=32,
        help="Short side of the network input, rounded to a multiple of 32 (a fixed-size model uses its own size); larger is more accurate and slower.",
        rich_help_panel=MODEL,
    ),
]
ViewOpt = Annotated[View, typer.Option(help="overlay, side-by-side (frame | in-focus | depth), maps, or mask (in-focus contour).", rich_help_panel=VIEWS)]
AlphaOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Opacity of the heat map in the overlay view.", rich_help_panel=VIEWS)]
FocusCmapOpt = Annotated[Cmap, typer.Option(help="Colour map of the in-focus map.", rich_help_panel=VIEWS)]  # type: ignore[valid-type]
DepthCmapOpt = Annotated[Cmap, typer.Option(help="Colour map of the depth map (near is bright).", rich_help_panel=VIEWS)]  # type: ignore[valid-type]
HudOpt = Annotated[bool, typer.Option("--hud/--no-hud", help="Draw fps and latency on the picture.", rich_help_panel=VIEWS)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON document on stdout.")]


def open_model(model: Optional[Path], backend: BackendName, options: BackendOptions) -> Backend:
    """The backend, opened, with a one-line banner; a one-line error and exit 2 when it cannot be."""
    try:
        be = open_backend(model, backend.value, options)
    except (ModelError, BackendError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    size = "dynamic" if be.input_size is None else f"{be.input_size[0]}x{be.input_size[1]}"
    say(f"backend: {be.name} ({be.describe()}) model: {be.info.path.name} [{size}]")
    return be


def make_style(view: View, alpha: float, focus_cmap: Any, depth_cmap: Any, hud: bool) -> OverlayStyle:
    return OverlayStyle(view=view, alpha=alpha, focus_cmap=_value(focus_cmap), depth_cmap=_value(depth_cmap), hud=hud)


def _value(x: Any) -> str:
    return x.value if isinstance(x, Enum) else str(x)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_video_output(out: Path, inputs: list[Path]) -> None:
    """Refuse, before any work, an output that is an input, a folder, or not a video we write."""
    for i in inputs:
        if _same_file(i, out):
            raise fail(f"{out}: the output would overwrite the input; choose another --out")
    problem = check_output_video(out)
    if problem:
        raise fail(problem)


def check_output_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise fail(f"{folder}: exists and is not a folder")
    parent = folder if folder.is_dir() else folder.parent
    if not parent.is_dir():
        raise fail(f"{folder}: the parent folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise fail(f"{folder}: {parent} is not writable")


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
    source: Annotated[Path, typer.Argument(help="Input video file (any container FFmpeg reads; rotation metadata and variable frame rates are honoured).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output video: .mp4, .mov or .mkv, H.264 with the input's audio; written to a temporary name and renamed when complete.")
    ],
    model: ModelOpt = None,
    backend: BackendOpt = BackendName.auto,
    threads: ThreadsOpt = 0,
    frames_in_flight: InFlightOpt = 0,
    imgsz: VideoImgszOpt = VIDEO_IMGSZ,
    gpu: GpuOpt = 0,
    rebuild: RebuildOpt = False,
    view: ViewOpt = View.overlay,
    alpha: AlphaOpt = 0.5,
    focus_cmap: FocusCmapOpt = "inferno",  # type: ignore[assignment]
    depth_cmap: DepthCmapOpt = "viridis",  # type: ignore[assignment]
    hud: HudOpt = True,
    preset: Annotated[str, typer.Option(help=f"x264 speed preset ({', '.join(X264_PRESETS)}): faster presets leave more CPU to the network.")] = DEFAULT_PRESET,
    json_out: JsonOpt = False,
) -> None:
    """Process every frame of a video and write the chosen view, with the input's audio and timing."""
    from runtime.video_job import process_video

    if preset not in X264_PRESETS:
        raise fail(f"unknown x264 preset {preset!r}; choose one of {', '.join(X264_PRESETS)}")
    check_video_output(out, [source])
    try:
        probe = probe_video(source)
    except VideoError as exc:
        raise fail(str(exc)) from None
    if probe.rate_fallback:
        warn(f"{source}: neither the container nor the stream gives a frame rate; assuming {float(probe.rate):g} fps")
    elif probe.rate_source == "stream":
        note(f"{source}: no timestamps in the file; using the stream's own {float(probe.rate):g} fps")
    be = open_model(model, backend, BackendOptions(threads=threads, frames_in_flight=frames_in_flight, gpu=gpu, rebuild=rebuild))
    try:
        with _progress() as progress:
            task = progress.add_task(escape(probe.path.name), total=probe.frames or None, fps=0.0)
            result = process_video(
                probe,
                out,
                be,
                make_style(view, alpha, focus_cmap, depth_cmap, hud),
                on_frame=lambda frames, fps: progress.update(task, completed=frames, fps=fps),
                on_note=note,
                preset=preset,
                imgsz=imgsz,
            )
            progress.update(task, completed=result.frames, total=max(result.frames, 1))
    except (VideoError, ModelError) as exc:
        raise fail(str(exc)) from None
    finally:
        be.close()
    if result.interrupted and result.output is None:
        error(f"interrupted ({result.interrupted}) before the first frame: nothing written")
    elif result.interrupted:
        warn(f"interrupted ({result.interrupted}): finished {result.output} cleanly with the {result.frames} frames done so far")
    say(summary_line(result.frames, result.seconds, result.stages_ms))
    if result.output:
        turned = f", turned upright from a {result.rotation} degree display rotation" if result.rotation else ""
        say(
            f"wrote {result.output} ({result.codec}, {result.width}x{result.height}, {result.rate:g} fps nominal, frame timing kept"
            f"{', audio copied' if result.audio else ''}{turned}; network input {result.input_size})"
        )
    if json_out:
        print(json.dumps(result.as_dict()))
    if result.interrupted:
        raise typer.Exit(exit_code(result.interrupted))


@app.command()
def webcam(
    device: Annotated[str, typer.Option(help="Camera index (0), device path (/dev/video0), or a video file played as a camera.")] = "0",
    width: Annotated[int, typer.Option(help="Requested capture width (0 = camera default).")] = 0,
    height: Annotated[int, typer.Option(help="Requested capture height (0 = camera default).")] = 0,
    fps: Annotated[float, typer.Option(help="Requested capture frame rate (0 = camera default).")] = 0.0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also record the view to this .mp4 (each frame at its wall-clock time).")] = None,
    show: Annotated[bool, typer.Option("--show/--no-show", help="Show a window; --no-show runs headless.")] = True,
    max_frames: Annotated[int, typer.Option(help="Stop after this many frames (0 = until q/Esc, Ctrl-C or the end of a file).")] = 0,
    snapshot_dir: Annotated[Path, typer.Option(help="Where the s key saves snapshots.")] = Path("."),
    model: ModelOpt = None,
    backend: BackendOpt = BackendName.auto,
    threads: ThreadsOpt = 0,
    frames_in_flight: InFlightOpt = 0,
    imgsz: VideoImgszOpt = VIDEO_IMGSZ,
    gpu: GpuOpt = 0,
    rebuild: RebuildOpt = False,
    view: ViewOpt = View.overlay,
    alpha: AlphaOpt = 0.5,
    focus_cmap: FocusCmapOpt = "inferno",  # type: ignore[assignment]
    depth_cmap: DepthCmapOpt = "viridis",  # type: ignore[assignment]
    hud: HudOpt = True,
) -> None:
    """Live view of a camera. Keys: q/Esc quit, v next view, space pause, s snapshot."""
    from runtime.camera_job import CameraConfig, CameraError, open_camera, run_camera

    if out is not None:
        check_video_output(out, [])
    config = CameraConfig(device, width, height, fps, show, max_frames, snapshot_dir, out)
    try:
        cam = open_camera(config)
    except CameraError as exc:
        raise fail(str(exc)) from None
    be = open_model(model, backend, BackendOptions(threads=threads, frames_in_flight=frames_in_flight, gpu=gpu, rebuild=rebuild))
    times = StageTimes()
    try:
        result = run_camera(cam, config, FrameProcessor(be, times, imgsz), Renderer(make_style(view, alpha, focus_cmap, depth_cmap, hud), times), on_note=note)
    except (CameraError, VideoError, ModelError) as exc:
        raise fail(str(exc)) from None
    finally:
        be.close()
    if result.recorded:
        say(f"recorded {result.recorded}")
    say(f"{result.frames} frames shown, {result.dropped} stale camera frames skipped; mean ms: " + format_stages(times.per_frame(result.frames)))
    if result.interrupted:
        warn(f"interrupted ({result.interrupted})")
        raise typer.Exit(exit_code(result.interrupted))


@app.command()
def image(
    paths: Annotated[list[Path], typer.Argument(help="Photos, or folders of photos (EXIF orientation is applied, as viewers show them).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the rendered views (NAME_VIEW.png); created if missing.")],
    save_maps: Annotated[
        Optional[Path], typer.Option(help="Also write NAME.png (8-bit in-focus, 255 = in focus) and NAME_depth.png (16-bit, 0 = near) at the photo's size here.")
    ] = None,
    model: ModelOpt = None,
    backend: BackendOpt = BackendName.auto,
    threads: ThreadsOpt = 0,
    imgsz: Annotated[
        int,
        typer.Option(
            min=32,
            help="Short side of the network input, rounded to a multiple of 32 (a fixed-size model uses its own size); larger than for video, since photos need no frame rate.",
            rich_help_panel=MODEL,
        ),
    ] = PHOTO_IMGSZ,
    gpu: GpuOpt = 0,
    rebuild: RebuildOpt = False,
    view: ViewOpt = View.overlay,
    alpha: AlphaOpt = 0.5,
    focus_cmap: FocusCmapOpt = "inferno",  # type: ignore[assignment]
    depth_cmap: DepthCmapOpt = "viridis",  # type: ignore[assignment]
    json_out: JsonOpt = False,
) -> None:
    """Run the model on photos at their own size and save the chosen view (and the raw maps).

    NAME is the photo's stem; photos that share a stem (shot.jpg, shot.png) get the suffix added
    (shot-jpg, shot-png), so no output overwrites another."""
    from runtime.photo_job import PhotoError, collect_images, process_photos

    try:
        files = collect_images(paths)
    except PhotoError as exc:
        raise fail(str(exc)) from None
    for folder in (out, save_maps):
        if folder is not None:
            check_output_folder(folder)
    style = make_style(view, alpha, focus_cmap, depth_cmap, hud=False)
    be = open_model(model, backend, BackendOptions(threads=threads, frames_in_flight=1, gpu=gpu, rebuild=rebuild))
    times = StageTimes()
    processor = FrameProcessor(be, times, imgsz)
    try:
        out.mkdir(exist_ok=True)
        if save_maps is not None:
            save_maps.mkdir(exist_ok=True)
        result = process_photos(files, out, save_maps, processor, Renderer(style, times), view.value, on_error=error)
    except (PhotoError, ModelError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        be.close()
    done = len(files) - len(result.failed)
    say(f"{done} of {len(files)} photos done; mean ms: " + format_stages(times.per_frame(done)))
    if json_out:
        print(json.dumps({"images": len(files), "failed": [p for p, _ in result.failed], "written": result.written}))
    if result.failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def batch(
    inputs: Annotated[list[Path], typer.Argument(help="Videos, photos, folders (searched recursively) or manifests (.txt: one path a line).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for every output, a focus report per input, summary.json and summary.csv.")],
    no_video: Annotated[bool, typer.Option("--no-video", help="Analyse only: focus reports, no overlay videos.")] = False,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes (0 = auto: one for TensorRT, else one per CPU core, each with one network thread).")] = 0,
    cluster: Annotated[
        Optional[str], typer.Option(help="Run on a Ray cluster: its address, auto (the one this machine is part of) or local (start one here); needs the cluster extra.")
    ] = None,
    gpus_per_worker: Annotated[float, typer.Option(min=0.0, help="GPUs each Ray worker asks for (tensorrt/torch on GPU nodes: 1).")] = 0.0,
    roi: Annotated[Optional[str], typer.Option(help="Region whose focus decides a soft frame, X,Y,W,H in frame pixels (default: the centre third).")] = None,
    soft_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="A frame is soft when its region's mean in-focus probability is below this.")] = 0.4,
    model: ModelOpt = None,
    backend: BackendOpt = BackendName.auto,
    imgsz: VideoImgszOpt = VIDEO_IMGSZ,
    photo_imgsz: Annotated[int, typer.Option(min=32, help="Short side of the network input for photos.", rich_help_panel=MODEL)] = PHOTO_IMGSZ,
    gpu: GpuOpt = 0,
    view: ViewOpt = View.overlay,
    alpha: AlphaOpt = 0.5,
    hud: Annotated[bool, typer.Option("--hud/--no-hud", help="Draw fps and latency on the videos.", rich_help_panel=VIEWS)] = False,
    preset: Annotated[str, typer.Option(help=f"x264 speed preset ({', '.join(X264_PRESETS)}).")] = DEFAULT_PRESET,
    json_out: JsonOpt = False,
) -> None:
    """Many files: overlay videos and a focus report per input (which shots are soft, and when),
    resumable, on local worker processes or a Ray cluster.

    Exit codes: 0 all done or already done, 3 some inputs failed (summary.csv says why), 2 bad
    arguments, 130/143 interrupted (finished files stay finished; run again to do the rest)."""
    from runtime.backends import choose_backend, resolve_model
    from runtime.backends.onnxruntime_backend import default_threads
    from runtime.batch_job import EXIT_SOME_FAILED, BatchOptions, collect_inputs, default_workers, finished_result, run_local, run_on_ray, write_summary
    from runtime.focus_report import ReportConfig
    from runtime.photo_job import PhotoError

    try:
        region = tuple(int(v) for v in roi.split(",")) if roi else None
        if region is not None and (len(region) != 4 or min(region[2:]) <= 0):
            raise ValueError
    except ValueError:
        raise fail(f"--roi takes X,Y,W,H in pixels, got {roi!r}") from None
    check_output_folder(out)
    try:
        model_path = resolve_model(model, choose_backend(model, backend.value))
    except (ModelError, BackendError) as exc:
        raise fail(str(exc)) from None
    count = workers or default_workers(backend.value)
    options = BatchOptions(
        model=str(model_path),
        backend=backend.value,
        gpu=gpu,
        threads=max(1, default_threads() // count),
        video_imgsz=imgsz,
        photo_imgsz=photo_imgsz,
        style=make_style(view, alpha, "inferno", "viridis", hud),
        write_video=not no_video,
        preset=preset,
        report=ReportConfig(region, soft_threshold),  # type: ignore[arg-type]
    )
    import hashlib

    fingerprint = options.fingerprint(hashlib.sha256(model_path.read_bytes()).hexdigest())
    items, results = collect_inputs(inputs)
    for r in results:
        error(r.reason)
    todo = []
    for item in items:
        done = finished_result(out, item, fingerprint)
        if done:
            results.append(done)
        else:
            todo.append(item)
    skipped, unusable = sum(r.status == "skipped" for r in results), sum(r.status == "failed" for r in results)
    say(f"{len(todo)} to do, {skipped} already done, {unusable} unusable; {count} worker{'s' if count > 1 else ''}{' on Ray' if cluster else ''}")
    out.mkdir(parents=True, exist_ok=True)
    t0, interrupted = time.perf_counter(), None
    try:
        run = run_on_ray(todo, options, out, fingerprint, count, cluster, gpus_per_worker) if cluster else run_local(todo, options, out, fingerprint, count)
        with _batch_progress() as progress:
            task = progress.add_task("batch", total=len(todo), frames=0, fps=0.0)
            frames = 0
            for result in run:
                results.append(result)
                frames += result.frames if result.status == "done" else 0
                if result.status == "failed":
                    error(result.reason)
                progress.update(task, advance=1, frames=frames, fps=frames / (time.perf_counter() - t0))
    except KeyboardInterrupt as exc:
        interrupted = exc
    except (BackendError, PhotoError) as exc:
        raise fail(str(exc)) from None
    doc = write_summary(out, results, time.perf_counter() - t0, options)
    say(
        f"done {doc['done']}, already done {doc['skipped']}, failed {doc['failed']} of {len(results)} inputs ({doc['frames']} frames in {doc['seconds']:.1f} s); {out / 'summary.csv'}"
    )
    if json_out:
        print(json.dumps(doc))
    if interrupted is not None:
        warn(f"interrupted ({signal_name(interrupted)}): {doc['done']} files finished stay finished; run the same command again for the rest")
        raise typer.Exit(exit_code(interrupted))
    if doc["failed"]:
        raise typer.Exit(EXIT_SOME_FAILED)


def _batch_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files, {task.fields[frames]} frames, {task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    )


@app.command()
def info(model: ModelOpt = None, json_out: JsonOpt = False) -> None:
    """The model in use, its metadata, and the backends this machine offers."""
    from rich.console import Console

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
    out = Console(highlight=False, markup=False)
    out.print(f"model {described['path']}")
    if described.get("input_size"):
        out.print(f"  input size: {described['input_size']}")
    elif is_onnx:
        out.print(f"  input size: dynamic, the frame's aspect ratio with --imgsz on the short side (video and webcam {VIDEO_IMGSZ}, image {PHOTO_IMGSZ})")
    for k, v in described.get("metadata", {}).items():
        out.print(f"  {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    out.print("backends")
    for k, v in doc["backends"].items():
        out.print(f"  {k}: {v}")
