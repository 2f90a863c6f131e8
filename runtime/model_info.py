"""The model contract shared by export and runtime, and where the embedded default model lives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

INPUT_NAME = "frames"
OUTPUT_NAMES = ("in_focus", "depth")
DEFAULT_MODEL = Path(__file__).parent / "models" / "dbd_lite0_320.onnx"
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
