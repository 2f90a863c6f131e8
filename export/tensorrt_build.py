"""ONNX -> serialized TensorRT engine (TensorRT 10 and 11 Python API), with its sidecar JSON.

FP16 is built the same way on both versions: from our strongly typed mixed FP16 ONNX with the
STRONGLY_TYPED network flag (TensorRT 11 removed BuilderFlag.FP16 and weak typing; on 10 the flag
opts in). FP32 builds the original ONNX as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from export.fp16 import convert_to_fp16
from runtime.backends.tensorrt_backend import current_gpu, import_tensorrt
from runtime.engine_sidecar import EngineSidecar
from runtime.model_info import INPUT_NAME


@dataclass(frozen=True)
class EngineBuildConfig:
    fp16: bool = True
    workspace_gib: float = 2.0
    timing_cache: Path | None = None
    # For a dynamic ONNX, the (height, width) the engine is tuned for and the runtime runs at: the
    # 320-short-side input of a 4:3 frame, as `dbd-rt image` sizes it.
    imgsz: tuple[int, int] = (320, 416)

    def profile(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NHWC input shapes of the optimization profile."""
        h, w = self.imgsz
        return (1, 192, 192, 3), (1, h, w, 3), (1, max(640, h), max(640, w), 3)


def _static_shape(model: onnx.ModelProto) -> tuple[int, ...] | None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    return None if any(d < 0 for d in shape) else shape


def build_engine(onnx_path: Path, out: Path, cfg: EngineBuildConfig = EngineBuildConfig()) -> EngineSidecar:
    trt, cuda = import_tensorrt()
    t0 = time.perf_counter()
    source = onnx.load(str(onnx_path))
    model = convert_to_fp16(source) if cfg.fp16 else source
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if cfg.fp16:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gib * (1 << 30)))
    cache = _load_timing_cache(config, cfg.timing_cache)
    static = _static_shape(source)
    shapes = [list(static)] * 3 if static else [list(s) for s in cfg.profile()]
    if static is None:
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, *cfg.profile())
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT could not build an engine (see the log above)")
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(out)
    if cfg.timing_cache is not None:
        _save_timing_cache(config.get_timing_cache() or cache, cfg.timing_cache)
    gpu_name, capability = current_gpu(cuda)
    sidecar = EngineSidecar(
        tensorrt_version=trt.__version__,
        gpu_name=gpu_name,
        compute_capability=capability,
        precision="fp16" if cfg.fp16 else "fp32",
        input_shapes={INPUT_NAME: shapes},
        onnx_sha256=hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        build_seconds=round(time.perf_counter() - t0, 2),
        built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        onnx_path=str(Path(onnx_path).resolve()),
    )
    sidecar.write(out)
    return sidecar


def _load_timing_cache(config: Any, path: Path | None) -> Any:
    """Reuse a timing cache across builds: kernel timings are the slow part of a build."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _save_timing_cache(cache: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(bytes(cache.serialize()))
    tmp.replace(path)
