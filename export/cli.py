"""`dbd-export`: checkpoint -> ONNX -> mixed FP16 ONNX -> TensorRT engine, and the accuracy check.

`onnx` and `fp16` need PyTorch (the train and fp16 extras); `trt` needs only TensorRT, pycuda and
onnx (the trt extra), so it runs on a GPU machine without PyTorch, from the shipped FP16 ONNX.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from runtime.console import EXIT_BAD_INPUT, err, fail, say

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Export a trained checkpoint to ONNX, mixed FP16 ONNX and a TensorRT engine.")


@app.command()
def onnx(
    checkpoint: Path = typer.Argument(..., help="A dbd-train checkpoint (best.pt or last.pt)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the .onnx file."),
    size: str = typer.Option("320", "--size", help="Example input HxW (or one side for a square), multiples of 32; a static graph's fixed size."),
    dynamic: bool = typer.Option(False, help="Make batch, height and width dynamic (the shipped model is)."),
    opset: int = typer.Option(17, min=17, max=20, help="ONNX opset (17-20; TensorRT 10 reads up to 20)."),
    simplify: bool = typer.Option(True, help="Fold constants with onnxslim."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write OUT_fp16.onnx, converted by ModelOpt AutoCast (the fp16 extra)."),
) -> None:
    """uint8 BGR frames [N, H, W, 3] in; in_focus and depth [N, 1, H, W] out."""
    from export.onnx_export import OnnxExportConfig, export_onnx
    from runtime.model_info import parse_hw

    try:
        cfg = OnnxExportConfig(size=parse_hw(size), dynamic=dynamic, opset=opset, simplify=simplify)
        if not out.parent.is_dir():
            raise ValueError(f"{out}: the output folder {out.parent} does not exist")
        proto = export_onnx(checkpoint, out, cfg)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    say(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(proto.graph.node)} nodes, opset {opset}{', dynamic' if dynamic else ''})")
    if fp16:
        _fp16(out, out.with_name(f"{out.stem}_fp16.onnx"))


def _fp16(model: Path, out: Path) -> None:
    from export.precision import convert_fp16

    try:
        converted = convert_fp16(model, out)
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    halves = sum(1 for t in converted.graph.initializer if t.data_type == 10)
    say(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {halves} FP16 weights; passes the TensorRT rule check)")


@app.command()
def fp16(
    model: Path = typer.Argument(..., help="An FP32 dbd-rt ONNX model."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the mixed FP16 ONNX."),
) -> None:
    """Mixed FP16 ONNX for strongly typed TensorRT, by ModelOpt AutoCast calibrated on the bundled clip."""
    if not model.is_file():
        raise fail(f"{model}: file not found")
    _fp16(model, out)


@app.command()
def trt(
    model: Optional[Path] = typer.Argument(None, help="The ONNX to build from. Default: the shipped mixed-FP16 model (--fp32: the FP32 one)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the .engine (a .json sidecar goes beside it)."),
    fp32: bool = typer.Option(False, "--fp32", help="With no MODEL: build from the shipped FP32 ONNX instead of the FP16 one. An engine's precision is its ONNX's."),
    opt: str = typer.Option("256x448", help="Input HxW TensorRT tunes for (default: a 16:9 frame at dbd-rt video's --imgsz 256). A static ONNX keeps its own size."),
    max_side: int = typer.Option(1280, min=32, help="Largest input side the engine accepts (the optimisation profile's max)."),
    workspace: float = typer.Option(2.0, help="Builder workspace limit in GiB."),
    timing_cache: Optional[Path] = typer.Option(None, help="Timing cache file to reuse and update across builds (left alone if made for another GPU)."),
    gpu: int = typer.Option(0, min=0, help="CUDA device index to build on."),
) -> None:
    """Build a serialized TensorRT engine on this machine's GPU (checks TensorRT's rules first)."""
    from runtime.backends.base import BackendError
    from runtime.backends.tensorrt_build import EngineBuildConfig, build_engine
    from runtime.model_info import DEFAULT_MODEL, DEFAULT_MODEL_FP16, parse_hw

    source = model or (DEFAULT_MODEL if fp32 else DEFAULT_MODEL_FP16)
    if not source.is_file():
        raise fail(f"{source}: file not found")
    if not out.parent.is_dir():
        raise fail(f"{out}: the output folder {out.parent} does not exist")
    try:
        cfg = EngineBuildConfig(opt=parse_hw(opt), max_side=max_side, workspace_gib=workspace, timing_cache=timing_cache, gpu=gpu)
        sidecar = build_engine(source, out, cfg, log=lambda m: err.print(f"[yellow]note:[/] {m}", markup=True))
    except ValueError as exc:
        raise fail(str(exc)) from None
    except BackendError as exc:
        raise fail(f"cannot build a TensorRT engine: {exc}") from None
    say(f"wrote {out} ({sidecar.precision}, TensorRT {sidecar.tensorrt_version}, {sidecar.gpu_name}, {sidecar.build_seconds:.0f} s)")


@app.command()
def check(
    candidate: Path = typer.Argument(..., help="The engine (or an FP16 ONNX) to check."),
    reference: Path = typer.Argument(..., help="The FP32 ONNX it was made from."),
    frames: Optional[Path] = typer.Option(None, help="A folder of photos or a video to compare on (default: the bundled sample clip)."),
    count: int = typer.Option(16, min=1, help="How many frames to compare."),
    imgsz: int = typer.Option(256, min=32, help="Short side of the network input, as dbd-rt video sizes frames."),
    gpu: int = typer.Option(0, min=0, help="CUDA device index for an engine."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Run both models on the same real frames; report max/mean |difference| of in_focus (target: mean <= 1e-2; exit 1 above).

    For layer-by-layer comparisons on a GPU machine, NVIDIA Polygraphy does it: polygraphy run
    MODEL.onnx --trt --onnxrt (pip install polygraphy)."""
    from export.accuracy import compare_models, sample_frames
    from runtime.backends import BackendError, BackendOptions
    from runtime.model_info import ModelError
    from runtime.video_io import VideoError

    try:
        images = sample_frames(frames, count)
        result = compare_models(candidate, reference, images, imgsz, BackendOptions(gpu=gpu))
    except (BackendError, ModelError, VideoError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
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


__all__ = ["app", "EXIT_BAD_INPUT"]
