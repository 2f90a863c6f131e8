"""Accuracy on a labelled folder: the model (or a classical baseline) scored with the shared metrics."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from runtime.backends import Backend
from runtime.datasets import MaskPolarity, find_pairs, load_sample
from runtime.metrics import DatasetScores, ImageScores, ScoreAccumulator
from runtime.pipeline import FrameProcessor

Predictor = Callable[[np.ndarray], np.ndarray]  # BGR photo -> in-focus probability at native size


def model_predictor(backend: Backend, imgsz: int = 320) -> Predictor:
    """The runtime's own path: resize to the model size, infer, resize back to the photo's size."""
    processor = FrameProcessor(backend, imgsz=imgsz)
    return lambda image: processor.process(image).in_focus


def hifst_predictor() -> Predictor:
    """HiFST (Golestaneh & Karam 2017) via the optional `blur_detector` package; high = sharp."""
    try:
        import blur_detector
    except ImportError:
        raise RuntimeError("the hifst baseline needs: pip install 'dbd-rt[baseline]'") from None

    def predict(image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        sharp = np.asarray(blur_detector.detectBlur(grey, show_progress=False), np.float32)
        sharp = cv2.resize(sharp, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        lo, hi = float(sharp.min()), float(sharp.max())
        return (sharp - lo) / (hi - lo) if hi > lo else np.zeros_like(sharp)

    return predict


def evaluate_folder(
    root: Path,
    polarity: MaskPolarity,
    names: Sequence[str] | None,
    predict: Predictor,
    per_image_csv: Path | None = None,
    on_image: Callable[[str], None] | None = None,
) -> tuple[DatasetScores, list[tuple[str, ImageScores]]]:
    """Score every pair at the mask's native size; optionally write one CSV row per image."""
    acc = ScoreAccumulator()
    rows: list[tuple[str, ImageScores]] = []
    for pair in find_pairs(root, names):
        sample = load_sample(pair, polarity)
        rows.append((pair.stem, acc.add(np.clip(predict(sample.image), 0.0, 1.0), sample.in_focus)))
        if on_image:
            on_image(pair.stem)
    if per_image_csv is not None:
        with open(per_image_csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["stem", "mae", "precision", "recall", "f_beta"])
            for stem, s in rows:
                w.writerow([stem, f"{s.mae:.6f}", f"{s.precision:.6f}", f"{s.recall:.6f}", f"{s.f_beta:.6f}"])
    return acc.summary(), rows


def plot_pr(curves: dict[str, DatasetScores], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    for label, s in curves.items():
        ax.plot(s.pr_recall, s.pr_precision, label=f"{label} (max F {s.max_f:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Precision-recall, in-focus region")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
