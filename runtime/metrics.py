"""Defocus-blur-detection metrics (numpy only), shared by the trainer and the bench.

Conventions: a prediction is an in-focus probability map in [0, 1]; a mask is boolean (True = in
focus) at the same size. Every metric is computed per image, then averaged as documented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BETA2 = 0.3
THRESHOLDS = np.arange(1, 256)  # the 255 integer cut points of a map scaled to [0, 255]


def mae(pred: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error between the probability map and the binary mask, over pixels."""
    return float(np.abs(pred.astype(np.float64) - mask.astype(np.float64)).mean())


def precision_recall(binary: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Precision and recall of a binary map.

    An empty prediction has precision 1 if the mask is empty too, else 0. An empty mask has recall 1
    (there was nothing to find).
    """
    tp = float(np.logical_and(binary, mask).sum())
    predicted, actual = float(binary.sum()), float(mask.sum())
    precision = tp / predicted if predicted else (1.0 if actual == 0 else 0.0)
    recall = tp / actual if actual else 1.0
    return precision, recall


def f_beta(precision: float | np.ndarray, recall: float | np.ndarray, beta2: float = BETA2) -> float | np.ndarray:
    """F = (1 + b^2) P R / (b^2 P + R), defined as 0 where P = R = 0."""
    p, r = np.asarray(precision, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    denom = beta2 * p + r
    f = np.where(denom > 0, (1 + beta2) * p * r / np.where(denom > 0, denom, 1.0), 0.0)
    return float(f) if f.ndim == 0 else f


def adaptive_threshold(pred: np.ndarray) -> float:
    """1.5 x the mean of the map (the paper's adaptive threshold), capped at 1."""
    return float(min(1.5 * pred.mean(), 1.0))


def curve_counts(pred: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each of the 255 thresholds: a pixel is positive where round(255 p) >= t."""
    q = np.clip(np.rint(pred.astype(np.float64) * 255.0), 0, 255).astype(np.int64).ravel()
    m = mask.ravel().astype(bool)
    pos_hist = np.bincount(q[m], minlength=256)
    all_hist = np.bincount(q, minlength=256)
    # Counts of pixels with value >= t, for t = 1..255.
    tp = np.cumsum(pos_hist[::-1])[::-1][1:].astype(np.float64)
    predicted = np.cumsum(all_hist[::-1])[::-1][1:].astype(np.float64)
    actual = float(m.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 1.0 if actual == 0 else 0.0)
    recall = tp / actual if actual else np.ones_like(tp)
    return precision, recall


@dataclass
class ImageScores:
    mae: float
    precision: float  # at the adaptive threshold
    recall: float
    f_beta: float
    curve_precision: np.ndarray = field(repr=False)
    curve_recall: np.ndarray = field(repr=False)
    f_beta_blurred: float = 0.0  # D-DFFNet's protocol: the blurred class at a fixed 0.5 threshold


def blurred_f_beta(pred: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    """F-beta (beta^2 = 0.3) of the *blurred* class, the map binarised at a fixed threshold: the
    protocol of D-DFFNet (Jin et al., "Depth and DOF Cues Make A Better Defocus Blur Detector",
    ICME 2023), averaged per image. `pred` is the in-focus probability, `mask` True = in focus."""
    p, r = precision_recall(pred < threshold, ~mask.astype(bool))
    return float(f_beta(p, r))


def focus_png(pred: np.ndarray) -> np.ndarray:
    """The in-focus map as the 8-bit image `dbd-rt image --save-maps` writes (255 = in focus)."""
    return np.clip(pred * 255.0 + 0.5, 0, 255).astype(np.uint8)


def as_8bit(pred: np.ndarray) -> np.ndarray:
    """The map as that saved image (and DBD evaluators) hold it, back in [0, 1]."""
    return focus_png(pred.astype(np.float64)) / 255.0


def score_image(pred: np.ndarray, mask: np.ndarray) -> ImageScores:
    """All per-image numbers for one prediction/mask pair of the same shape.

    The map is scored at 8 bits, as saved: a confident float map (0.998 all over a large in-focus
    region) would otherwise have no pixel at the adaptive threshold once it is capped at 1, and
    score F = 0 where its saved PNG scores nearly 1.
    """
    if pred.shape != mask.shape:
        raise ValueError(f"prediction {pred.shape} and mask {mask.shape} differ in shape")
    pred = as_8bit(pred)
    mask = mask.astype(bool)
    p, r = precision_recall(pred >= adaptive_threshold(pred), mask)
    cp, cr = curve_counts(pred, mask)
    return ImageScores(mae(pred, mask), p, r, float(f_beta(p, r)), cp, cr, blurred_f_beta(pred, mask))


@dataclass(frozen=True)
class DatasetScores:
    """Dataset-level summary.

    - `mae`: mean over images of per-image MAE.
    - `f_beta`: F-beta (beta^2 = 0.3) from the mean adaptive-threshold precision and mean recall over
      images (the paper's protocol); `f_beta_mean` is the mean of per-image F instead.
    - `max_f`: the largest F over the 255 thresholds, each F from the mean P and R at that threshold.
    - `pr_precision` / `pr_recall`: the mean precision-recall curve over those thresholds.
    - `f_beta_blurred`: mean per image of the blurred class's F-beta at a 0.5 threshold (D-DFFNet's
      protocol; see blurred_f_beta).
    """

    images: int
    mae: float
    precision: float
    recall: float
    f_beta: float
    f_beta_mean: float
    max_f: float
    pr_precision: np.ndarray = field(repr=False)
    pr_recall: np.ndarray = field(repr=False)
    f_beta_blurred: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in ("images", "mae", "precision", "recall", "f_beta", "f_beta_mean", "max_f", "f_beta_blurred")}


class ScoreAccumulator:
    """Adds images one at a time (predictions need not be kept in memory)."""

    def __init__(self) -> None:
        self.scores: list[ImageScores] = []

    def add(self, pred: np.ndarray, mask: np.ndarray) -> ImageScores:
        s = score_image(pred, mask)
        self.scores.append(s)
        return s

    def summary(self) -> DatasetScores:
        if not self.scores:
            raise ValueError("no images were scored")
        p = float(np.mean([s.precision for s in self.scores]))
        r = float(np.mean([s.recall for s in self.scores]))
        cp = np.mean([s.curve_precision for s in self.scores], axis=0)
        cr = np.mean([s.curve_recall for s in self.scores], axis=0)
        return DatasetScores(
            images=len(self.scores),
            mae=float(np.mean([s.mae for s in self.scores])),
            precision=p,
            recall=r,
            f_beta=float(f_beta(p, r)),
            f_beta_mean=float(np.mean([s.f_beta for s in self.scores])),
            max_f=float(np.max(f_beta(cp, cr))),
            pr_precision=cp,
            pr_recall=cr,
            f_beta_blurred=float(np.mean([s.f_beta_blurred for s in self.scores])),
        )
