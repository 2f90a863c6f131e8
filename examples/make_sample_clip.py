"""Rebuild runtime/samples/cuhk_pan.mp4: a slow pan and zoom over three CUHK validation photos.

Run: python examples/make_sample_clip.py data/cuhk_dbd   (dbd-prepare cuhk writes that folder)
The photos are from the seeded validation split (seed 0, 10 %), so the shipped model never trained
on them. CUHK images are for research use (see MODEL_CARD.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

from bench.clips import ken_burns, write_clip

STEMS = ("out_of_focus0004", "out_of_focus0129", "out_of_focus0442")
OUT = Path(__file__).resolve().parent.parent / "runtime" / "samples" / "cuhk_pan.mp4"


def main(root: Path) -> None:
    def frames():
        for stem in STEMS:
            photo = cv2.imread(str(next((root / "images").glob(f"{stem}.*"))))
            yield from ken_burns(photo, 640, 480, 60)

    n = write_clip(OUT, frames(), crf=20)
    print(f"wrote {OUT} ({n} frames, {OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/cuhk_dbd"))
