"""The one interface every inference backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

Maps = tuple[np.ndarray, np.ndarray]  # in_focus, depth: float32 (N, 1, H, W)


class BackendError(RuntimeError):
    """A backend that cannot run here; the message says why and what to do."""


@runtime_checkable
class Backend(Protocol):
    """Runs the network on uint8 BGR frames already resized to `input_size`.

    `submit` queues a batch and `collect` returns the oldest queued batch's maps, so a backend
    with asynchronous devices can overlap frame n+1's copy and compute with the host's work on
    frame n; `in_flight` says how many batches it is worth keeping queued.
    """

    name: str
    device: str
    precision: str
    input_size: tuple[int, int] | None  # (height, width); None: any size (dynamic graph)
    in_flight: int

    def submit(self, frames: np.ndarray) -> None: ...

    def collect(self) -> Maps: ...

    def close(self) -> None: ...


def infer(backend: Backend, frames: np.ndarray) -> Maps:
    """Synchronous inference of one batch."""
    backend.submit(frames)
    return backend.collect()
