"""Procedural scenes with known depth, rendered with a thin-lens depth-of-field blur."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.datasets import Sample


@dataclass(frozen=True)
class SyntheticConfig:
    height: int = 240
    width: int = 320
    max_objects: int = 4
    # Circle-of-confusion radius in pixels per unit of |1/d - 1/d_focus| (aperture x focal scale).
    blur_scale: float = 9.0
    sharp_radius: float = 0.8  # CoC below this many pixels counts as in focus


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A detailed colour texture (multi-scale noise plus stripes) so that blur is visible."""
    base = rng.uniform(40, 215, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    for cell in (2, 4, 8, 16):
        noise = rng.normal(0, 1, ((h + cell - 1) // cell, (w + cell - 1) // cell, 3)).astype(np.float32)
        img += 22 * cv2.resize(noise, (w, h), interpolation=cv2.INTER_NEAREST)
    if rng.random() < 0.5:
        period = rng.integers(4, 12)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        img += 35 * stripes[..., None]
    return np.clip(img, 0, 255)


def _shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cx, cy = int(rng.integers(w // 6, 5 * w // 6)), int(rng.integers(h // 6, 5 * h // 6))
    r = int(rng.integers(min(h, w) // 8, min(h, w) // 3))
    if rng.random() < 0.5:
        cv2.circle(m, (cx, cy), r, 1, -1)
    else:
        pts = np.array([[cx + r * np.cos(a), cy + r * np.sin(a)] for a in np.sort(rng.uniform(0, 2 * np.pi, 6))], np.int32)
        cv2.fillPoly(m, [pts], 1)
    return m.astype(bool)


def _blur(img: np.ndarray, radius: float) -> np.ndarray:
    if radius < 0.5:
        return img
    sigma = radius / 2.0  # a disc of radius r has about the spread of a Gaussian with sigma r/2
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma)


def render_scene(rng: np.random.Generator, cfg: SyntheticConfig = SyntheticConfig()) -> Sample:
    """One scene: a background plane and a few objects at random depths, composited back to front,
    each layer blurred by its circle of confusion relative to a focal plane placed on one layer."""
    h, w = cfg.height, cfg.width
    n = int(rng.integers(1, cfg.max_objects + 1))
    depths = np.sort(rng.uniform(1.0, 8.0, n))[::-1]  # far to near
    bg_depth = float(rng.uniform(max(depths[0], 4.0) + 1.0, 20.0))
    layers = [(bg_depth, np.ones((h, w), bool))] + [(float(d), _shape_mask(rng, h, w)) for d in depths]
    focus = float(rng.choice([d for d, _ in layers]))

    image = np.zeros((h, w, 3), np.float32)
    depth = np.zeros((h, w), np.float32)
    coc = np.zeros((h, w), np.float32)
    for d, shape in layers:
        radius = cfg.blur_scale * abs(1.0 / d - 1.0 / focus) * focus
        tex = _blur(_texture(rng, h, w), radius)
        alpha = _blur(shape.astype(np.float32), radius)[..., None]
        image = image * (1 - alpha) + tex * alpha
        depth[shape] = d
        coc[shape] = radius
    near, far = 1.0, 20.0
    depth01 = (depth - near) / (far - near)
    return Sample(
        stem="",
        image=np.clip(image, 0, 255).astype(np.uint8),
        in_focus=coc < cfg.sharp_radius,
        depth=depth01.astype(np.float32),
    )


def synthetic_samples(count: int, seed: int, cfg: SyntheticConfig = SyntheticConfig()) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        s = render_scene(rng, cfg)
        out.append(Sample(f"synthetic_{i:05d}", s.image, s.in_focus, s.depth))
    return out


def write_dataset(samples: list[Sample], root: Path) -> None:
    """Write samples as a dataset folder: images/*.png, masks/*.png (white = in focus), depth/*.png (16-bit)."""
    for sub in ("images", "masks", "depth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for s in samples:
        cv2.imwrite(str(root / "images" / f"{s.stem}.png"), s.image)
        cv2.imwrite(str(root / "masks" / f"{s.stem}.png"), s.in_focus.astype(np.uint8) * 255)
        if s.depth is not None:
            cv2.imwrite(str(root / "depth" / f"{s.stem}.png"), (np.clip(s.depth, 0, 1) * 65535).astype(np.uint16))
