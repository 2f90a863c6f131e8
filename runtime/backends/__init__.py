"""Inference backends behind one Protocol, and the choice among them."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from runtime.backends.base import Backend, BackendError, BackendOptions, Maps, infer
from runtime.model_info import DEFAULT_MODEL, ModelError

__all__ = ["Backend", "BackendError", "BackendOptions", "Maps", "infer", "open_backend", "choose_backend", "available_backends", "BACKENDS"]

# name -> (module, class, file suffixes it reads). Modules are imported only when chosen, so a
# machine needs only the libraries of the backends it uses.
BACKENDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "onnxruntime": ("runtime.backends.onnxruntime_backend", "OnnxRuntimeBackend", (".onnx",)),
    "tensorrt": ("runtime.backends.tensorrt_backend", "TensorRTBackend", (".engine", ".onnx")),
    "torch": ("runtime.backends.torch_backend", "TorchBackend", (".pt",)),
}
# Which backend `auto` picks for each file kind.
_AUTO = {".engine": "tensorrt", ".pt": "torch"}


def _backend_class(name: str) -> type:
    module, cls, _ = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


def choose_backend(path: Path | None, requested: str = "auto") -> str:
    """`auto`: TensorRT for an .engine, torch for a .pt checkpoint, else ONNX Runtime."""
    if requested != "auto" and requested not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r}; choose one of auto, {', '.join(BACKENDS)}")
    if path is None:
        return "onnxruntime" if requested == "auto" else requested
    suffix = path.suffix.lower()
    if requested == "auto":
        return _AUTO.get(suffix, "onnxruntime")
    if suffix not in BACKENDS[requested][2]:
        raise BackendError(f"{path}: the {requested} backend reads {'/'.join(BACKENDS[requested][2])} files, not {suffix or 'this file'}")
    return requested


def resolve_model(model: Path | None, backend: str) -> Path:
    """The file `backend` runs: the one given (checked), or that backend's default model."""
    if model is None:
        path = _backend_class(backend).default_model() if backend != "onnxruntime" else DEFAULT_MODEL
        if not path.is_file():
            raise ModelError(f"{path}: the default model for the {backend} backend is missing from this installation")
        return path
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix.lower() not in (".onnx", ".engine", ".pt"):
        raise ModelError(f"{path}: unknown model type (expected .onnx, .engine or .pt)")
    return path


def open_backend(path: Path | None, requested: str = "auto", options: BackendOptions = BackendOptions()) -> Backend:
    """Open `path` (None: the chosen backend's default model) with the chosen backend."""
    name = choose_backend(path, requested)
    return _backend_class(name).open(resolve_model(path, name), options)


def available_backends() -> dict[str, str]:
    """Each backend and whether it can run here (a short reason when not)."""
    out = {}
    try:
        import onnxruntime as ort

        out["onnxruntime"] = "yes (" + ", ".join(ort.get_available_providers()) + ")"
        from runtime.backends.onnxruntime_backend import conflicting_onnxruntime

        clash = conflicting_onnxruntime()
        if clash:
            out["onnxruntime"] += f"; warning: {clash}"
    except ImportError:
        out["onnxruntime"] = "no (onnxruntime missing)"
    out["torch"] = "yes" if importlib.util.find_spec("torch") and importlib.util.find_spec("timm") else "no (install dbd-rt[train])"
    if importlib.util.find_spec("tensorrt") is None:
        out["tensorrt"] = "no (install dbd-rt[trt] on an NVIDIA GPU machine)"
    elif importlib.util.find_spec("pycuda") is None:
        out["tensorrt"] = "no (pycuda missing: install dbd-rt[trt])"
    else:
        out["tensorrt"] = "installed (GPU checked when an engine is opened)"
    return out
