"""The README's pictures of the focus-assist views, from the shipped model on the bundled clip.

Each picture is a frame of the clip drawn the way `dbd-rt video`/`webcam` draw it, after the frames
before it went through the same smoothing (so the region's score graph has a history):

    python examples/readme_figures.py docs/

writes views_peaking.jpg (fill | edges), views_focus_plane.jpg and views_assist.jpg (region of
interest with score and graph, magnifier).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from runtime.backends import open_backend
from runtime.focus_assist import AssistConfig
from runtime.model_info import SAMPLE_CLIP
from runtime.overlay import OverlayStyle, PeakingMode, View
from runtime.pipeline import VIDEO_IMGSZ, FrameProcessor, FrameResult, Renderer, StageTimes
from runtime.smoothing import SmoothingConfig
from runtime.video_io import read_frames


def results(frames: list[np.ndarray]) -> list[FrameResult]:
    backend = open_backend(None)
    try:
        processor = FrameProcessor(backend, imgsz=VIDEO_IMGSZ, smoothing=SmoothingConfig())
        out = []
        for i, frame in enumerate(frames):
            r = processor.process(frame)
            out.append(replace(r, pts=i))
        return out
    finally:
        backend.close()


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frames = read_frames(SAMPLE_CLIP)
    butterfly, hydrant = results(frames[:46]), results(frames[60:106])
    times = StageTimes()

    def draw(style: OverlayStyle, result: FrameResult, assist: AssistConfig | None = None, history: list[FrameResult] | None = None) -> np.ndarray:
        renderer = Renderer(replace(style, hud=False), times, assist, time_base=Fraction(1, 30))
        for earlier in history or []:
            renderer(earlier)
        return renderer(result)

    fill = draw(OverlayStyle(view=View.peaking), butterfly[-1])
    edges = draw(OverlayStyle(view=View.peaking, peaking=PeakingMode.edges, color="yellow"), butterfly[-1])
    cv2.imwrite(str(folder / "views_peaking.jpg"), np.hstack([fill, edges]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    plane = [draw(OverlayStyle(view=View.focus_plane), r) for r in (butterfly[-1], hydrant[-1])]
    cv2.imwrite(str(folder / "views_focus_plane.jpg"), np.hstack(plane), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assist = AssistConfig(roi=(300, 150, 140, 110), magnifier=True, zoom=2.0, graph_seconds=1.5)
    shown = draw(OverlayStyle(view=View.overlay), butterfly[-1], assist, butterfly[:-1])
    sharpest = draw(OverlayStyle(view=View.mask), hydrant[-1], AssistConfig(magnifier=True, zoom=3.0))
    cv2.imwrite(str(folder / "views_assist.jpg"), np.hstack([shown, sharpest]), [cv2.IMWRITE_JPEG_QUALITY, 85])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
