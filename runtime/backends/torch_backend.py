"""PyTorch backend (needs the `train` extra): a checkpoint on the CPU, or on a CUDA GPU in FP16.

This module is the runtime's one declared upward dependency: it imports torch and the trainer's
checkpoint loader, lazily, when the torch backend is chosen.

On CUDA it is built for throughput: half weights, channels-last activations (the uint8 NHWC input
permuted to NCHW already has channels-last strides, so no copy), page-locked host buffers, a side
stream, and two frames in flight, so frame n+1's upload and compute overlap the host's work on n.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends.base import BackendError, BackendOptions, Maps
from runtime.model_info import ModelInfo

# The shipped model's checkpoint, inside the installed trainer package (found, not imported).
_CHECKPOINT = ("checkpoints", "dbd_lite0_320", "best.pt")


class TorchBackend:
    name = "torch"

    def __init__(self, path: Path, threads: int = 0, gpu: int = 0, device: str = "auto") -> None:
        try:
            import torch

            from trainer.checkpoint import load_model
            from trainer.model import DeployableNet
        except ImportError as exc:
            raise BackendError(f"the torch backend needs the train extra: pip install 'dbd-rt[train]' ({exc.name} missing)") from None
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise BackendError("the torch backend was asked for CUDA, but PyTorch sees no CUDA GPU")
        if use_cuda and not 0 <= gpu < torch.cuda.device_count():
            raise BackendError(f"--gpu {gpu}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s)")
        self._dev = torch.device(f"cuda:{gpu}" if use_cuda else "cpu")
        try:
            net, ckpt = load_model(Path(path))
        except (FileNotFoundError, ValueError) as exc:
            raise BackendError(str(exc)) from None
        model = DeployableNet(net).eval().to(self._dev)
        if use_cuda:
            model = model.half().to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True  # a few sizes per job: each is tuned once
            self._stream = torch.cuda.Stream(self._dev)
        self.model = model
        self.device = self._dev.type
        self.precision = "fp16" if use_cuda else "fp32"
        self.in_flight = 2 if use_cuda else 1
        self.input_size = None  # fully convolutional: any stride-aligned size, like the dynamic ONNX
        self.info = ModelInfo(Path(path), None, {"backbone": net.config.backbone, "epoch": str(ckpt.get("epoch", ""))})
        self._pending: deque[Any] = deque()
        self._staging: dict[tuple[int, ...], list[Any]] = {}  # per input shape: page-locked in/out sets
        self._next = 0

    @classmethod
    def open(cls, path: Path, options: BackendOptions) -> TorchBackend:
        return cls(path, threads=options.threads, gpu=options.gpu)

    @staticmethod
    def default_model() -> Path:
        import importlib.util

        spec = importlib.util.find_spec("trainer")
        if spec is None or not spec.submodule_search_locations:
            raise BackendError("the torch backend needs the train extra: pip install 'dbd-rt[train]'")
        return Path(next(iter(spec.submodule_search_locations))).joinpath(*_CHECKPOINT)

    def describe(self) -> str:
        if self.device == "cuda":
            return f"{self._torch.cuda.get_device_name(self._dev)}, fp16, channels-last, {self.in_flight} frames in flight"
        return f"cpu, {self._torch.get_num_threads()} threads, fp32"

    def stage_ms(self) -> dict[str, float]:
        return {}

    def _buffers(self, shape: tuple[int, ...]) -> Any:
        torch = self._torch
        sets = self._staging.get(shape)
        if sets is None:
            n, h, w, _ = shape
            sets = self._staging[shape] = [
                (torch.empty(shape, dtype=torch.uint8, pin_memory=True), torch.empty((n, 1, h, w), pin_memory=True), torch.empty((n, 1, h, w), pin_memory=True))
                for _ in range(self.in_flight)
            ]
        self._next = (self._next + 1) % self.in_flight
        return sets[self._next]

    def submit(self, frames: np.ndarray) -> None:
        torch = self._torch
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if self.device == "cpu":
            with torch.inference_mode():
                f, d = self.model(torch.from_numpy(frames))
            self._pending.append(Maps(f.numpy(), d.numpy()))
            return
        host_in, host_f, host_d = self._buffers(frames.shape)
        host_in.numpy()[...] = frames
        with torch.inference_mode(), torch.cuda.stream(self._stream):
            f, d = self.model(host_in.to(self._dev, non_blocking=True))
            host_f.copy_(f.float(), non_blocking=True)
            host_d.copy_(d.float(), non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._stream)
        self._pending.append((done, host_f, host_d))

    def collect(self) -> Maps:
        item = self._pending.popleft()
        if isinstance(item, Maps):
            return item
        done, host_f, host_d = item
        done.synchronize()
        return Maps(host_f.numpy().copy(), host_d.numpy().copy())

    def close(self) -> None:
        if self.device == "cuda":
            self._stream.synchronize()
        self._pending.clear()
        self._staging.clear()
