"""ONNX -> serialized TensorRT engine (TensorRT 10 and 11 Python API), with its sidecar JSON.

The engine is built from the ONNX as it is, strongly typed: an FP16 engine comes from a mixed-FP16
ONNX (the shipped `dbd_lite0_320_fp16.onnx`, or `dbd-export fp16`), never from builder flags.
TensorRT 11 removed BuilderFlag.FP16 and weak typing; on 10 the STRONGLY_TYPED network flag opts in
(on 11 it is accepted and always on). Needs `tensorrt`, `pycuda` and `onnx`; never PyTorch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.backends.base import BackendError
from runtime.backends.cuda_context import PrimaryContext, import_pycuda, import_tensorrt
from runtime.cache import cache_dir
from runtime.engine_sidecar import EngineSidecar
from runtime.files import write_bytes_atomically
from runtime.model_info import INPUT_NAME, STRIDE


class EngineBuildError(BackendError):
    """The ONNX breaks TensorRT's rules, or TensorRT could not build it; the message says which."""


@dataclass(frozen=True)
class EngineBuildConfig:
    # The input (height, width) TensorRT tunes its kernels for: a 16:9 frame at the video short
    # side (dbd-rt video's --imgsz 256). Every size in [min_side, max_side] runs, at other speeds.
    opt: tuple[int, int] = (256, 448)
    min_side: int = STRIDE
    max_side: int = 1280
    workspace_gib: float = 2.0
    timing_cache: Path | None = None
    gpu: int = 0

    def profile(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NHWC input shapes of the optimisation profile, batch 1."""
        h, w = self.opt
        top = max(self.max_side, h, w)
        return (1, self.min_side, self.min_side, 3), (1, h, w, 3), (1, top, top, 3)


def _input_shape(model: Any) -> tuple[int, ...]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_onnx(onnx_path: Path) -> Any:
    """The parsed ONNX, or EngineBuildError naming the first TensorRT rule it breaks."""
    import onnx

    from runtime.backends.tensorrt_rules import tensorrt_problems

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:
        raise EngineBuildError(f"{onnx_path}: not a readable ONNX model ({type(exc).__name__})") from None
    problems = tensorrt_problems(model)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EngineBuildError(f"{onnx_path}: TensorRT would refuse this graph: {problems[0]}{more}")
    return model


def build_engine(onnx_path: Path, out: Path, cfg: EngineBuildConfig = EngineBuildConfig(), log: Callable[[str], None] | None = None) -> EngineSidecar:
    """Check, parse, build and write `out` (renamed into place when complete) and its sidecar."""
    from runtime.backends.tensorrt_rules import onnx_precision

    onnx_path, out = Path(onnx_path), Path(out)
    t0 = time.perf_counter()
    model = check_onnx(onnx_path)
    static = _input_shape(model)
    dynamic = any(d < 0 for d in static)
    trt = import_tensorrt()
    gpu = PrimaryContext(import_pycuda(), cfg.gpu)
    with gpu:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineBuildError(f"{onnx_path}: TensorRT's ONNX parser refused it: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gib * (1 << 30)))
        save_cache = _use_timing_cache(config, cfg.timing_cache, log)
        if dynamic:
            profile = builder.create_optimization_profile()
            profile.set_shape(INPUT_NAME, *cfg.profile())
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineBuildError(f"{onnx_path}: TensorRT could not build an engine (its log above says why)")
        write_bytes_atomically(out, bytes(serialized))
        if save_cache and cfg.timing_cache is not None:
            write_bytes_atomically(cfg.timing_cache, bytes(config.get_timing_cache().serialize()))
    shapes = [list(s) for s in cfg.profile()] if dynamic else [list(static)] * 3
    sidecar = EngineSidecar(
        tensorrt_version=trt.__version__,
        gpu_name=gpu.gpu_name,
        compute_capability=gpu.compute_capability,
        precision=onnx_precision(model),
        input_shapes={INPUT_NAME: shapes},
        onnx_sha256=file_sha256(onnx_path),
        build_seconds=round(time.perf_counter() - t0, 2),
        built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        onnx_path=str(onnx_path.resolve()),
    )
    sidecar.write(out)
    return sidecar


def _use_timing_cache(config: Any, path: Path | None, log: Callable[[str], None] | None) -> bool:
    """Reuse a timing cache across builds (kernel timing is the slow part of a build). Returns whether
    the file may be written back: not when it holds another GPU's or TensorRT's timings, which
    set_timing_cache refuses (returns False) and which would otherwise be overwritten."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    if config.set_timing_cache(config.create_timing_cache(data), False):
        return True
    if log:
        log(f"{path}: timing cache made for another GPU or TensorRT version; building without it and leaving the file as it is")
    if not config.set_timing_cache(config.create_timing_cache(b""), False):
        raise EngineBuildError("TensorRT refused an empty timing cache")
    return False


def cached_engine_path(onnx_path: Path, tensorrt_version: str, gpu_name: str, cfg: EngineBuildConfig) -> Path:
    """Where `dbd-rt --backend tensorrt` keeps the engine it built for an ONNX on this GPU."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()
    opt = f"{cfg.opt[0]}x{cfg.opt[1]}-max{cfg.max_side}"
    return cache_dir("engines") / f"{Path(onnx_path).stem}-{file_sha256(onnx_path)[:12]}-{gpu}-trt{tensorrt_version}-{opt}.engine"
