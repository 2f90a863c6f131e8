"""The maps of every video frame, saved frame-accurately: the same frames, at the same times.

Formats (`dbd-rt video --save-maps DIR --maps-format ...`), each for both maps, at the video's
upright frame size:
- `mkv`: `in_focus.mkv`, `depth.mkv`: FFV1, 16-bit grey, lossless. Matroska stores times in
  milliseconds, so each frame's time is the input's rounded to 1 ms.
- `mp4`: `in_focus.mp4`, `depth.mp4`: H.264 8-bit grey (CRF 10: near-lossless, plays anywhere), at
  the input's own time base.
- `png`: `in_focus/000000.png`, ... and `depth/...`: 16-bit PNG per frame; `frames.csv` gives each
  file's index, pts and time in seconds.
Values: in-focus probability x 65535 (x 255 in mp4), 65535 = in focus; relative depth (0 near, 1
far, per frame) x 65535 likewise. `maps.json` records the formats, sizes, frame count and time base.
Every file appears only when complete (temporary names, renamed at the end); a stopped job keeps
the frames done, like the overlay video.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from runtime.files import temporary_path, write_bytes_atomically
from runtime.overlay import upsample
from runtime.video_io import VideoError, VideoWriter, discard

MAPS = ("in_focus", "depth")


class MapFormat(str, Enum):
    mkv = "mkv"
    mp4 = "mp4"
    png = "png"


@dataclass(frozen=True)
class SaveMaps:
    folder: Path
    formats: tuple[MapFormat, ...] = (MapFormat.mkv,)


def to_u16(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


class _LosslessGrey:
    """FFV1 gray16le in Matroska, written to a temporary name."""

    def __init__(self, out: Path, width: int, height: int, time_base: Fraction, rate: Fraction) -> None:
        self.out, self.tmp, self.time_base = out, temporary_path(out), time_base
        self._container = av.open(str(self.tmp), mode="w")
        self._stream = self._container.add_stream("ffv1", rate=rate)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "gray16le"
        self._stream.codec_context.time_base = time_base

    def write(self, values: np.ndarray, pts: int) -> None:
        frame = av.VideoFrame.from_ndarray(to_u16(values), format="gray16le")
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def finish(self) -> Path:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        discard(self._container, self.tmp)


class _GreyH264:
    """8-bit grey through the overlay writer: I420 with neutral chroma."""

    def __init__(self, out: Path, width: int, height: int, time_base: Fraction, rate: Fraction) -> None:
        self.out = out
        self._writer = VideoWriter(out, width, height, time_base, rate, crf=10)
        self._i420 = np.full((self._writer.height * 3 // 2, self._writer.width), 128, np.uint8)

    def write(self, values: np.ndarray, pts: int) -> None:
        h, w = values.shape
        y = self._i420[: self._writer.height]
        y[:h, :w] = cv2.convertScaleAbs(values, alpha=255.0)
        self._writer.write_i420(self._i420, pts)

    def finish(self) -> Path:
        return self._writer.finish()

    def abort(self) -> None:
        self._writer.abort()


class _PngSequence:
    """NNNNNN.png files in a hidden folder, renamed to `out` when complete."""

    def __init__(self, out: Path) -> None:
        self.out, self.tmp = out, temporary_path(out)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.count = 0

    def write(self, values: np.ndarray, pts: int) -> None:
        path = self.tmp / f"{self.count:06d}.png"
        if not cv2.imwrite(str(path), to_u16(values)):
            raise OSError(f"{path}: cannot write")
        self.count += 1

    def finish(self) -> Path:
        if self.out.exists():  # an earlier run's sequence: replaced whole, never mixed
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class MapWriter:
    """Writes both maps of every frame in the chosen formats into `folder`."""

    def __init__(self, folder: Path, formats: tuple[MapFormat, ...], frame_hw: tuple[int, int], time_base: Fraction, rate: Fraction) -> None:
        self.folder, self.formats, self.frame_hw = Path(folder), tuple(dict.fromkeys(formats)), frame_hw
        self.time_base, self.rate = Fraction(time_base), Fraction(rate)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows: list[tuple[int, int, float]] = []
        self._sinks: dict[tuple[str, MapFormat], _LosslessGrey | _GreyH264 | _PngSequence] = {}
        h, w = frame_hw
        try:
            for fmt in self.formats:
                for name in MAPS:
                    if fmt is MapFormat.mkv:
                        self._sinks[name, fmt] = _LosslessGrey(self.folder / f"{name}.mkv", w, h, self.time_base, self.rate)
                    elif fmt is MapFormat.mp4:
                        self._sinks[name, fmt] = _GreyH264(self.folder / f"{name}.mp4", w, h, self.time_base, self.rate)
                    else:
                        self._sinks[name, fmt] = _PngSequence(self.folder / name)
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise VideoError(f"{self.folder}: cannot write the maps here ({exc})") from None

    def write(self, in_focus: np.ndarray, depth: np.ndarray, pts: int) -> None:
        """One frame's maps at any size (scaled to the frame's, bilinear), at `pts` (input time base)."""
        maps = {name: upsample(values, self.frame_hw) for name, values in zip(MAPS, (in_focus, depth))}
        try:
            for (name, _), sink in self._sinks.items():
                sink.write(maps[name], pts)
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"{self.folder}: writing the maps failed ({exc})") from None
        self.rows.append((len(self.rows), pts, float(pts * self.time_base)))

    def finish(self) -> list[Path]:
        """Close every file and rename it into place; then frames.csv and maps.json."""
        if not self.rows:
            self.abort()
            return []
        written = [sink.finish() for sink in self._sinks.values()]
        lines = ["index,pts,time_s"] + [f"{i},{pts},{t:.6f}" for i, pts, t in self.rows]
        written.append(write_bytes_atomically(self.folder / "frames.csv", ("\n".join(lines) + "\n").encode()))
        doc = {
            "frames": len(self.rows),
            "width": self.frame_hw[1],
            "height": self.frame_hw[0],
            "time_base": str(self.time_base),
            "formats": [f.value for f in self.formats],
            "in_focus": "probability x 65535 (x 255 in mp4); 65535 = in focus",
            "depth": "relative depth per frame x 65535 (x 255 in mp4); 0 = near",
            "files": sorted(p.name for p in written),
        }
        written.append(write_bytes_atomically(self.folder / "maps.json", json.dumps(doc, indent=2).encode()))
        return written

    def abort(self) -> None:
        for sink in self._sinks.values():
            sink.abort()
