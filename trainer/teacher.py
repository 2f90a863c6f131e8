"""Depth teachers: any ONNX monocular depth model, run once per image with ONNX Runtime and cached."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import onnx
import onnxruntime as ort

NearIs = Literal["high", "low"]


@dataclass(frozen=True)
class TeacherConfig:
    path: Path
    near: NearIs = "low"  # which end of the teacher's output is near (pydnet++: larger = farther -> low)
    layout: str | None = None  # "nhwc" | "nchw"; read from the ONNX input shape when None
    size: tuple[int, int] | None = None  # (height, width); read from the ONNX input shape when None
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB, applied to pixels scaled to [0, 1]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output: int = 0
    low_pct: float = 2.0
    high_pct: float = 98.0


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def robust_normalise(raw: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """Clip to the [low, high] percentiles and scale to [0, 1]; a flat map becomes 0.5 everywhere."""
    lo, hi = np.percentile(raw, [low_pct, high_pct])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo < 1e-12:
        return np.full(raw.shape, 0.5, np.float32)
    return np.clip((raw - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


class OnnxDepthTeacher:
    """Depth maps in the network's convention: float32 in [0, 1], 0 = near, 1 = far."""

    def __init__(self, config: TeacherConfig, cache_dir: Path | None = None, threads: int = 0) -> None:
        self.config = config
        path = Path(config.path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: teacher model not found")
        model = onnx.load(str(path), load_external_data=False)
        self.layout, self.size = self._input_geometry(model, path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[config.output].name
        self.model_hash = file_sha256(path)
        self.cache_dir = None if cache_dir is None else Path(cache_dir) / self.model_hash[:16] / self._settings_key()
        self.computed = 0  # maps computed (not found in the cache) by this object

    def _input_geometry(self, model: onnx.ModelProto, path: Path) -> tuple[str, tuple[int, int]]:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in model.graph.input[0].type.tensor_type.shape.dim]
        if len(dims) != 4:
            raise ValueError(f"{path}: teacher input must be 4-D, got {len(dims)}-D")
        layout = self.config.layout or ("nhwc" if dims[3] == 3 else "nchw" if dims[1] == 3 else None)
        if layout is None:
            raise ValueError(f"{path}: cannot tell the input layout from shape {dims}; pass --teacher-layout")
        hw = (dims[1], dims[2]) if layout == "nhwc" else (dims[2], dims[3])
        size = self.config.size or hw
        if size[0] is None or size[1] is None:
            raise ValueError(f"{path}: input size is dynamic; pass --teacher-size HxW")
        return layout, (int(size[0]), int(size[1]))

    def _settings_key(self) -> str:
        c = asdict(self.config)
        c.pop("path")
        c.update(layout=self.layout, size=self.size)
        return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def raw(self, image_bgr: np.ndarray) -> np.ndarray:
        """The teacher's un-normalised output at its own resolution."""
        h, w = self.size
        rgb = cv2.cvtColor(cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        x = (rgb.astype(np.float32) / 255.0 - np.float32(self.config.mean)) / np.float32(self.config.std)
        x = x[None] if self.layout == "nhwc" else x.transpose(2, 0, 1)[None]
        y = self.session.run([self.output_name], {self.input_name: x.astype(np.float32)})[0]
        return np.squeeze(y).astype(np.float32)

    def depth(self, image_bgr: np.ndarray) -> np.ndarray:
        """Normalised depth (0 near, 1 far) at the teacher's resolution."""
        d = robust_normalise(self.raw(image_bgr), self.config.low_pct, self.config.high_pct)
        return 1.0 - d if self.config.near == "high" else d

    def depth_cached(self, image_bgr: np.ndarray, image_key: str) -> np.ndarray:
        """Like depth(), through the on-disk cache keyed by the image's and the teacher's content."""
        if self.cache_dir is None:
            self.computed += 1
            return self.depth(image_bgr)
        path = self.cache_dir / f"{image_key}.npy"
        if path.is_file():
            return np.load(path).astype(np.float32)
        d = self.depth(image_bgr)
        self.computed += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, d.astype(np.float16))
        os.replace(tmp, path)
        return d.astype(np.float16).astype(np.float32)


def image_key(path: Path) -> str:
    """Content hash of an image file (the cache key's image half)."""
    return file_sha256(path)[:24]
