"""Compare two exported models (engine or ONNX) on the same real frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from runtime.backends import BackendOptions, infer, open_backend
from runtime.datasets import IMAGE_SUFFIXES
from runtime.model_info import SAMPLE_CLIP
from runtime.pipeline import model_size_for, resize_for_model
from runtime.video_io import read_frames


def sample_frames(source: Path | None, count: int) -> list[np.ndarray]:
    """Up to `count` BGR frames from a folder of photos or a video (default: the bundled clip)."""
    source = SAMPLE_CLIP if source is None else Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files]
        images = [im for im in images if im is not None]
    else:
        images = read_frames(source, count=count)
    if not images:
        raise FileNotFoundError(f"{source}: no frames to compare on")
    return images


def compare_models(candidate: Path, reference: Path, images: list[np.ndarray], imgsz: int = 256, options: BackendOptions = BackendOptions()) -> dict[str, float | int]:
    """Both models on each frame at the size the runtime would give it (a fixed-size model's size
    binds both); max and mean |difference| of each map."""
    a, b = open_backend(candidate, options=options), open_backend(reference, options=options)
    fixed = a.input_size or b.input_size
    diffs: dict[str, list[np.ndarray]] = {"in_focus": [], "depth": []}
    try:
        for im in images:
            batch = resize_for_model(im, fixed or model_size_for(im.shape[:2], a, imgsz))[None]
            for name, x, y in zip(("in_focus", "depth"), infer(a, batch), infer(b, batch)):
                diffs[name].append(np.abs(x.astype(np.float32) - y.astype(np.float32)).ravel())
    finally:
        a.close()
        b.close()
    f, d = np.concatenate(diffs["in_focus"]), np.concatenate(diffs["depth"])
    return {
        "frames": len(images),
        "in_focus_max_abs": float(f.max()),
        "in_focus_mean_abs": float(f.mean()),
        "depth_max_abs": float(d.max()),
        "depth_mean_abs": float(d.mean()),
    }
