"""TensorRT backend: a serialized engine, pycuda page-locked/device buffers, two alternating sets.

Follows the TensorRT 10/11 I/O-tensor API (set_tensor_address + execute_async_v3). Two buffer sets
let the copy-in and compute of batch n+1 run on the GPU while the host decodes and draws batch n.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import BackendError, Maps
from runtime.engine_sidecar import EngineSidecar, mismatches, rebuild_hint
from runtime.model_info import INPUT_NAME, OUTPUT_NAMES, ModelInfo


def import_tensorrt() -> tuple[Any, Any]:
    """(tensorrt, pycuda.driver) with a CUDA context made current, or a BackendError saying why not."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError("TensorRT is not installed: pip install 'dbd-rt[trt]' on a machine with an NVIDIA GPU") from None
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            raise BackendError("no CUDA GPU is visible to pycuda")
        import pycuda.autoinit  # noqa: F401  (creates and pushes the context for device 0)
    except ImportError:
        raise BackendError("pycuda is not installed: pip install 'dbd-rt[trt]'") from None
    except Exception as exc:  # pycuda raises its own LogicError/RuntimeError without a GPU or driver
        if isinstance(exc, BackendError):
            raise
        raise BackendError(f"no usable CUDA GPU ({type(exc).__name__}: {exc})") from None
    return trt, cuda


def current_gpu(cuda: Any) -> tuple[str, str]:
    dev = cuda.Context.get_device()
    major, minor = dev.compute_capability()
    return dev.name(), f"{major}.{minor}"


@dataclass
class _BufferSet:
    host_in: Any
    dev_in: Any
    host_out: dict[str, Any]
    dev_out: dict[str, Any]
    # cuda.Events recorded before the upload, after it, after compute, after the download.
    events: list[Any]


class TensorRTBackend:
    name = "tensorrt"
    in_flight = 2

    def __init__(self, path: Path, batch: int = 1, rebuild: bool = False) -> None:
        trt, cuda = import_tensorrt()
        self._cuda = cuda
        path = Path(path)
        sidecar = EngineSidecar.read(path)
        gpu_name, capability = current_gpu(cuda)
        problems = mismatches(sidecar, trt.__version__, gpu_name, capability)
        if problems and rebuild:
            sidecar = self._rebuild(path, sidecar)
        elif problems:
            raise BackendError(f"{path}: engine does not fit this machine ({'; '.join(problems)}); {rebuild_hint(path, sidecar.onnx_path or 'MODEL.onnx')}")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendError(f"{path}: TensorRT could not deserialize the engine; {rebuild_hint(path)}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if INPUT_NAME not in names or any(n not in names for n in OUTPUT_NAMES):
            raise BackendError(f"{path}: not a dbd-rt engine (tensors {names})")
        shape = tuple(self.engine.get_tensor_shape(INPUT_NAME))
        if any(d < 0 for d in shape):
            # Dynamic engine: fix the shape at the profile's optimum for this session.
            opt = sidecar.input_shapes[INPUT_NAME][1]
            shape = (batch, *opt[1:])
            self.context.set_input_shape(INPUT_NAME, shape)
        self.input_shape = shape
        self.input_size = (int(shape[1]), int(shape[2]))
        self.device, self.precision = "cuda", sidecar.precision
        self.info = ModelInfo(path, self.input_size, {"tensorrt": sidecar.tensorrt_version, "gpu": sidecar.gpu_name, "precision": sidecar.precision})
        self.stream = cuda.Stream()
        self._sets = [self._allocate(trt) for _ in range(self.in_flight)]
        self._next = 0
        self._pending: deque[_BufferSet] = deque()
        self._device_ms = {"host_to_device": 0.0, "compute": 0.0, "device_to_host": 0.0}
        self._batches = 0

    @staticmethod
    def _rebuild(path: Path, sidecar: EngineSidecar) -> EngineSidecar:
        """Build the engine again here from the ONNX it came from (needs the export module's onnx)."""
        source = Path(sidecar.onnx_path)
        if not sidecar.onnx_path or not source.is_file():
            raise BackendError(f"{path}: cannot rebuild, the ONNX it was built from ({sidecar.onnx_path or 'unrecorded'}) is not here; {rebuild_hint(path)}")
        # Imported only on this explicit request: building needs the onnx package, running does not.
        from export.tensorrt_build import EngineBuildConfig, build_engine

        opt = sidecar.input_shapes[INPUT_NAME][1]
        return build_engine(source, path, EngineBuildConfig(fp16=sidecar.precision == "fp16", imgsz=(int(opt[1]), int(opt[2]))))

    def device_stage_ms(self) -> dict[str, float]:
        """Mean GPU time per batch of the upload, the engine and the download (from CUDA events)."""
        return {k: v / max(1, self._batches) for k, v in self._device_ms.items()}

    def _allocate(self, trt: Any) -> _BufferSet:
        cuda = self._cuda
        host_in = cuda.pagelocked_empty(self.input_shape, dtype=np.uint8)
        dev_in = cuda.mem_alloc(host_in.nbytes)
        host_out, dev_out = {}, {}
        for name in OUTPUT_NAMES:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = trt.nptype(self.engine.get_tensor_dtype(name))
            host_out[name] = cuda.pagelocked_empty(shape, dtype=dtype)
            dev_out[name] = cuda.mem_alloc(host_out[name].nbytes)
        return _BufferSet(host_in, dev_in, host_out, dev_out, [cuda.Event() for _ in range(4)])

    def submit(self, frames: np.ndarray) -> None:
        if len(self._pending) == self.in_flight:
            raise BackendError("tensorrt backend: collect() before submitting more than two batches")
        if frames.shape != self.input_shape:
            raise BackendError(f"tensorrt backend: frames {frames.shape} do not match the engine's input {self.input_shape}")
        buf = self._sets[self._next]
        self._next = (self._next + 1) % self.in_flight
        np.copyto(buf.host_in, frames)
        cuda = self._cuda
        buf.events[0].record(self.stream)
        cuda.memcpy_htod_async(buf.dev_in, buf.host_in, self.stream)
        buf.events[1].record(self.stream)
        self.context.set_tensor_address(INPUT_NAME, int(buf.dev_in))
        for name in OUTPUT_NAMES:
            self.context.set_tensor_address(name, int(buf.dev_out[name]))
        if not self.context.execute_async_v3(stream_handle=self.stream.handle):
            raise BackendError("tensorrt backend: execute_async_v3 failed")
        buf.events[2].record(self.stream)
        for name in OUTPUT_NAMES:
            cuda.memcpy_dtoh_async(buf.host_out[name], buf.dev_out[name], self.stream)
        buf.events[3].record(self.stream)
        self._pending.append(buf)

    def collect(self) -> Maps:
        buf = self._pending.popleft()
        buf.events[3].synchronize()
        e = buf.events
        for key, (a, b) in {"host_to_device": (0, 1), "compute": (1, 2), "device_to_host": (2, 3)}.items():
            self._device_ms[key] += e[a].time_till(e[b])
        self._batches += 1
        return tuple(buf.host_out[n].astype(np.float32, copy=True) for n in OUTPUT_NAMES)  # type: ignore[return-value]

    def close(self) -> None:
        self.stream.synchronize()
        self._pending.clear()
        for buf in self._sets:
            buf.dev_in.free()
            for d in buf.dev_out.values():
                d.free()
        self._sets = []
