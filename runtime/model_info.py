"""The model contract shared by export and runtime, and where the embedded default model lives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

INPUT_NAME = "frames"
OUTPUT_NAMES = ("in_focus", "depth")
# Input sides are multiples of this: the encoder's output stride (the exported graph relies on it).
STRIDE = 32
DEFAULT_MODEL = Path(__file__).parent / "models" / "dbd_lite0_320.onnx"
# The same network converted to mixed FP16 by NVIDIA ModelOpt AutoCast, for TensorRT engines on
# machines without PyTorch (see export/precision.py).
DEFAULT_MODEL_FP16 = Path(__file__).parent / "models" / "dbd_lite0_320_fp16.onnx"
SAMPLE_CLIP = Path(__file__).parent / "samples" / "cuhk_pan.mp4"  # three real photos, slow pan and zoom, with audio


class ModelError(ValueError):
    """A model file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    input_size: tuple[int, int] | None  # (height, width); None when the graph is dynamic
    metadata: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        meta = dict(self.metadata)
        for key in ("decoder", "training_data", "metrics"):
            if key in meta:
                try:
                    meta[key] = json.loads(meta[key])
                except ValueError:
                    pass
        return {
            "path": str(self.path),
            "input_size": None if self.input_size is None else f"{self.input_size[0]}x{self.input_size[1]}",
            "metadata": meta,
        }


def parse_hw(text: str) -> tuple[int, int]:
    """'320' -> (320, 320); '320x480' -> (320, 480) as height x width, each a multiple of STRIDE."""
    parts = text.lower().split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"size must look like 320 or 320x480 (height x width), got {text!r}") from None
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < STRIDE or any(d % STRIDE for d in dims):
        raise ValueError(f"size must be one or two multiples of {STRIDE} (>= {STRIDE}), got {text!r}")
    return dims[0], dims[1]


def resolve_model(model: Path | None) -> Path:
    """The file to run: the given one (checked to exist) or the embedded default."""
    path = DEFAULT_MODEL if model is None else Path(model)
    if not path.is_file():
        if model is None:
            raise ModelError(f"{path}: the embedded default model is missing from this installation")
        raise ModelError(f"{path}: model file not found")
    if path.suffix.lower() not in (".onnx", ".engine", ".pt"):
        raise ModelError(f"{path}: unknown model type (expected .onnx, .engine or .pt)")
    return path
