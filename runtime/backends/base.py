"""The one interface every inference backend implements, and the options they are opened with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from runtime.model_info import ModelInfo


class Maps(NamedTuple):
    """A batch's network output: float32 (N, 1, H, W) each."""

    in_focus: np.ndarray  # 1 = in focus
    depth: np.ndarray  # 0 = near


class BackendError(RuntimeError):
    """A backend that cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class BackendOptions:
    """Everything a user can set about a backend; each backend reads only its own fields."""

    threads: int = 0  # CPU threads (onnxruntime, torch); 0 = all this process may use
    frames_in_flight: int = 0  # frames ONNX Runtime infers at once; 0 = auto
    provider: str = "auto"  # ONNX Runtime execution provider
    gpu: int = 0  # CUDA device index (tensorrt, torch, ONNX Runtime's CUDA/TensorRT providers)
    rebuild: bool = False  # rebuild a TensorRT engine made for another GPU or TensorRT version


@runtime_checkable
class Backend(Protocol):
    """Runs the network on uint8 BGR frames already resized to the network input size.

    `submit` queues a batch and `collect` returns the oldest queued batch's maps, so a backend
    with asynchronous devices can overlap frame n+1's copy and compute with the host's work on
    frame n; `in_flight` says how many batches it is worth keeping queued.
    """

    name: str
    device: str  # "cpu", "cuda", or the execution provider in use
    precision: str
    input_size: tuple[int, int] | None  # (height, width); None: any stride-aligned size
    in_flight: int
    info: ModelInfo

    def describe(self) -> str:
        """One line for the start-up banner: device, threads, precision."""
        ...

    def stage_ms(self) -> dict[str, float]:
        """Mean device time per batch of host_to_device, compute and device_to_host ({} on a CPU)."""
        ...

    def submit(self, frames: np.ndarray) -> None: ...

    def collect(self) -> Maps: ...

    def close(self) -> None: ...


def infer(backend: Backend, frames: np.ndarray) -> Maps:
    """Synchronous inference of one batch."""
    backend.submit(frames)
    return backend.collect()
