"""Inference backends behind one Protocol, and the choice among them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from runtime.backends.base import Backend, BackendError, Maps, infer

__all__ = ["Backend", "BackendError", "Maps", "infer", "open_backend", "BACKENDS", "available_backends"]


def _onnxruntime(path: Path, threads: int, provider: str, rebuild: bool, frames_in_flight: int) -> Backend:
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, provider=provider, threads=threads, frames_in_flight=frames_in_flight)


def _tensorrt(path: Path, threads: int, provider: str, rebuild: bool, frames_in_flight: int) -> Backend:
    from runtime.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(path, rebuild=rebuild)


def _torch(path: Path, threads: int, provider: str, rebuild: bool, frames_in_flight: int) -> Backend:
    from runtime.backends.torch_backend import TorchBackend

    return TorchBackend(path, threads=threads)


BACKENDS: dict[str, Callable[[Path, int, str, bool, int], Backend]] = {
    "onnxruntime": _onnxruntime,
    "tensorrt": _tensorrt,
    "torch": _torch,
}
# Which file kinds each backend reads.
SUFFIXES = {"onnxruntime": (".onnx",), "tensorrt": (".engine",), "torch": (".pt",)}


def choose_backend(path: Path, requested: str = "auto") -> str:
    """`auto`: TensorRT for an .engine, torch for a .pt checkpoint, else ONNX Runtime."""
    suffix = path.suffix.lower()
    if requested == "auto":
        return next((name for name, sfx in SUFFIXES.items() if suffix in sfx), "onnxruntime")
    if requested not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r}; choose one of auto, {', '.join(BACKENDS)}")
    if suffix not in SUFFIXES[requested]:
        raise BackendError(f"{path}: the {requested} backend reads {'/'.join(SUFFIXES[requested])} files, not {suffix}")
    return requested


def open_backend(
    path: Path, requested: str = "auto", threads: int = 0, provider: str = "auto", rebuild: bool = False, frames_in_flight: int = 1
) -> Backend:
    """`rebuild`: a TensorRT engine built for another GPU or TensorRT is rebuilt here from its ONNX.
    `frames_in_flight`: concurrent frames for ONNX Runtime (0 = auto; TensorRT keeps its own two in flight)."""
    return BACKENDS[choose_backend(path, requested)](path, threads, provider, rebuild, frames_in_flight)


def available_backends() -> dict[str, str]:
    """Each backend and whether it can run here (a short reason when not)."""
    import importlib.util

    out = {}
    try:
        import onnxruntime as ort

        out["onnxruntime"] = "yes (" + ", ".join(ort.get_available_providers()) + ")"
    except ImportError:
        out["onnxruntime"] = "no (onnxruntime missing)"
    out["torch"] = "yes" if importlib.util.find_spec("torch") and importlib.util.find_spec("timm") else "no (install dbd-rt[train])"
    if importlib.util.find_spec("tensorrt") is None:
        out["tensorrt"] = "no (install dbd-rt[trt] on an NVIDIA GPU machine)"
    elif importlib.util.find_spec("pycuda") is None:
        out["tensorrt"] = "no (pycuda missing)"
    else:
        out["tensorrt"] = "installed (GPU checked when an engine is opened)"
    return out
