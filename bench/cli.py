"""`dbd-bench`: speed (fps) and accuracy (eval), measured the same way every time."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import cv2
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from runtime.backends import BackendError, BackendOptions, choose_backend, open_backend, resolve_model
from runtime.console import err, fail, say, warn
from runtime.datasets import MaskPolarity
from runtime.model_info import SAMPLE_CLIP, ModelError
from runtime.overlay import View
from runtime.pipeline import PHOTO_IMGSZ, VIDEO_IMGSZ
from runtime.video_io import VideoError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmarks: speed (fps) and accuracy (eval).")
SHORT = {"decode": "dec", "preprocess": "pre", "host_to_device": "h2d", "compute": "infer", "device_to_host": "d2h", "postprocess": "post", "overlay": "draw", "encode": "enc"}


def _model_for(backend: str, model: Optional[Path], checkpoint: Optional[Path]) -> Path:
    """The file each backend reads: torch a checkpoint, the others the model given; else its default."""
    if backend == "torch":
        return resolve_model(checkpoint, "torch")
    return resolve_model(model, choose_backend(model, backend))


def _synthetic_clip(spec: str, folder: Path, frames: int = 150) -> Path:
    from bench.clips import synthetic_frames, write_clip

    try:
        w, h = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise fail(f"--synthetic takes WxH such as 640x480, got {spec!r}") from None
    path = folder / f"synthetic_{w}x{h}.mp4"
    write_clip(path, synthetic_frames(w - w % 2, h - h % 2, frames))
    return path


@app.command()
def fps(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model for onnxruntime/tensorrt (default: the embedded ONNX)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Checkpoint for the torch backend (default: the shipped one)."),
    backend: str = typer.Option("auto", help="One backend: auto, onnxruntime, tensorrt or torch."),
    compare: Optional[str] = typer.Option(None, help="Comma-separated backends measured in one interleaved run, e.g. onnxruntime,torch; ratios are against the first."),
    imgsz: int = typer.Option(VIDEO_IMGSZ, min=32, help="Short side of a dynamic model's input, as dbd-rt video uses (static models use their own size)."),
    video: Optional[Path] = typer.Option(None, help="Video for the pipeline measurement (default: the bundled 640x480 sample clip)."),
    synthetic: Optional[str] = typer.Option(None, help="Use a generated WxH clip (e.g. 640x480) instead of --video."),
    view: View = typer.Option(View.side_by_side, help="View rendered in the pipeline measurement."),
    warmup: int = typer.Option(20, help="Untimed network calls per backend before measuring."),
    iters: int = typer.Option(100, help="Timed network calls per backend."),
    threads: int = typer.Option(0, help="CPU threads per backend (0 = all available)."),
    gpu: int = typer.Option(0, min=0, help="CUDA device index for tensorrt, torch and ONNX Runtime's GPU providers."),
    frames_in_flight: int = typer.Option(
        0, min=0, help="Frames ONNX Runtime infers at once in the threaded pipeline, as in dbd-rt video (0 = auto); the network-alone latency always runs one."
    ),
    pipeline: bool = typer.Option(True, help="Also measure the full video pipeline (decode to encode)."),
    sizes: Optional[str] = typer.Option(
        None,
        help="Also sweep input sizes, e.g. 640x480,1280x720,1920x1080: per size a 10 s clip from the bundled photos, its plumbing-only ceiling (decode + encode), and per --views the end-to-end fps and stages (first backend only).",
    ),
    views: str = typer.Option("overlay,side-by-side", help="Views for --sizes, comma-separated."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout instead of the table."),
    log: Optional[Path] = typer.Option(None, help="Append this run's JSON as one line to this file."),
) -> None:
    """Network latency (p50/p90/p99) and fps, per-stage ms and end-to-end fps of the video pipeline."""
    from bench.fps import FpsConfig, FpsPlan, measure

    names = [b.strip() for b in compare.split(",")] if compare else [backend]
    try:
        sweep_sizes = [tuple(int(v) for v in s.lower().split("x")) for s in sizes.split(",")] if sizes else []
        sweep_views = [View(v.strip()) for v in views.split(",")]
    except ValueError:
        raise fail(f"--sizes takes WxH,WxH... and --views names of views; got {sizes!r} and {views!r}") from None
    with tempfile.TemporaryDirectory() as tmp:
        clip = _synthetic_clip(synthetic, Path(tmp)) if synthetic else (video or SAMPLE_CLIP)
        try:
            models = [(path := _model_for(name, model, checkpoint), choose_backend(path, name)) for name in names]
            plan = FpsPlan(
                models=models,
                clip=clip,
                cfg=FpsConfig(warmup=warmup, iters=iters, imgsz=imgsz, view=view),
                options=BackendOptions(threads=threads, frames_in_flight=frames_in_flight, gpu=gpu),
                pipeline=pipeline,
                sizes=sweep_sizes,  # type: ignore[arg-type]
                views=sweep_views,
            )
            doc = measure(plan, Path(tmp), on_step=say)
        except (BackendError, ModelError, VideoError, FileNotFoundError, IndexError) as exc:
            raise fail(str(exc) or f"{clip}: no frames") from None
    if log is not None:
        with open(log, "a") as f:
            f.write(json.dumps(doc) + "\n")
    if json_out:
        print(json.dumps(doc, indent=2))
    else:
        print_fps_table(doc)


def print_fps_table(doc: dict[str, Any]) -> None:
    con = Console()
    m = doc["machine"]
    con.print(f"[bold]machine[/] {m['cpu']} ({m['cores']} cores), GPU {m['gpu'] or 'none'}; onnxruntime {m['onnxruntime']}, torch {m['torch']}, TensorRT {m['tensorrt']}")
    v = doc["video"]
    con.print(f"[bold]pipeline[/] {Path(v['path']).name} {v['width']}x{v['height']} @ {v['fps']:g} fps, view {v['view']}")
    t = Table(title="network alone")
    for col in ("backend", "device", "precision", "imgsz", "fps", "p50 ms", "p90 ms", "p99 ms", "x first"):
        t.add_column(col)
    for r in doc["results"]:
        lat = r["latency_ms"]
        t.add_row(r["backend"], r["device"], r["precision"], r["imgsz"], f"{r['fps']:.1f}", f"{lat['p50']:.1f}", f"{lat['p90']:.1f}", f"{lat['p99']:.1f}", f"{r['ratio_fps']:.2f}")
    con.print(t)
    if doc["results"][0]["stages_ms"] is None:
        return
    t = Table(title="video pipeline (stage ms per frame from a single-threaded pass; e2e fps threaded)")
    stage_names = list(doc["results"][0]["stages_ms"])
    for col in ["backend", *[SHORT.get(k, k) for k in stage_names], "sum", "e2e fps", "in flight", "x first"]:
        t.add_column(col)
    for r in doc["results"]:
        t.add_row(
            r["backend"],
            *[f"{r['stages_ms'][k]:.1f}" for k in stage_names],
            f"{r['stages_total_ms']:.1f}",
            f"{r['e2e_fps']:.1f}",
            str(r.get("frames_in_flight", 1)),
            f"{r['ratio_e2e_fps']:.2f}" if r["ratio_e2e_fps"] else "-",
        )
    con.print(t)
    if doc.get("sizes"):
        con.print(markdown_table(doc).split("Per input size", 1)[1].split("\n", 2)[2])


@app.command()
def report(
    log: Path = typer.Argument(..., help="A --log file written by dbd-bench fps."),
    entry: int = typer.Option(-1, help="Which run in the file (default: the last)."),
) -> None:
    """Print a bench run as a Markdown table (README's speed table is made with this)."""
    try:
        runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        doc = runs[entry]
    except (OSError, ValueError, IndexError) as exc:
        raise fail(f"{log}: no such bench run ({exc})") from None
    print(markdown_table(doc))


def markdown_table(doc: dict[str, Any]) -> str:
    m, v = doc["machine"], doc["video"]
    lines = [
        f"Measured {doc['time']} on {m['cpu']} ({m['cores']} cores), GPU {m['gpu'] or 'none'}; pipeline on {Path(v['path']).name} ({v['width']}x{v['height']}, view {v['view']}).",
        "",
        "| backend | device | precision | input | network fps | p50 ms | p90 ms | p99 ms | end-to-end fps | frames in flight | x first |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        lat = r["latency_ms"]
        e2e = f"{r['e2e_fps']:.1f}" if r["e2e_fps"] else "-"
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['precision']} | {r['imgsz']} | {r['fps']:.1f} | {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | {e2e} | {r.get('frames_in_flight', 1)} | {r['ratio_fps']:.2f} |"
        )
    if doc.get("sizes"):
        keys = list(doc["sizes"][0]["stages_ms"])
        lines += ["", f"Per input size ({doc['results'][0]['backend']}; 10 s clips of the bundled photos; stages from a single-threaded pass, ms per frame):", ""]
        lines += ["| input | view | output | end-to-end fps | plumbing-only fps | share | " + " | ".join(SHORT.get(k, k) for k in keys) + " |"]
        lines += ["|" + "---|" * (6 + len(keys))]
        for r in doc["sizes"]:
            cells = " | ".join(f"{r['stages_ms'][k]:.1f}" for k in keys)
            lines.append(f"| {r['input']} | {r['view']} | {r['output']} | {r['e2e_fps']:.1f} | {r['plumbing_fps']:.1f} | {r['share_of_ceiling']:.0%} | {cells} |")
    return "\n".join(lines)


@app.command("eval")
def eval_(
    data: Path = typer.Option(..., help="Folder with images/ and masks/ paired by file stem."),
    mask_in_focus: MaskPolarity = typer.Option(MaskPolarity.white, help="Mask colour that means in focus (CUHK originals: black)."),
    names: Optional[Path] = typer.Option(None, help="File of stems to score, one per line (default: every pair)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model to score (default: the embedded ONNX)."),
    backend: str = typer.Option("auto", help="Backend for the model."),
    imgsz: int = typer.Option(PHOTO_IMGSZ, min=32, help="Short side of a dynamic model's input, as dbd-rt image uses (static models use their own size)."),
    baseline: Optional[str] = typer.Option(None, help="Also score a classical reference: hifst (needs the baseline extra)."),
    plot: Optional[Path] = typer.Option(None, help="Write the precision-recall curve(s) to this PNG."),
    per_image: Optional[Path] = typer.Option(None, help="Write per-image MAE, precision, recall, F-beta to this CSV."),
    protocol: str = typer.Option(
        "paper",
        help="paper: adaptive F-beta of the in-focus region (1.5 x mean), max F, MAE, as the depth-distillation paper scores; ddffnet: F-beta of the blurred class at a fixed 0.5 threshold, per image, and MAE, as D-DFFNet (ICME 2023) scores.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON on stdout (every protocol's numbers)."),
) -> None:
    """MAE, adaptive F-beta (mean P/R and per-image mean), max F and the PR curve at native mask size.

    The number the DBD literature reports: the standard 100 CUHK test photos (dbd-prepare cuhk
    writes test100.txt): --names DIR/test100.txt."""
    from bench.evaluate import hifst_predictor, model_predictor, plot_pr
    from runtime.datasets import DatasetError, find_pairs, read_names

    if protocol not in PROTOCOL_COLUMNS:
        raise fail(f"unknown --protocol {protocol!r}; choose {' or '.join(PROTOCOL_COLUMNS)}")
    if plot is not None:
        try:
            import matplotlib  # noqa: F401  (checked before the scoring, not after it)
        except ImportError:
            raise fail("--plot needs matplotlib: pip install 'dbd-rt[bench]'") from None
    try:
        stems = read_names(names) if names else None
        total = len(find_pairs(data, stems))
        path = resolve_model(model, choose_backend(model, backend))
        be = open_backend(path, backend)
    except (DatasetError, ModelError, BackendError) as exc:
        raise fail(str(exc)) from None
    methods: dict[str, Any] = {f"dbd-rt ({path.name})": model_predictor(be, imgsz)}
    if baseline:
        if baseline != "hifst":
            raise fail(f"unknown baseline {baseline!r} (available: hifst)")
        try:
            methods["HiFST"] = hifst_predictor()
        except RuntimeError as exc:
            raise fail(str(exc)) from None
    results, timings = _score_methods(methods, data, mask_in_focus, stems, total, per_image)
    be.close()
    if plot is not None:
        plot_pr(results, plot)
        say(f"wrote {plot}")
    doc = {label: {**s.as_dict(), "seconds_per_image": timings[label]} for label, s in results.items()}
    if json_out:
        print(json.dumps(doc, indent=2))
    else:
        print_eval_table(doc, f"{data.name}: {total} images, native mask size, {protocol} protocol", protocol)


# The columns each --protocol shows: (heading, key in the scores).
PROTOCOL_COLUMNS = {
    "paper": [("MAE", "mae"), ("F-beta (mean P/R)", "f_beta"), ("F-beta (mean per image)", "f_beta_mean"), ("max F", "max_f"), ("precision", "precision"), ("recall", "recall")],
    "ddffnet": [("MAE", "mae"), ("F-beta blurred @0.5 (mean per image)", "f_beta_blurred")],
}


def _score_methods(methods: dict[str, Any], data: Path, polarity: MaskPolarity, stems: Any, total: int, per_image: Optional[Path]) -> tuple[dict[str, Any], dict[str, float]]:
    """Each method over the set with a progress bar; warns when the maps look inverted."""
    from bench.evaluate import evaluate_folder
    from runtime.datasets import DatasetError

    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for label, predict in methods.items():
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(label, total=total)
            t0 = time.perf_counter()
            try:
                summary, _ = evaluate_folder(data, polarity, stems, predict, per_image if label.startswith("dbd-rt") else None, on_image=lambda _s: progress.advance(task))
            except DatasetError as exc:
                raise fail(str(exc)) from None
            timings[label] = (time.perf_counter() - t0) / total
        results[label] = summary
        if summary.mae > 0.5:
            # For a map in [0, 1] and a binary mask, MAE against the other polarity is 1 - MAE.
            other = polarity.other().value
            warn(
                f"{label}: MAE {summary.mae:.2f} means the maps mostly say the opposite of the masks; "
                f"if the masks mark in-focus pixels {other}, pass --mask-in-focus {other} (MAE would be {1 - summary.mae:.2f})"
            )
    return results, timings


def print_eval_table(doc: dict[str, Any], title: str, protocol: str) -> None:
    t = Table(title=title)
    columns = PROTOCOL_COLUMNS[protocol]
    for col in ("method", *(c for c, _ in columns), "s/image"):
        t.add_column(col)
    for label, d in doc.items():
        t.add_row(label, *(f"{d[k]:.4f}" for _, k in columns), f"{d['seconds_per_image']:.3f}")
    Console().print(t)


@app.command("batch")
def batch_(
    clips: int = typer.Option(20, min=1, help="Short clips to generate (2 s of 640x480 each, from the bundled photos)."),
    photos: int = typer.Option(50, min=0, help="Photos to generate (640x480)."),
    workers: str = typer.Option("1,2", help="Local worker counts to measure, comma-separated."),
    ray: bool = typer.Option(True, "--ray/--no-ray", help="Also run the largest worker count on a local Ray (the cluster extra), for its overhead."),
    video: bool = typer.Option(True, "--video/--no-video", help="Write overlay videos (as dbd-rt batch does by default)."),
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON on stdout."),
) -> None:
    """Throughput of dbd-rt batch (frames/s and files/min) per worker count, and Ray's overhead
    against local workers on the same inputs, in one run."""
    from bench.batch import batch_throughput

    try:
        counts = [int(w) for w in workers.split(",")]
    except ValueError:
        raise fail(f"--workers takes counts such as 1,2, got {workers!r}") from None
    with tempfile.TemporaryDirectory() as tmp:
        rows = batch_throughput(Path(tmp), clips, photos, counts, ray, video, on_step=say)
    _print_rows(
        rows,
        json_out,
        f"dbd-rt batch: {clips} clips of 60 frames + {photos} photos",
        ("runner", "workers", "seconds", "frames/s", "files/min", "x first"),
        lambda r: [r["runner"], str(r["workers"]), f"{r['seconds']:.1f}", f"{r['frames_per_s']:.1f}", f"{r['files_per_min']:.1f}", f"{r['ratio']:.2f}"],
    )


def _print_rows(rows: list[dict[str, Any]], json_out: bool, title: str, columns: tuple[str, ...], cells: Callable[[dict[str, Any]], list[str]]) -> None:
    """The rows as JSON on stdout (--json), else as a table."""
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(*cells(r))
    Console().print(table)


@app.command("flicker")
def flicker_(
    video: Optional[list[Path]] = typer.Option(None, help="Also measure these clips (repeatable); the bundled pan and two generated clips are always measured."),
    smooth: float = typer.Option(0.7, min=0.05, max=0.95, help="Smoothing strength compared against none (dbd-rt's --smooth)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model (default: the embedded one)."),
    imgsz: int = typer.Option(VIDEO_IMGSZ, min=32, help="Short side of the network input, as dbd-rt video uses."),
    threads: int = typer.Option(0, help="CPU threads (0 = all available)."),
    plot: Optional[Path] = typer.Option(None, help="Also draw the near plane's score over the focus pull, with and without smoothing, to this PNG."),
    json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON on stdout."),
) -> None:
    """How steady the maps are over time, with and without temporal smoothing, and whether the
    smoothed map still follows a real focus change.

    Clips: static (a bundled photo with fresh sensor noise each frame: every change is flicker),
    pan (the bundled clip: flicker measured after optical-flow motion compensation), and focus
    pull (a sharp photo crop held in front of another photo; a thin lens focused on one plane blurs
    the other, and focus jumps near -> far -> near every 30 frames at 30 fps)."""
    from bench.flicker import focus_pull_clip, measure, pull_chart, static_clip
    from runtime.files import write_atomically
    from runtime.smoothing import SmoothingConfig
    from runtime.video_io import read_frames

    try:
        be = open_backend(model, "onnxruntime", BackendOptions(threads=threads, frames_in_flight=1))
    except (ModelError, BackendError) as exc:
        raise fail(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        photos = read_frames(SAMPLE_CLIP, indices=(30, 90, 150))
        clips = {"static": static_clip(Path(tmp) / "static.mp4", photos[2]), "pan": SAMPLE_CLIP}
        for v in video or []:
            if not v.is_file():
                raise fail(f"{v}: no such file")
            clips[v.name] = v
        pull = focus_pull_clip(Path(tmp) / "pull.mp4", photos[0], photos[2])
        try:
            rows, traces = measure(be, clips, pull, SmoothingConfig(strength=smooth), imgsz)
        except VideoError as exc:
            raise fail(str(exc)) from None
        finally:
            be.close()
    if plot is not None:
        chart = pull_chart(traces)
        write_atomically(plot, lambda tmp: cv2.imwrite(str(tmp), chart))
        say(f"wrote {plot}")

    def cells(r: dict[str, Any]) -> list[str]:
        if "raw" in r:
            return [r["clip"] + (f" ({r['cuts']} cuts)" if r["cuts"] else ""), r["smoothing"], f"{r['raw']:.5f}", f"{r['compensated']:.5f}", "", ""]
        stages = " -> ".join(f"{v:.2f}" for v in r["near_plane_score"])
        return [r["clip"], r["smoothing"], f"{r['score_flicker']:.5f} (score)", "", stages, ", ".join(map(str, r["lag_frames"]))]

    _print_rows(
        rows,
        json_out,
        f"Map flicker (mean |change| per frame of the in-focus probability; scene cuts left out) and focus following, smoothing {smooth:g} vs off",
        ("clip", "smoothing", "flicker raw", "after motion comp.", "near-plane score by stage", "lag (frames)"),
        cells,
    )


@app.command("webcam")
def webcam_(
    views: str = typer.Option("overlay,peaking,focus-plane", help="Views to measure, comma-separated."),
    smooth: str = typer.Option("0,0.7", help="Smoothing strengths to measure for each view (0 = off)."),
    assist: bool = typer.Option(True, "--assist/--no-assist", help="Also measure the first view with a region of interest and the magnifier."),
    frames: int = typer.Option(150, min=10, help="Frames shown per run."),
    rounds: int = typer.Option(3, min=1, help="Round-robin runs per setting (medians reported)."),
    threads: int = typer.Option(0, help="CPU threads (0 = all available)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model (default: the embedded one)."),
    json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON on stdout."),
) -> None:
    """End-to-end fps of the live loop (dbd-rt webcam) per view and smoothing, with a 60 fps
    640x480 camera stood in for by a clip of the bundled photos played at that rate."""
    from bench.webcam import LiveSetting, camera_clip, measure_live

    try:
        chosen = [View(v.strip()) for v in views.split(",")]
        strengths = [float(s) for s in smooth.split(",")]
    except ValueError as exc:
        raise fail(f"--views or --smooth: {exc}") from None
    settings = [LiveSetting(v, s, False) for v in chosen for s in strengths]
    if assist:
        settings.append(LiveSetting(chosen[0], strengths[-1], True))
    try:
        be = open_backend(model, "onnxruntime", BackendOptions(threads=threads))
    except (ModelError, BackendError) as exc:
        raise fail(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rows = measure_live(camera_clip(Path(tmp)), be, settings, frames, rounds, on_step=say)
        finally:
            be.close()
    _print_rows(
        rows,
        json_out,
        f"dbd-rt webcam, 640x480 camera at 60 fps: medians of {rounds} round-robin runs of {frames} frames",
        ("view", "smooth", "region + magnifier", "fps", "x first", "post ms", "draw ms"),
        lambda r: [
            r["view"],
            f"{r['smooth']:g}",
            "yes" if r["assist"] else "",
            f"{r['fps']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['stages_ms'].get('postprocess', 0):.1f}",
            f"{r['stages_ms'].get('overlay', 0):.1f}",
        ],
    )
