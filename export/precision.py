"""FP32 ONNX -> mixed FP16 ONNX with NVIDIA ModelOpt AutoCast, and an FP16-rounding emulation to
measure what the conversion costs in accuracy on a CPU.

AutoCast (`nvidia-modelopt`, the `fp16` extra) converts for strongly typed TensorRT networks:
graph inputs and outputs keep their types and casts sit on every FP32/FP16 boundary. It is
calibrated on real frames of the bundled clip (a uint8 input cannot be calibrated on random data).
We keep two kinds of node FP32 (KEEP_FP32_OPS); measured on the shipped model with the emulation
below, AutoCast's default (everything FP16) and ours both stay near 4e-4 mean |d in_focus|.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from runtime.backends.tensorrt_rules import tensorrt_problems
from runtime.files import write_atomically
from runtime.model_info import INPUT_NAME, OUTPUT_NAMES, SAMPLE_CLIP
from runtime.video_io import read_frames

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
# Reductions: a mean over a 320x320 map sums past FP16's 65504 (tensorrt_rules [range]). Sigmoid:
# the probabilities near 1 that the adaptive threshold separates are 5e-4 apart in FP16.
KEEP_FP32_OPS = ("ReduceMean", "ReduceSum", "GlobalAveragePool", "Sigmoid")
# One frame of each of the three photos in the bundled clip (it holds each for 60 frames).
CALIBRATION_FRAMES = (30, 90, 150)
FP16_INSTALL = "FP16 conversion needs NVIDIA ModelOpt: pip install 'dbd-rt[fp16]' (it needs PyTorch; the shipped dbd_lite0_320_fp16.onnx needs nothing)"


def clip_frames(indices: tuple[int, ...] = CALIBRATION_FRAMES, clip: Path = SAMPLE_CLIP) -> list[np.ndarray]:
    """BGR frames of a video at the given indices."""
    return read_frames(clip, indices=indices)


def calibration_batch(size: tuple[int, int] = (256, 352)) -> np.ndarray:
    """The calibration input: the clip's frames at the video input size, (N, H, W, 3) uint8."""
    h, w = size
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in clip_frames()])


def convert_fp16(source: Path, out: Path, calibration: np.ndarray | None = None) -> onnx.ModelProto:
    """Mixed FP16 copy of `source` at `out` (written under a temporary name, then renamed)."""
    try:
        from modelopt.onnx.autocast import configure_logging, convert_to_mixed_precision
    except ImportError:
        raise RuntimeError(FP16_INSTALL) from None
    # Its per-node INFO lines would bury ours; what it decided is checked below instead.
    logging.getLogger("modelopt.onnx").setLevel(logging.ERROR)
    configure_logging(logging.ERROR)
    batch = calibration_batch() if calibration is None else calibration
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "calibration.npz"
        np.savez(npz, **{INPUT_NAME: batch})
        model = convert_to_mixed_precision(
            onnx_path=str(source),
            low_precision_type="fp16",
            keep_io_types=True,
            calibration_data=str(npz),
            op_types_to_exclude=list(KEEP_FP32_OPS),
        )
    meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    meta["precision"] = f"fp16 (ModelOpt AutoCast; FP32 kept for {', '.join(KEEP_FP32_OPS)})"
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    del model.graph.value_info[:]  # inferred again by every consumer; only size here
    problems = tensorrt_problems(model)
    if problems:
        raise RuntimeError(f"{source}: the FP16 conversion breaks a TensorRT rule: {problems[0]}")
    onnx.checker.check_model(model)
    write_atomically(out, lambda tmp: onnx.save(model, str(tmp)))
    return model


def emulate_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An FP32 graph that rounds every tensor the FP16 graph holds in FP16 through FP16.

    ONNX Runtime's CPU provider has FP16 kernels for few ops and runs the rest in FP32 behind its
    own casts, so running the FP16 graph itself does not show what FP16 storage costs. Here every
    FP16 weight becomes its exact FP32 value and every FP16 result is cast to FP16 and back, so each
    op computes in FP32 on FP16-rounded inputs: storage rounding exactly, not FP16 accumulation.
    Run it with graph optimisations off, so no optimiser removes the rounding casts.
    """
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    inits = [numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name) if t.data_type == HALF else t for t in g.initializer]
    del g.initializer[:]
    g.initializer.extend(inits)
    nodes: list[onnx.NodeProto] = []
    for node in g.node:
        if node.op_type == "Constant" and node.attribute[0].type == onnx.AttributeProto.TENSOR and node.attribute[0].t.data_type == HALF:
            t = node.attribute[0].t
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
        rounded = [i for i, o in enumerate(node.output) if types.get(o) == HALF]
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == HALF:
                a.i = FLOAT
        nodes.append(node)
        for i in rounded:
            name = node.output[i]
            node.output[i] = f"{name}__exact"
            nodes.append(helper.make_node("Cast", [f"{name}__exact"], [f"{name}__half"], to=HALF))
            nodes.append(helper.make_node("Cast", [f"{name}__half"], [name], to=FLOAT))
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return model


def _session(model: onnx.ModelProto | Path, optimise: bool = True) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def fp16_rounding_error(fp32: Path, fp16: Path, frames: list[np.ndarray], sizes: tuple[tuple[int, int], ...]) -> dict[str, dict[str, float]]:
    """Mean and max |in_focus(FP32) - in_focus(FP16 emulated)| over `frames` at each (H, W)."""
    ref, emulated = _session(fp32), _session(emulate_fp16(onnx.load(str(fp16))), optimise=False)
    out = {}
    for h, w in sizes:
        diffs = []
        for frame in frames:
            x = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)[None]
            a = ref.run([OUTPUT_NAMES[0]], {INPUT_NAME: x})[0]
            b = emulated.run([OUTPUT_NAMES[0]], {INPUT_NAME: x})[0]
            diffs.append(np.abs(a - b).ravel())
        d = np.concatenate(diffs)
        out[f"{h}x{w}"] = {"in_focus_mean_abs": float(d.mean()), "in_focus_max_abs": float(d.max())}
    return out
