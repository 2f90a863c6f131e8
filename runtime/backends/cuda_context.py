"""TensorRT and pycuda imports with one-line reasons, and the GPU's primary CUDA context.

Everything TensorRT does here runs in the device's *primary* context, the one the CUDA runtime,
PyTorch and ONNX Runtime's CUDA provider use. `pycuda.autoinit` would make a second, private
context on device 0 instead, and code mixing the two (dbd-export check, dbd-bench --compare
tensorrt,onnxruntime) hands buffers between contexts.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from runtime.backends.base import BackendError

TRT_INSTALL = "pip install 'dbd-rt[trt]' on a machine with an NVIDIA GPU (README: GPU setup)"


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError(f"TensorRT is not installed: {TRT_INSTALL}") from None
    return trt


def import_pycuda() -> Any:
    """pycuda.driver, initialised."""
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise BackendError(f"pycuda is not installed: {TRT_INSTALL}") from None
    try:
        cuda.init()
    except Exception as exc:  # pycuda raises its own Error types without a driver
        raise BackendError(f"no usable CUDA driver ({type(exc).__name__}: {exc})") from None
    return cuda


class PrimaryContext:
    """A GPU's primary CUDA context, current only inside `with ctx:` (pushed, then popped).

    Pushing per use rather than once keeps it correct whichever thread calls. It is retained for the
    life of the process and never detached: pycuda's detach of a primary context releases it without
    popping it (cuDevicePrimaryCtxRelease never pops), which leaves a possibly destroyed context
    current on the thread, the classic "context is destroyed" error at exit. The driver releases it
    when the process ends, as it does for the CUDA runtime's own use.
    """

    def __init__(self, cuda: Any, index: int = 0) -> None:
        try:
            count = cuda.Device.count()
        except Exception as exc:
            raise BackendError(f"no usable CUDA GPU ({type(exc).__name__}: {exc})") from None
        if count == 0:
            raise BackendError("no CUDA GPU is visible to this process")
        if not 0 <= index < count:
            raise BackendError(f"--gpu {index}: this machine has {count} CUDA GPU{'s' if count > 1 else ''} (0-{count - 1})")
        self._cuda = cuda
        self.index = index
        self.device = cuda.Device(index)
        self._context = self.device.retain_primary_context()

    @property
    def gpu_name(self) -> str:
        return str(self.device.name())

    @property
    def compute_capability(self) -> str:
        major, minor = self.device.compute_capability()
        return f"{major}.{minor}"

    def __enter__(self) -> PrimaryContext:
        self._context.push()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._cuda.Context.pop()
