"""`dbd-export`: checkpoint -> ONNX -> FP16 TensorRT engine, and the engine-vs-ONNX accuracy check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Export a trained checkpoint to ONNX and to a TensorRT engine.")
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(2)


@app.command()
def onnx(
    checkpoint: Path = typer.Argument(..., help="A dbd-train checkpoint (best.pt or last.pt)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the .onnx file."),
    imgsz: str = typer.Option("320", help="Input size: 320 or HxW such as 320x480 (multiples of 32)."),
    dynamic: bool = typer.Option(False, help="Make batch, height and width dynamic."),
    opset: int = typer.Option(17, min=17, help="ONNX opset (>= 17)."),
    simplify: bool = typer.Option(True, help="Fold constants and shape arithmetic with onnxslim."),
) -> None:
    """uint8 BGR frames [N, H, W, 3] in; in_focus and depth [N, 1, H, W] out."""
    from export.onnx_export import OnnxExportConfig, export_onnx, parse_imgsz

    try:
        cfg = OnnxExportConfig(imgsz=parse_imgsz(imgsz), dynamic=dynamic, opset=opset, simplify=simplify)
        if not out.parent.is_dir():
            raise ValueError(f"{out}: the output folder {out.parent} does not exist")
        proto = export_onnx(checkpoint, out, cfg)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    err.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(proto.graph.node)} nodes, opset {opset}{', dynamic' if dynamic else ''})")


@app.command()
def fp16(
    model: Path = typer.Argument(..., help="An FP32 dbd-rt ONNX model."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the mixed FP16 ONNX."),
) -> None:
    """Strongly typed FP16 ONNX (inputs/outputs, normalisation and final sigmoid stay FP32)."""
    import onnx as onnx_lib

    from export.fp16 import convert_to_fp16

    if not model.is_file():
        raise _fail(f"{model}: file not found")
    converted = convert_to_fp16(onnx_lib.load(str(model)))
    onnx_lib.checker.check_model(converted)
    onnx_lib.save(converted, str(out))
    err.print(f"wrote {out}")


@app.command()
def trt(
    model: Path = typer.Argument(..., help="The ONNX model to build from."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the .engine (a .json sidecar goes beside it)."),
    fp16: bool = typer.Option(True, "--fp16/--fp32", help="FP16 (strongly typed mixed precision) or FP32 engine."),
    workspace: float = typer.Option(2.0, help="Builder workspace limit in GiB."),
    timing_cache: Optional[Path] = typer.Option(None, help="Timing cache file to reuse and update across builds."),
    imgsz: str = typer.Option(
        "320x416", help="HxW the engine runs at, from a dynamic ONNX (multiples of 32; a static ONNX keeps its own). Default: a 4:3 frame at 320 on the short side."
    ),
) -> None:
    """Build a serialized TensorRT engine on this machine's GPU."""
    from export.onnx_export import parse_imgsz
    from runtime.backends.base import BackendError

    if not model.is_file():
        raise _fail(f"{model}: file not found")
    try:
        size = parse_imgsz(imgsz)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        from export.tensorrt_build import EngineBuildConfig, build_engine

        sidecar = build_engine(model, out, EngineBuildConfig(fp16=fp16, workspace_gib=workspace, timing_cache=timing_cache, imgsz=size))
    except BackendError as exc:
        raise _fail(f"cannot build a TensorRT engine here: {exc}") from None
    except RuntimeError as exc:
        raise _fail(str(exc)) from None
    err.print(f"wrote {out} ({sidecar.precision}, TensorRT {sidecar.tensorrt_version}, {sidecar.gpu_name}, {sidecar.build_seconds:.0f} s)")


@app.command()
def check(
    engine: Path = typer.Argument(..., help="The engine (or an FP16 ONNX) to check."),
    reference: Path = typer.Argument(..., help="The FP32 ONNX it was built from."),
    frames: Optional[Path] = typer.Option(None, help="A folder of photos or a video to compare on (default: the bundled sample clip)."),
    count: int = typer.Option(16, help="How many frames to compare."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run both models on the same real frames; report max/mean |difference| of in_focus (FP16 target: mean <= 1e-2)."""
    from export.accuracy import compare_models, sample_frames
    from runtime.backends import BackendError
    from runtime.model_info import ModelError
    from runtime.video_io import VideoError

    try:
        images = sample_frames(frames, count)
        result = compare_models(engine, reference, images)
    except (BackendError, ModelError, VideoError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    if json_out:
        print(json.dumps(result))
    else:
        verdict = "[green]ok[/]" if result["in_focus_mean_abs"] <= 1e-2 else "[red]above the 1e-2 target[/]"
        err.print(
            f"{result['frames']} frames: in_focus max |diff| {result['in_focus_max_abs']:.2e}, mean {result['in_focus_mean_abs']:.2e} ({verdict}); "
            f"depth max {result['depth_max_abs']:.2e}, mean {result['depth_mean_abs']:.2e}"
        )
    if result["in_focus_mean_abs"] > 1e-2:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
