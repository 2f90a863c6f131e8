"""TensorRT backend: a serialized engine, pycuda page-locked and device buffers, two alternating sets.

Follows the TensorRT 10/11 I/O-tensor API (set_input_shape, set_tensor_address, execute_async_v3).
A dynamic engine runs each frame at the size the runtime chose for it (the frame's aspect ratio,
`--imgsz` on the short side), as ONNX Runtime does: buffers are allocated once for the profile's
largest input and each batch binds its own shape. Two buffer sets let the copy-in and compute of
batch n+1 run on the GPU while the host decodes and draws batch n.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import BackendError, BackendOptions, Maps
from runtime.backends.cuda_context import PrimaryContext, import_pycuda, import_tensorrt
from runtime.engine_sidecar import EngineSidecar, mismatches, rebuild_hint
from runtime.model_info import DEFAULT_MODEL_FP16, INPUT_NAME, OUTPUT_NAMES, ModelInfo

_STAGES = ("host_to_device", "compute", "device_to_host")


@dataclass
class _BufferSet:
    host_in: Any  # flat page-locked uint8, sized for the largest input
    dev_in: Any
    host_out: dict[str, Any]  # flat page-locked, sized for the largest output
    dev_out: dict[str, Any]
    events: list[Any]  # recorded before the upload, after it, after compute, after the download
    out_shapes: dict[str, tuple[int, ...]] | None = None  # of the batch in flight


class TensorRTBackend:
    name = "tensorrt"
    device = "cuda"
    in_flight = 2

    def __init__(self, path: Path, gpu: int = 0, rebuild: bool = False) -> None:
        trt = import_tensorrt()
        self._cuda = import_pycuda()
        self._gpu = PrimaryContext(self._cuda, gpu)
        path = Path(path)
        try:
            sidecar = EngineSidecar.read(path)
        except (FileNotFoundError, ValueError) as exc:
            raise BackendError(str(exc)) from None
        problems = mismatches(sidecar, trt.__version__, self._gpu.gpu_name, self._gpu.compute_capability)
        if problems and rebuild:
            sidecar = _rebuild(path, sidecar, gpu)
        elif problems:
            raise BackendError(f"{path}: engine does not fit this machine ({'; '.join(problems)}); {rebuild_hint(path, sidecar.onnx_path or 'MODEL.onnx')}")
        self.precision = sidecar.precision
        self.info = ModelInfo(path, None, {"tensorrt": sidecar.tensorrt_version, "gpu": sidecar.gpu_name, "precision": sidecar.precision, "onnx": sidecar.onnx_path})
        with self._gpu:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self._engine is None:
                raise BackendError(f"{path}: TensorRT could not deserialize the engine; {rebuild_hint(path, sidecar.onnx_path or 'MODEL.onnx')}")
            self._context = self._engine.create_execution_context()
            self._check_tensors(trt, path)
            self.min_shape, _, self.max_shape = self._profile()
            static = tuple(self._engine.get_tensor_shape(INPUT_NAME))
            self.input_size = None if any(d < 0 for d in static) else (int(static[1]), int(static[2]))
            self.info = ModelInfo(path, self.input_size, self.info.metadata)
            self._out_dtype = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in OUTPUT_NAMES}
            self.stream = self._cuda.Stream()
            self._sets = [self._allocate() for _ in range(self.in_flight)]
        self._next = 0
        self._bound: tuple[int, ...] | None = None
        self._pending: deque[_BufferSet] = deque()
        self._device_ms = dict.fromkeys(_STAGES, 0.0)
        self._batches = 0

    @classmethod
    def open(cls, path: Path, options: BackendOptions) -> TensorRTBackend:
        """An .engine as it is; an .onnx through the engine built from it on this GPU (cached)."""
        if path.suffix.lower() == ".onnx":
            path = engine_for_onnx(path, options.gpu)
        return cls(path, gpu=options.gpu, rebuild=options.rebuild)

    @staticmethod
    def default_model() -> Path:
        return DEFAULT_MODEL_FP16

    def describe(self) -> str:
        size = "any size" if self.input_size is None else "{}x{}".format(*self.input_size)
        return f"{self._gpu.gpu_name}, {self.precision}, {self.in_flight} buffer sets, {size} up to {self.max_shape[1]}x{self.max_shape[2]}"

    def _check_tensors(self, trt: Any, path: Path) -> None:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if INPUT_NAME not in names or any(n not in names for n in OUTPUT_NAMES):
            raise BackendError(f"{path}: not a dbd-rt engine (tensors {names}; expected {INPUT_NAME} -> {', '.join(OUTPUT_NAMES)})")
        if engine.get_tensor_mode(INPUT_NAME) != trt.TensorIOMode.INPUT or engine.get_tensor_dtype(INPUT_NAME) != trt.DataType.UINT8:
            raise BackendError(f"{path}: the engine's {INPUT_NAME} is not a uint8 input")
        shape = tuple(engine.get_tensor_shape(INPUT_NAME))
        if len(shape) != 4 or shape[3] != 3:
            raise BackendError(f"{path}: the engine's {INPUT_NAME} is {shape}; expected [N, H, W, 3]")

    def _profile(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        static = tuple(int(d) for d in self._engine.get_tensor_shape(INPUT_NAME))
        if all(d >= 0 for d in static):
            return static, static, static
        lo, opt, hi = self._engine.get_tensor_profile_shape(INPUT_NAME, 0)
        return tuple(lo), tuple(opt), tuple(hi)

    def _allocate(self) -> _BufferSet:
        cuda = self._cuda
        _, h, w, _ = self.max_shape
        host_in = cuda.pagelocked_empty(int(np.prod(self.max_shape)), dtype=np.uint8)
        host_out = {n: cuda.pagelocked_empty(h * w, dtype=self._out_dtype[n]) for n in OUTPUT_NAMES}
        return _BufferSet(
            host_in,
            cuda.mem_alloc(host_in.nbytes),
            host_out,
            {n: cuda.mem_alloc(a.nbytes) for n, a in host_out.items()},
            [cuda.Event() for _ in range(4)],
        )

    def stage_ms(self) -> dict[str, float]:
        """Mean GPU time per batch of the upload, the engine and the download (from CUDA events)."""
        return {k: v / max(1, self._batches) for k, v in self._device_ms.items()}

    def _bind(self, shape: tuple[int, ...]) -> None:
        lo, hi = self.min_shape, self.max_shape
        if shape[0] != 1 or len(shape) != 4 or shape[3] != 3:
            raise BackendError(f"tensorrt backend: frames {shape}; the engine takes one (1, H, W, 3) uint8 frame at a time")
        if not all(a <= s <= b for a, s, b in zip(lo[1:3], shape[1:3], hi[1:3])):
            raise BackendError(
                f"tensorrt backend: a {shape[1]}x{shape[2]} input is outside the engine's profile "
                f"({lo[1]}x{lo[2]} to {hi[1]}x{hi[2]}); lower --imgsz or rebuild with dbd-export trt --max-side"
            )
        if shape != self._bound:
            if not self._context.set_input_shape(INPUT_NAME, shape):
                raise BackendError(f"tensorrt backend: TensorRT refused the input shape {shape}")
            self._bound = shape

    def submit(self, frames: np.ndarray) -> None:
        if len(self._pending) == self.in_flight:
            raise BackendError("tensorrt backend: collect() before submitting more than two batches")
        if frames.dtype != np.uint8:
            raise BackendError(f"tensorrt backend: frames are {frames.dtype}; expected uint8")
        buf = self._sets[self._next]
        self._next = (self._next + 1) % self.in_flight
        cuda, shape = self._cuda, tuple(frames.shape)
        with self._gpu:
            self._bind(shape)
            host_in = buf.host_in[: frames.size]
            np.copyto(host_in.reshape(shape), frames)
            buf.out_shapes = {n: tuple(self._context.get_tensor_shape(n)) for n in OUTPUT_NAMES}
            buf.events[0].record(self.stream)
            cuda.memcpy_htod_async(buf.dev_in, host_in, self.stream)
            buf.events[1].record(self.stream)
            self._context.set_tensor_address(INPUT_NAME, int(buf.dev_in))
            for name in OUTPUT_NAMES:
                self._context.set_tensor_address(name, int(buf.dev_out[name]))
            if not self._context.execute_async_v3(stream_handle=self.stream.handle):
                raise BackendError("tensorrt backend: execute_async_v3 failed (TensorRT's log above says why)")
            buf.events[2].record(self.stream)
            for name in OUTPUT_NAMES:
                count = int(np.prod(buf.out_shapes[name]))
                cuda.memcpy_dtoh_async(buf.host_out[name][:count], buf.dev_out[name], self.stream)
            buf.events[3].record(self.stream)
        self._pending.append(buf)

    def collect(self) -> Maps:
        buf = self._pending.popleft()
        assert buf.out_shapes is not None
        with self._gpu:
            buf.events[3].synchronize()
            for key, (a, b) in zip(_STAGES, ((0, 1), (1, 2), (2, 3))):
                self._device_ms[key] += buf.events[a].time_till(buf.events[b])
        self._batches += 1
        maps = [buf.host_out[n][: int(np.prod(buf.out_shapes[n]))].reshape(buf.out_shapes[n]).astype(np.float32) for n in OUTPUT_NAMES]
        return Maps(*maps)

    def close(self) -> None:
        """Release in dependency order while the context is current: buffers, then the execution
        context, the engine and the runtime (the reverse of how they were made)."""
        if not hasattr(self, "_sets"):
            return
        with self._gpu:
            self.stream.synchronize()
            self._pending.clear()
            for buf in self._sets:
                buf.dev_in.free()
                for d in buf.dev_out.values():
                    d.free()
            self._sets = []
            del self._context, self._engine, self._runtime


def _rebuild(path: Path, sidecar: EngineSidecar, gpu: int) -> EngineSidecar:
    """Build the engine again on this GPU from the ONNX it came from, with the same profile."""
    from runtime.backends.tensorrt_build import EngineBuildConfig, build_engine

    source = Path(sidecar.onnx_path)
    if not sidecar.onnx_path or not source.is_file():
        raise BackendError(f"{path}: cannot rebuild, the ONNX it was built from ({sidecar.onnx_path or 'unrecorded'}) is not here; {rebuild_hint(path)}")
    lo, opt, hi = sidecar.input_shapes[INPUT_NAME]
    cfg = EngineBuildConfig(opt=(int(opt[1]), int(opt[2])), min_side=int(min(lo[1:3])), max_side=int(max(hi[1:3])), gpu=gpu)
    return build_engine(source, path, cfg)


def engine_for_onnx(onnx_path: Path, gpu: int = 0, note: Callable[[str], None] | None = None) -> Path:
    """The engine built from `onnx_path` for this GPU and TensorRT, built now if not cached yet."""
    from runtime.backends.tensorrt_build import EngineBuildConfig, build_engine, cached_engine_path

    trt = import_tensorrt()
    cfg = EngineBuildConfig(gpu=gpu)
    device = PrimaryContext(import_pycuda(), gpu)
    path = cached_engine_path(onnx_path, trt.__version__, device.gpu_name, cfg)
    if not path.is_file():
        if note:
            note(f"building a TensorRT engine for {onnx_path.name} on {device.gpu_name} (once; cached as {path})")
        build_engine(onnx_path, path, cfg)
    return path
