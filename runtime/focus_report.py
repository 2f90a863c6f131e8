"""Where focus is, frame by frame: the numbers behind `dbd-rt batch`'s focus reports.

Per frame (from the network-size maps, so it costs nothing next to the network):
- `in_focus_share`: share of the frame the model calls in focus (probability >= 0.5);
- `peak_score`: mean in-focus probability of the most confident tenth of the frame: high whenever
  *something* is sharp;
- `roi_score`: mean in-focus probability over the region of interest (default: the centre third of
  the frame, where subjects usually are; `--roi X,Y,W,H` in frame pixels);
- `focal_depth`: median relative depth (0 near, 1 far) of the in-focus pixels: where the focal plane
  sits; empty when nothing is in focus;
- `soft`: nothing in the frame is in focus (`peak_score` below the threshold, default 0.4), or,
  with `--roi`, the chosen region is out of focus (`roi_score` below it). Without a region the
  subject's place is unknown (the centre third misses an off-centre subject), so a frame counts
  as soft only when no part of it is sharp.

Per video: the share of soft frames and the soft segments as [start, end] times (seconds, the
first soft frame's time to the last's), and a timeline picture.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from runtime.chart import Chart

SOFT_THRESHOLD = 0.4
IN_FOCUS = 0.5  # the probability above which a pixel counts as in focus


@dataclass(frozen=True)
class ReportConfig:
    roi: tuple[int, int, int, int] | None = None  # x, y, width, height in frame pixels; None: centre third
    soft_threshold: float = SOFT_THRESHOLD


@dataclass(frozen=True)
class FrameRow:
    time: float
    in_focus_share: float
    peak_score: float
    roi_score: float
    focal_depth: float | None
    soft: bool


def roi_slices(config: ReportConfig, frame_hw: tuple[int, int], map_hw: tuple[int, int]) -> tuple[slice, slice]:
    """The region of interest in map coordinates (at least one pixel)."""
    fh, fw = frame_hw
    mh, mw = map_hw
    x, y, w, h = config.roi or (fw // 3, fh // 3, max(1, fw // 3), max(1, fh // 3))
    x0, x1 = int(x * mw / fw), int(np.ceil((x + w) * mw / fw))
    y0, y1 = int(y * mh / fh), int(np.ceil((y + h) * mh / fh))
    x0, y0 = min(max(0, x0), mw - 1), min(max(0, y0), mh - 1)
    return slice(y0, max(y0 + 1, min(y1, mh))), slice(x0, max(x0 + 1, min(x1, mw)))


def frame_row(time: float, in_focus: np.ndarray, depth: np.ndarray, frame_hw: tuple[int, int], config: ReportConfig) -> FrameRow:
    """The numbers of one frame from its maps (any size; `frame_hw` places the ROI)."""
    sharp = in_focus >= IN_FOCUS
    flat = np.sort(in_focus, axis=None)
    peak = float(flat[-max(1, flat.size // 10) :].mean())
    roi = float(in_focus[roi_slices(config, frame_hw, in_focus.shape)].mean())
    focal = float(np.median(depth[sharp])) if sharp.any() else None
    decisive = roi if config.roi else peak
    return FrameRow(round(time, 4), float(sharp.mean()), peak, roi, focal, decisive < config.soft_threshold)


@dataclass
class FocusReport:
    """The rows of one video (or one photo: one row), with the per-video summary."""

    config: ReportConfig = field(default_factory=ReportConfig)
    rows: list[FrameRow] = field(default_factory=list)

    def add(self, row: FrameRow) -> None:
        self.rows.append(row)

    def soft_share(self) -> float:
        return sum(r.soft for r in self.rows) / len(self.rows) if self.rows else 0.0

    def soft_segments(self) -> list[tuple[float, float]]:
        """[start, end] times of each run of consecutive soft frames."""
        segments: list[tuple[float, float]] = []
        start = None
        for prev, row in zip([None, *self.rows], self.rows):
            if row.soft and start is None:
                start = row.time
            if not row.soft and start is not None:
                segments.append((start, prev.time))  # type: ignore[union-attr]
                start = None
        if start is not None:
            segments.append((start, self.rows[-1].time))
        return segments

    def summary(self) -> dict[str, object]:
        return {
            "frames": len(self.rows),
            "soft_share": self.soft_share(),
            "soft_segments": [list(s) for s in self.soft_segments()],
            "soft_threshold": self.config.soft_threshold,
            "roi": list(self.config.roi) if self.config.roi else "centre third",
        }

    def write_jsonl(self, path: Path) -> None:
        """One JSON object per frame (FrameRow's fields)."""
        with open(path, "w") as f:
            for row in self.rows:
                f.write(json.dumps(asdict(row)) + "\n")

    def write_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(FrameRow.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(asdict(r) for r in self.rows)

    def timeline(self, width: int = 960, height: int = 240) -> np.ndarray:
        """The focus score that decides softness (orange: the ROI's with --roi, else the peak) and the
        focal-plane depth (blue dots) over time, soft segments shaded red, as a BGR picture (OpenCV
        only: no plotting library needed)."""
        chart = Chart(self.rows[-1].time if self.rows else 1.0, width, height)
        for start, end in self.soft_segments():
            chart.span(start, end, (210, 210, 255))
        chart.hline(self.config.soft_threshold, (120, 120, 220))
        times = np.array([r.time for r in self.rows])
        chart.line(times, np.array([r.roi_score if self.config.roi else r.peak_score for r in self.rows]), (0, 140, 255))
        focal = [(r.time, r.focal_depth) for r in self.rows if r.focal_depth is not None]
        chart.dots(np.array([t for t, _ in focal]), np.array([d for _, d in focal]), (200, 90, 0))
        return chart.legend([("focus score", (0, 140, 255)), ("focal-plane depth", (200, 90, 0)), ("soft", (170, 170, 255))])
