"""Training-time augmentation of loaded samples (the datasets themselves: runtime.datasets)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    size: int = 320
    min_area: float = 0.4  # random crop area as a fraction of the photo
    max_aspect_change: float = 4 / 3
    hflip: bool = True
    jitter: float = 0.2  # brightness/contrast/saturation amplitude


def resize_to(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """cv2 resize to (height, width); area for shrinking, linear for growing, or nearest for masks."""
    h, w = size
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if h * w < image.shape[0] * image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (w, h), interpolation=interp)


def augment(image: np.ndarray, mask: np.ndarray, depth: np.ndarray | None, cfg: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Random scale-and-crop, horizontal flip, colour jitter; the mask follows with nearest neighbour."""
    h, w = image.shape[:2]
    area = rng.uniform(cfg.min_area, 1.0) * h * w
    aspect = np.exp(rng.uniform(-np.log(cfg.max_aspect_change), np.log(cfg.max_aspect_change))) * w / h
    cw = int(min(w, round(np.sqrt(area * aspect))))
    ch = int(min(h, round(np.sqrt(area / aspect))))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    box = (slice(y0, y0 + ch), slice(x0, x0 + cw))
    out_size = (cfg.size, cfg.size)
    img = resize_to(image[box], out_size)
    msk = resize_to(mask[box].astype(np.uint8), out_size, nearest=True).astype(bool)
    dep = None if depth is None else resize_to(depth[box], out_size)
    if cfg.hflip and rng.random() < 0.5:
        img, msk = img[:, ::-1], msk[:, ::-1]
        dep = None if dep is None else dep[:, ::-1]
    if cfg.jitter > 0:
        img = colour_jitter(img, cfg.jitter, rng)
    return np.ascontiguousarray(img), np.ascontiguousarray(msk), None if dep is None else np.ascontiguousarray(dep)


def colour_jitter(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32)
    b, c, s = (1 + rng.uniform(-amount, amount, 3)).tolist()
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * s  # saturation
    x = (x - x.mean()) * c + x.mean()  # contrast
    x = x * b  # brightness
    return np.clip(x, 0, 255).astype(np.uint8)
