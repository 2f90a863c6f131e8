"""`dbd-rt`: live in-focus and depth maps for videos, cameras and photos.

The commands parse options, check inputs and outputs before any work, and print; the work itself
is in video_job, camera_job and photo_job. Exit codes (runtime.console): 0 done, 2 bad input,
130 Ctrl-C, 143 SIGTERM (the video is then finished cleanly with the frames done).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from runtime.backends import Backend, BackendError, BackendOptions, open_backend
from runtime.camera_job import KEYS
from runtime.console import EXIT_BAD_INPUT, err, error, fail, note, say, warn
from runtime.focus_assist import AssistConfig, parse_roi
from runtime.interrupts import exit_code, signal_name
from runtime.map_writer import MapFormat
from runtime.model_info import ModelError
from runtime.overlay import COLORMAPS, COLORS, FocusThreshold, OverlayStyle, PeakingMode, View
from runtime.pipeline import PHOTO_IMGSZ, VIDEO_IMGSZ, FrameProcessor, Renderer, StageTimes
from runtime.smoothing import DEFAULT_STRENGTH, SmoothingConfig
from runtime.video_io import DEFAULT_PRESET, X264_PRESETS, VideoError, check_output_video, probe_video

if TYPE_CHECKING:
    from runtime.video_job import VideoJobResult

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Real-time defocus blur detection: what is in focus, and how deep the scene is.")


class BackendName(str, Enum):
    auto = "auto"
    onnxruntime = "onnxruntime"
    tensorrt = "tensorrt"
    torch = "torch"


Cmap = Enum("Cmap", {c: c for c in COLORMAPS}, type=str)  # type: ignore[misc]
Color = Enum("Color", {c: c for c in COLORS}, type=str)  # type: ignore[misc]

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
ViewOpt = Annotated[
    View,
    typer.Option(
        help="overlay (heat map), side-by-side (frame | in-focus | depth), maps, mask (in-focus contour), peaking (the in-focus region in --color over grey), or focus-plane (out-of-focus areas coloured nearer / farther than the focal plane).",
        rich_help_panel=VIEWS,
    ),
]
ColorOpt = Annotated[Color, typer.Option("--color", help="Colour of the peaking view.", rich_help_panel=VIEWS)]  # type: ignore[valid-type]
ThresholdOpt = Annotated[
    str,
    typer.Option(help="Where the peaking and focus-plane views' in-focus region starts: a probability (0.5) or the sharpest share of the frame (20%).", rich_help_panel=VIEWS),
]
PeakingOpt = Annotated[
    PeakingMode,
    typer.Option(
        help="fill: tint the in-focus region (flat sharp areas too); edges: the frame's edges inside it, like camera peaking without blurred false edges.", rich_help_panel=VIEWS
    ),
]
MonoOpt = Annotated[bool, typer.Option("--mono/--no-mono", help="Peaking over a greyscale frame (as camera monitors do) or the colour frame.", rich_help_panel=VIEWS)]
RoiOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Region of interest X,Y,W,H in frame pixels: its focus score on the HUD and a graph of the last seconds (webcam: drag with the mouse).", rich_help_panel=VIEWS
    ),
]
MagnifierOpt = Annotated[bool, typer.Option("--magnifier/--no-magnifier", help="A zoomed inset of the region of interest, or else of the sharpest region.", rich_help_panel=VIEWS)]
ZoomOpt = Annotated[float, typer.Option(min=1.0, max=16.0, help="Magnifier zoom (frame pixels to screen pixels).", rich_help_panel=VIEWS)]
AlphaOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Opacity of the heat map in the overlay view.", rich_help_panel=VIEWS)]
FocusCmapOpt = Annotated[Cmap, typer.Option(help="Colour map of the in-focus map.", rich_help_panel=VIEWS)]  # type: ignore[valid-type]
DepthCmapOpt = Annotated[Cmap, typer.Option(help="Colour map of the depth map (near is bright).", rich_help_panel=VIEWS)]  # type: ignore[valid-type]
HudOpt = Annotated[bool, typer.Option("--hud/--no-hud", help="Draw fps and latency on the picture.", rich_help_panel=VIEWS)]
SmoothOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=0.95,
        help="Temporal smoothing of the maps, 0 = off: small frame-to-frame changes (flicker) keep this share of the running map, carried along by optical flow; real changes show at once.",
        rich_help_panel=MODEL,
    ),
]
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


def make_style(
    view: View, alpha: float, focus_cmap: Any, depth_cmap: Any, hud: bool, color: Any = "red", threshold: str = "0.5", peaking: PeakingMode = PeakingMode.fill, mono: bool = True
) -> OverlayStyle:
    try:
        level = FocusThreshold.parse(threshold)
    except ValueError as exc:
        raise fail(f"--threshold: {exc}" if "range" in str(exc) else f"--threshold takes a probability (0.5) or a share (20%), got {threshold!r}") from None
    return OverlayStyle(
        view=view, alpha=alpha, focus_cmap=_value(focus_cmap), depth_cmap=_value(depth_cmap), hud=hud, color=_value(color), threshold=level, peaking=peaking, mono=mono
    )


def make_assist(roi: Optional[str], magnifier: bool = False, zoom: float = 2.0) -> AssistConfig:
    try:
        region = parse_roi(roi) if roi else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    return AssistConfig(roi=region, magnifier=magnifier, zoom=zoom)


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
        Optional[Path],
        typer.Option(
            "--out", "-o", help="Output video: .mp4, .mov or .mkv, H.264 with the input's audio; written to a temporary name and renamed when complete. Optional with --save-maps."
        ),
    ] = None,
    save_maps: Annotated[
        Optional[Path],
        typer.Option(
            help="Also save both maps of every frame in this folder, frame-accurate (same frames, same times): see --maps-format; maps.json and frames.csv describe them."
        ),
    ] = None,
    maps_format: Annotated[
        list[MapFormat],
        typer.Option(help="With --save-maps, repeatable: mkv (16-bit grey FFV1, lossless), mp4 (8-bit grey H.264, plays anywhere), png (16-bit PNG per frame)."),
    ] = [MapFormat.mkv],  # noqa: B006  (Typer reads list defaults this way)
    model: ModelOpt = None,
    backend: BackendOpt = BackendName.auto,
    threads: ThreadsOpt = 0,
    frames_in_flight: InFlightOpt = 0,
    imgsz: VideoImgszOpt = VIDEO_IMGSZ,
    gpu: GpuOpt = 0,
    rebuild: RebuildOpt = False,
    smooth: SmoothOpt = DEFAULT_STRENGTH,
    view: ViewOpt = View.overlay,
    alpha: AlphaOpt = 0.5,
    focus_cmap: FocusCmapOpt = "inferno",  # type: ignore[assignment]
    depth_cmap: DepthCmapOpt = "viridis",  # type: ignore[assignment]
    color: ColorOpt = "red",  # type: ignore[assignment]
    threshold: ThresholdOpt = "0.5",
    peaking: PeakingOpt = PeakingMode.fill,
    mono: MonoOpt = True,
    roi: RoiOpt = None,
    magnifier: MagnifierOpt = False,
    zoom: ZoomOpt = 2.0,
    hud: HudOpt = True,
    preset: Annotated[str, typer.Option(help=f"x264 speed preset ({', '.join(X264_PRESETS)}): faster presets leave more CPU to the network.")] = DEFAULT_PRESET,
    json_out: JsonOpt = False,
) -> None:
    """Process every frame of a video and write the chosen view, with the input's audio and timing."""
    from runtime.map_writer import SaveMaps
    from runtime.video_job import process_video

    if preset not in X264_PRESETS:
        raise fail(f"unknown x264 preset {preset!r}; choose one of {', '.join(X264_PRESETS)}")
    if out is None and save_maps is None:
        raise fail("give --out for the view video, --save-maps for the maps, or both")
    if out is not None:
        check_video_output(out, [source])
    if save_maps is not None:
        check_output_folder(save_maps)
    style = make_style(view, alpha, focus_cmap, depth_cmap, hud, color, threshold, peaking, mono)
    assist = make_assist(roi, magnifier, zoom)
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
                style,
                on_frame=lambda frames, fps: progress.update(task, completed=frames, fps=fps),
                on_note=note,
                preset=preset,
                imgsz=imgsz,
                smoothing=SmoothingConfig(strength=smooth),
                assist=assist,
                save_maps=SaveMaps(save_maps, tuple(maps_format)) if save_maps is not None else None,
            )
            progress.update(task, completed=result.frames, total=max(result.frames, 1))
    except (VideoError, ModelError) as exc:
        raise fail(str(exc)) from None
    finally:
        be.close()
    _report_video(result, save_maps, json_out)


def _report_video(result: VideoJobResult, save_maps: Path | None, json_out: bool) -> None:
    """The end of `dbd-rt video`: what was written, the summary, and the interrupted exit code."""
    if result.interrupted and result.frames == 0:
        error(f"interrupted ({result.interrupted}) before the first frame: nothing written")
    elif result.interrupted:
        warn(f"interrupted ({result.interrupted}): finished {result.output or save_maps} cleanly with the {result.frames} frames done so far")
    say(summary_line(result.frames, result.seconds, result.stages_ms))
    if result.output:
        turned = f", turned upright from a {result.rotation} degree display rotation" if result.rotation else ""
        say(
            f"wrote {result.output} ({result.codec}, {result.width}x{result.height}, {result.rate:g} fps nominal, frame timing kept"
            f"{', audio copied' if result.audio else ''}{turned}; network input {result.input_size})"
        )
    if result.maps:
        say(f"saved the maps of {result.frames} frames in {save_maps}: " + ", ".join(Path(m).name for m in result.maps))
    if json_out:
        print(json.dumps(result.as_dict()))
    if result.interrupted:
        raise typer.Exit(exit_code(result.interrupted))


WEBCAM_HELP = "Live view of a camera, or of a video file played as one (--device clip.mp4).\n\nKeys in the window: " + "; ".join(f"{k} {a}" for k, a in KEYS) + "."


@app.command(help=WEBCAM_HELP)
def webcam(
    device: Annotated[str, typer.Option(help="Camera index (0), device path (/dev/video0), or a video file played as a camera at its own frame rate.")] = "0",
    width: Annotated[int, typer.Option(help="Requested capture width (0 = camera default).")] = 0,
    height: Annotated[int, typer.Option(help="Requested capture height (0 = camera default).")] = 0,
    fps: Annotated[float, typer.Option(help="Requested capture frame rate (0 = camera default).")] = 0.0,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Record the view from the start to this .mp4 (each frame at its wall-clock time); r starts and stops more.")
    ] = None,
    show: Annotated[bool, typer.Option("--show/--no-show", help="Show a window; --no-show runs headless.")] = True,
    max_frames: Annotated[int, typer.Option(help="Stop after this many frames (0 = until q/Esc, Ctrl-C or the end of a file).")] = 0,
    realtime: Annotated[
        bool, typer.Option("--realtime/--no-realtime", help="A file played as a camera: at its own frame rate, or as fast as it decodes (to measure throughput).")
    ] = True,
    snapshot_dir: Annotated[Path, typer.Option(help="Where s saves snapshots and r saves recordings.")] = Path("."),
    keys: Annotated[
        Optional[str],
        typer.Option(
            help='Play keys and drags at given shown frames instead of reading the window, e.g. "10:5 30:drag=100,80,300,240 60:m 90:s 120:q" (demos, screenshots, tests).'
        ),
    ] = None,
    model: ModelOpt = None,
    backend: BackendOpt = BackendName.auto,
    threads: ThreadsOpt = 0,
    frames_in_flight: InFlightOpt = 0,
    imgsz: VideoImgszOpt = VIDEO_IMGSZ,
    gpu: GpuOpt = 0,
    rebuild: RebuildOpt = False,
    smooth: SmoothOpt = DEFAULT_STRENGTH,
    view: ViewOpt = View.overlay,
    alpha: AlphaOpt = 0.5,
    focus_cmap: FocusCmapOpt = "inferno",  # type: ignore[assignment]
    depth_cmap: DepthCmapOpt = "viridis",  # type: ignore[assignment]
    color: ColorOpt = "red",  # type: ignore[assignment]
    threshold: ThresholdOpt = "0.5",
    peaking: PeakingOpt = PeakingMode.fill,
    mono: MonoOpt = True,
    roi: RoiOpt = None,
    magnifier: MagnifierOpt = False,
    zoom: ZoomOpt = 2.0,
    hud: HudOpt = True,
    json_out: JsonOpt = False,
) -> None:
    from runtime.camera_job import CameraConfig, CameraError, ScriptedInput, open_camera, run_camera

    if out is not None:
        check_video_output(out, [])
    check_output_folder(snapshot_dir)
    try:
        script = ScriptedInput.parse(keys) if keys else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    style = make_style(view, alpha, focus_cmap, depth_cmap, hud, color, threshold, peaking, mono)
    assist = make_assist(roi, magnifier, zoom)
    config = CameraConfig(device, width, height, fps, show, max_frames, snapshot_dir, out, realtime)
    try:
        cam = open_camera(config)
    except CameraError as exc:
        raise fail(str(exc)) from None
    be = open_model(model, backend, BackendOptions(threads=threads, frames_in_flight=frames_in_flight, gpu=gpu, rebuild=rebuild))
    times = StageTimes()
    smoothing = SmoothingConfig(strength=smooth)
    t0 = time.perf_counter()
    try:
        result = run_camera(cam, config, FrameProcessor(be, times, imgsz, smoothing), Renderer(style, times, assist), on_note=note, keys=script, smoothing=smoothing)
    except (CameraError, VideoError, ModelError) as exc:
        raise fail(str(exc)) from None
    finally:
        be.close()
    seconds = time.perf_counter() - t0
    for path in result.recorded:
        say(f"recorded {path}")
    say(
        f"{result.frames} frames shown in {seconds:.1f} s ({result.frames / seconds if seconds else 0:.1f} fps), {result.dropped} stale camera frames skipped; mean ms: "
        + format_stages(times.per_frame(result.frames))
    )
    if json_out:
        print(json.dumps({**asdict(result), "seconds": seconds, "fps": result.frames / seconds if seconds else 0.0, "stages_ms": times.per_frame(result.frames)}))
    if result.interrupted:
        warn(f"interrupted ({result.interrupted})")
        raise typer.Exit(exit_code(result.interrupted))


@app.command()
def image(
    paths: Annotated[list[Path], typer.Argument(help="Photos, or folders of photos (EXIF orientation is applied, as viewers show them).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the rendered views (NAME_VIEW.png); created if missing.")],
    save_maps: Annotated[
        Optional[Path],
        typer.Option(
            help="Also write NAME.png (8-bit in-focus, 255 = in focus), NAME_in_focus16.png (the same in 16 bits) and NAME_depth.png (16-bit, 0 = near) at the photo's size here."
        ),
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
    color: ColorOpt = "red",  # type: ignore[assignment]
    threshold: ThresholdOpt = "0.5",
    peaking: PeakingOpt = PeakingMode.fill,
    mono: MonoOpt = True,
    roi: RoiOpt = None,
    magnifier: MagnifierOpt = False,
    zoom: ZoomOpt = 2.0,
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
    style = make_style(view, alpha, focus_cmap, depth_cmap, False, color, threshold, peaking, mono)
    assist = make_assist(roi, magnifier, zoom)
    be = open_model(model, backend, BackendOptions(threads=threads, frames_in_flight=1, gpu=gpu, rebuild=rebuild))
    times = StageTimes()
    processor = FrameProcessor(be, times, imgsz)
    try:
        out.mkdir(exist_ok=True)
        if save_maps is not None:
            save_maps.mkdir(exist_ok=True)
        result = process_photos(files, out, save_maps, processor, Renderer(style, times, assist), view.value, on_error=error)
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
    roi: Annotated[
        Optional[str],
        typer.Option(
            help="Region whose focus decides a soft frame, X,Y,W,H in frame pixels (default: none, a frame is soft when no part of it is sharp; roi_score is then reported over the centre third)."
        ),
    ] = None,
    soft_threshold: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="A frame is soft when its focus score is below this: the mean in-focus probability of --roi, or without it of the frame's most confident tenth."
        ),
    ] = 0.4,
    model: ModelOpt = None,
    backend: BackendOpt = BackendName.auto,
    imgsz: VideoImgszOpt = VIDEO_IMGSZ,
    photo_imgsz: Annotated[int, typer.Option(min=32, help="Short side of the network input for photos.", rich_help_panel=MODEL)] = PHOTO_IMGSZ,
    gpu: GpuOpt = 0,
    view: ViewOpt = View.overlay,
    alpha: AlphaOpt = 0.5,
    hud: Annotated[bool, typer.Option("--hud/--no-hud", help="Draw fps and latency on the videos.", rich_help_panel=VIEWS)] = False,
    smooth: SmoothOpt = DEFAULT_STRENGTH,
    preset: Annotated[str, typer.Option(help=f"x264 speed preset ({', '.join(X264_PRESETS)}).")] = DEFAULT_PRESET,
    json_out: JsonOpt = False,
) -> None:
    """Many files: overlay videos and a focus report per input (which shots are soft, and when),
    resumable, on local worker processes or a Ray cluster.

    Exit codes: 0 all done or already done, 3 some inputs failed (summary.csv says why), 2 bad
    arguments, 130/143 interrupted (finished files stay finished; run again to do the rest)."""
    from runtime.backends import choose_backend, resolve_model
    from runtime.backends.onnxruntime_backend import default_threads
    from runtime.batch_job import EXIT_SOME_FAILED, BatchOptions, collect_inputs, default_workers, run_local, run_on_ray, split_finished, write_summary
    from runtime.focus_report import ReportConfig

    region = make_assist(roi).roi
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
        smoothing=SmoothingConfig(strength=smooth),
    )
    fingerprint = options.fingerprint()
    items, results = collect_inputs(inputs)
    for r in results:
        error(r.reason)
    todo, finished = split_finished(out, items, fingerprint)
    results += finished
    skipped, unusable = len(finished), sum(r.status == "failed" for r in results)
    say(f"{len(todo)} to do, {skipped} already done, {unusable} unusable; {count} worker{'s' if count > 1 else ''}{' on Ray' if cluster else ''}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run = run_on_ray(todo, options, out, fingerprint, count, cluster, gpus_per_worker) if cluster else run_local(todo, options, out, fingerprint, count)
    interrupted = _follow_batch(run, len(todo), results)
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


def _follow_batch(run: Iterator[Any], total: int, results: list[Any]) -> KeyboardInterrupt | None:
    """Results as they come (appended to `results`) under one progress bar; the interrupt that
    stopped the batch, if one did. `run` is a generator: nothing starts before the first result
    is asked for."""
    from runtime.photo_job import PhotoError

    t0, frames = time.perf_counter(), 0
    try:
        with _batch_progress() as progress:
            task = progress.add_task("batch", total=total, frames=0, fps=0.0)
            for result in run:
                results.append(result)
                frames += result.frames if result.status == "done" else 0
                if result.status == "failed":
                    error(result.reason)
                progress.update(task, advance=1, frames=frames, fps=frames / (time.perf_counter() - t0))
    except KeyboardInterrupt as exc:
        return exc
    except (BackendError, PhotoError) as exc:
        raise fail(str(exc)) from None
    return None


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
