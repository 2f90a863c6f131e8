"""PyTorch backend (needs the `train` extra): a checkpoint on CPU, or on CUDA in FP16."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from runtime.backends.base import BackendError, Maps
from runtime.model_info import ModelInfo


class TorchBackend:
    name = "torch"
    in_flight = 1

    def __init__(self, path: Path, device: str = "auto", threads: int = 0) -> None:
        try:
            import torch

            from trainer.model import DeployableNet
            from trainer.train import load_model
        except ImportError as exc:
            raise BackendError(f"the torch backend needs the train extra: pip install 'dbd-rt[train]' ({exc.name} missing)") from None
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
        net, ckpt = load_model(Path(path))
        self.model = DeployableNet(net).to(dev).eval()
        # FP16 on CUDA through autocast: convolutions run in half, the sigmoid and norms stay float.
        self.dtype = torch.float16 if dev.type == "cuda" else torch.float32
        self.device, self.precision = dev.type, "fp16" if dev.type == "cuda" else "fp32"
        self._dev = dev
        self.input_size = None  # fully convolutional: any stride-aligned size, like the dynamic ONNX
        self.info = ModelInfo(Path(path), None, {"backbone": net.config.backbone, "epoch": str(ckpt.get("epoch", ""))})
        self._results: deque[Maps] = deque()

    def submit(self, frames: np.ndarray) -> None:
        torch = self._torch
        with torch.inference_mode(), torch.autocast(self._dev.type, dtype=self.dtype, enabled=self._dev.type == "cuda"):
            f, d = self.model(torch.from_numpy(np.ascontiguousarray(frames)).to(self._dev))
        self._results.append((f.float().cpu().numpy(), d.float().cpu().numpy()))

    def collect(self) -> Maps:
        return self._results.popleft()

    def close(self) -> None:
        self._results.clear()
