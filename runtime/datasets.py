"""Labelled photo folders on disk: `images/` + `masks/` paired by stem, checked, split and loaded.

Torch-free, so the trainer, the bench and the runtime read datasets the same way."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import cv2
import numpy as np

# What OpenCV reads on every platform; photos and masks alike.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class MaskPolarity(str, Enum):
    """Which mask colour means in focus (CUHK's own masks: black; DUT-DBD's: white)."""

    white = "white"
    black = "black"

    def other(self) -> MaskPolarity:
        return MaskPolarity.black if self is MaskPolarity.white else MaskPolarity.white


class DatasetError(ValueError):
    """Bad data; the message names the file and the problem."""


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Sample:
    """One loaded photo: BGR uint8 image, boolean in-focus mask (True = in focus), native size."""

    stem: str
    image: np.ndarray
    in_focus: np.ndarray
    depth: np.ndarray | None = None  # known depth (synthetic data), larger = farther, in [0, 1]


def _index(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in out:
                raise DatasetError(f"{p}: two files share the stem {p.stem!r} ({out[p.stem].name})")
            out[p.stem] = p
    return out


def find_pairs(root: Path, names: Sequence[str] | None = None) -> list[Pair]:
    """All image/mask pairs under root; every image must have a mask and every mask an image."""
    root = Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise DatasetError(f"{d}: missing folder (a dataset needs images/ and masks/)")
    images, masks = _index(images_dir), _index(masks_dir)
    if not images:
        raise DatasetError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    for stem, path in images.items():
        if stem not in masks:
            raise DatasetError(f"{path}: image has no mask in {masks_dir}")
    for stem, path in masks.items():
        if stem not in images:
            raise DatasetError(f"{path}: mask has no image in {images_dir}")
    if names is not None:
        unknown = [n for n in names if n not in images]
        if unknown:
            raise DatasetError(f"{root}: split names not in the dataset: {', '.join(unknown[:5])}")
        return [Pair(n, images[n], masks[n]) for n in names]
    return [Pair(s, images[s], masks[s]) for s in sorted(images)]


def read_names(path: Path) -> list[str]:
    """A split file: one stem per line; blank lines and '#' comments ignored."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read split file ({exc.strerror})") from exc
    names = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not names:
        raise DatasetError(f"{path}: split file lists no names")
    return [Path(n).stem for n in names]


def seeded_split(stems: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, val) stems: a fixed-seed shuffle, the first round(n * val_fraction) go to validation."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = sorted(stems)
    random.Random(seed).shuffle(order)
    n_val = int(round(len(order) * val_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    val = sorted(order[:n_val])
    return sorted(order[n_val:]), val


def read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: unreadable or not an image")
    return img


def read_mask(path: Path, polarity: MaskPolarity) -> np.ndarray:
    """Boolean in-focus mask. RGB(A) masks are reduced to grey; values >= 128 are 'white'."""
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise DatasetError(f"{path}: unreadable or not an image")
    white = m >= 128
    return white if polarity == "white" else ~white


def load_sample(pair: Pair, polarity: MaskPolarity) -> Sample:
    image = read_image(pair.image)
    mask = read_mask(pair.mask, polarity)
    if mask.shape != image.shape[:2]:
        raise DatasetError(f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]}, its image {pair.image.name} is {image.shape[1]}x{image.shape[0]}")
    return Sample(pair.stem, image, mask)


@dataclass
class LoadReport:
    samples: list[Sample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one message per bad file, with its path


def load_samples(pairs: Sequence[Pair], polarity: MaskPolarity, skip_bad: bool = False) -> LoadReport:
    """Load every pair; a bad one raises, or with skip_bad is listed in the report's warnings."""
    report = LoadReport()
    for pair in pairs:
        try:
            report.samples.append(load_sample(pair, polarity))
        except DatasetError as exc:
            if not skip_bad:
                raise
            report.skipped.append(str(exc))
    if not report.samples:
        raise DatasetError("no usable image/mask pairs were loaded")
    return report


def dataset_hash(pairs: Sequence[Pair]) -> str:
    """sha256 over names and file bytes of every pair, for config.json provenance."""
    h = hashlib.sha256()
    for p in pairs:
        h.update(p.stem.encode())
        h.update(p.image.read_bytes())
        h.update(p.mask.read_bytes())
    return h.hexdigest()
