"""Make the model card's pictures: best and worst validation photos, and README's demo picture.

Run: python examples/model_card_figures.py data/cuhk_dbd trainer/checkpoints/dbd_lite0_320/val.txt
Each row: photo | ground truth (white = in focus) | in-focus probability | depth (near = bright).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from runtime.backends import open_backend
from runtime.datasets import find_pairs, load_sample, read_names
from runtime.metrics import score_image
from runtime.model_info import DEFAULT_MODEL
from runtime.overlay import OverlayStyle, View, colorize, depth_display, render
from runtime.pipeline import FrameProcessor

DOCS = Path(__file__).resolve().parent.parent / "docs"
ROW_HEIGHT = 200


def _row(image, truth, focus, depth, label):
    h, w = image.shape[:2]
    scale = ROW_HEIGHT / h
    size = (round(w * scale), ROW_HEIGHT)
    panels = [
        cv2.resize(image, size, interpolation=cv2.INTER_AREA),
        cv2.resize(cv2.cvtColor(truth.astype(np.uint8) * 255, cv2.COLOR_GRAY2BGR), size, interpolation=cv2.INTER_NEAREST),
        cv2.resize(colorize(focus, "inferno"), size, interpolation=cv2.INTER_AREA),
        cv2.resize(colorize(depth_display(depth), "viridis"), size, interpolation=cv2.INTER_AREA),
    ]
    row = np.hstack(panels)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(row, (0, 0), (tw + 10, th + base + 8), (0, 0, 0), -1)  # readable on any photo
    cv2.putText(row, label, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return row


def _pad_to(rows):
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])


def main(root: Path, names_file: Path) -> None:
    DOCS.mkdir(exist_ok=True)
    processor = FrameProcessor(open_backend(DEFAULT_MODEL))
    scored = []
    for pair in find_pairs(root, read_names(names_file)):
        s = load_sample(pair, "black")
        r = processor.process(s.image)
        scored.append((score_image(r.in_focus, s.in_focus).f_beta, pair.stem, s, r))
    scored.sort(key=lambda t: t[0])
    worst, best = scored[:4], scored[-3:][::-1]
    for name, group in (("validation_best.jpg", best), ("validation_worst.jpg", worst)):
        rows = [_row(s.image, s.in_focus, r.in_focus, r.depth, f"{stem}  F={f:.2f}") for f, stem, s, r in group]
        cv2.imwrite(str(DOCS / name), _pad_to(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])
    # README's picture: the sample clip's first photo in the side-by-side view.
    demo = next(t for t in scored if t[1] == "out_of_focus0004")
    view = render(demo[2].image, demo[3].in_focus, demo[3].depth, OverlayStyle(view=View.side_by_side))
    cv2.imwrite(str(DOCS / "demo_side_by_side.jpg"), cv2.resize(view, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print("F-beta per image, worst five:", [(stem, round(f, 3)) for f, stem, _, _ in scored[:5]])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
