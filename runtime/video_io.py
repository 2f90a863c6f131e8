"""Video files with PyAV: checked opening, a decoding thread, and an H.264 writer that copies audio.

The writer works on a temporary name next to the output and renames it only when the file is
complete, so an error never leaves a half-written file where the user expects a video.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import cv2
import numpy as np

DEFAULT_FPS = Fraction(30)
H264_CODECS = ("libx264", "h264")
FALLBACK_CODEC = "mpeg4"
# x264 speed preset: on a 2-core CPU the encoder shares the cores with the network, and a
# side-by-side 640x480 view is 1920x480 pixels. Measured there: ultrafast 13-16 ms per frame,
# superfast 21-26, veryfast 26-34 (files about 4x, 2x, 1x the size).
DEFAULT_PRESET = "ultrafast"
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class VideoProbe:
    path: Path
    width: int
    height: int
    rate: Fraction
    rate_fallback: bool  # the container reported no usable frame rate; DEFAULT_FPS is used
    frames: int  # as the container reports it; 0 when unknown
    has_audio: bool


def _valid_rate(rate: Fraction | None) -> bool:
    return rate is not None and rate.denominator != 0 and math.isfinite(float(rate)) and float(rate) > 0


def probe_video(path: Path) -> VideoProbe:
    """Open the file, find a video stream and decode one frame; any failure is a VideoError."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoError(f"{path}: the video has no frames")
            rate = stream.average_rate or stream.guessed_rate
            return VideoProbe(
                path=path,
                width=first.width,
                height=first.height,
                rate=Fraction(rate) if _valid_rate(rate) else DEFAULT_FPS,
                rate_fallback=not _valid_rate(rate),
                frames=int(stream.frames or 0),
                has_audio=bool(container.streams.audio),
            )
    except VideoError:
        raise
    except PermissionError:
        raise VideoError(f"{path}: permission denied") from None
    except (av.error.FFmpegError, OSError, StopIteration) as exc:
        raise VideoError(f"{path}: not a readable video ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]


_END = object()


class FrameReader:
    """Decodes in a thread into a bounded queue, so inference never waits on the decoder.

    Audio packets are kept aside (unbounded: audio is small) for the writer to copy. With
    `threaded=False` frames are decoded in the caller's thread instead (the bench uses this to time
    stages that add up).
    """

    def __init__(self, probe: VideoProbe, max_queue: int = 8, threaded: bool = True, transform: Callable[[np.ndarray], Any] | None = None) -> None:
        self.probe = probe
        self.threaded = threaded
        # Applied to each decoded frame on the decoding thread (the pipeline resizes there, so the
        # inference thread only infers); not part of decode_ms.
        self.transform = transform
        self.frames: queue.Queue = queue.Queue(max_queue)
        self.audio: queue.Queue = queue.Queue()
        self.audio_stream = None  # the input audio stream, template for the writer
        self.decode_ms: list[float] = []
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._container = av.open(str(probe.path))
        self._video = self._container.streams.video[0]
        self._video.thread_type = "AUTO"
        if self._container.streams.audio:
            self.audio_stream = self._container.streams.audio[0]
        self._thread = threading.Thread(target=self._run, name="decode", daemon=True)

    def start(self) -> "FrameReader":
        if self.threaded:
            self._thread.start()
        return self

    def _decode(self) -> Iterator[np.ndarray]:
        streams = [self._video] + ([self.audio_stream] if self.audio_stream is not None else [])
        try:
            t0 = time.perf_counter()
            for packet in self._container.demux(*streams):
                if self._stop.is_set():
                    return
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        self.audio.put(packet)
                    continue
                for frame in packet.decode():
                    image = frame.to_ndarray(format="bgr24")
                    self.decode_ms.append((time.perf_counter() - t0) * 1000)
                    yield image
                    t0 = time.perf_counter()
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.probe.path}: decoding failed ({_reason(exc)})") from None

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self.frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _frames(self) -> Iterator[Any]:
        return self._decode() if self.transform is None else map(self.transform, self._decode())

    def _run(self) -> None:
        try:
            for item in self._frames():
                if not self._put(item):
                    return
        except Exception as exc:  # a decoding VideoError or a failing transform: surfaced to the consumer
            self.error = exc
        finally:
            self._put(_END)

    def __iter__(self) -> Iterator[Any]:
        if not self.threaded:
            yield from self._frames()
            return
        while True:
            item = self.frames.get()
            if item is _END:
                if self.error is not None:
                    raise self.error
                return
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._container.close()


def temporary_path(out: Path) -> Path:
    """Where a file is written before it is complete: hidden, beside the output, same suffix."""
    return out.with_name(f".{out.stem}.partial{out.suffix}")


class VideoWriter:
    """H.264 (yuv420p) MP4 at a fixed frame rate, encoded in its own thread, with copied audio."""

    def __init__(
        self,
        out: Path,
        rate: Fraction,
        width: int,
        height: int,
        audio_template=None,
        audio_packets: queue.Queue | None = None,
        max_queue: int = 8,
        threaded: bool = True,
        preset: str = DEFAULT_PRESET,
        render: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        self.out = Path(out)
        # Turns each written item into the picture, on the encoding thread; not part of encode_ms.
        self.render = render
        self.preset = preset
        self.tmp = temporary_path(self.out)
        self.rate = rate
        # 4:2:0 chroma needs even sides: odd frames get one replicated row/column.
        self.width, self.height = width + width % 2, height + height % 2
        self.padded = (self.width, self.height) != (width, height)
        self.encode_ms: list[float] = []
        self.frames_written = 0
        self.error: Exception | None = None
        self._container = av.open(str(self.tmp), mode="w")
        self.codec = self._add_video_stream()
        self._audio_out = self._container.add_stream_from_template(audio_template) if audio_template is not None else None
        self._audio_src = audio_packets
        self._audio_pending = None
        self._queue: queue.Queue = queue.Queue(max_queue)
        self.threaded = threaded
        self._thread = threading.Thread(target=self._run, name="encode", daemon=True)
        if threaded:
            self._thread.start()

    def _add_video_stream(self) -> str:
        for codec in (*H264_CODECS, FALLBACK_CODEC):
            try:
                stream = self._container.add_stream(codec, rate=self.rate)
            except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
                continue
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            if codec == "libx264":
                stream.options = {"preset": self.preset, "crf": "23"}
            self._video_out = stream
            return codec
        raise VideoError(f"{self.out}: no H.264 or MPEG-4 encoder in this FFmpeg build")

    @property
    def is_h264(self) -> bool:
        return self.codec in H264_CODECS

    def write(self, item: Any) -> None:
        """Queue a picture (or, with `render`, what render turns into one)."""
        if self.error is not None:
            raise self.error
        if self.threaded:
            self._queue.put(item)
        else:
            self._encode(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is None:
                self._encode(item)

    def _encode(self, item: Any) -> None:
        try:
            image = self.render(item) if self.render is not None else item
        except Exception as exc:  # a drawing bug, not an encoding failure: surfaced unchanged
            self.error = exc
            return
        try:
            t0 = time.perf_counter()
            if self.padded:
                image = np.pad(image, ((0, self.height - image.shape[0]), (0, self.width - image.shape[1]), (0, 0)), mode="edge")
            # OpenCV's BGR -> I420 (BT.601, limited range, as libswscale's default) is ~6x faster than
            # letting the encoder convert a bgr24 frame: 0.9 against 5.2 ms for a 1920x480 side-by-side.
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
            frame.pts = self.frames_written
            frame.time_base = 1 / self.rate
            for packet in self._video_out.encode(frame):
                self._container.mux(packet)
            self.frames_written += 1
            # Audio goes in as the video advances, so the muxer never has to buffer a whole stream.
            self._copy_audio(until_s=self.frames_written / float(self.rate))
            self.encode_ms.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:
            self.error = VideoError(f"{self.out}: encoding failed ({_reason(exc)})")

    def _copy_audio(self, until_s: float) -> None:
        """Mux the copied audio packets that start before `until_s` seconds; keep the rest for later."""
        if self._audio_out is None or self._audio_src is None:
            return
        while True:
            packet = self._audio_pending
            self._audio_pending = None
            if packet is None:
                try:
                    packet = self._audio_src.get_nowait()
                except queue.Empty:
                    return
            if packet.pts is not None and float(packet.pts * packet.time_base) >= until_s:
                self._audio_pending = packet
                return
            packet.stream = self._audio_out
            self._container.mux(packet)

    def finish(self) -> Path:
        """Flush the encoder, copy audio up to the last video frame, close and rename into place."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self.error is not None:
            self.abort()
            raise self.error
        try:
            for packet in self._video_out.encode(None):
                self._container.mux(packet)
            self._copy_audio(until_s=self.frames_written / float(self.rate))
            self._container.close()
        except Exception as exc:
            self.abort()
            raise VideoError(f"{self.out}: finishing the file failed ({_reason(exc)})") from None
        if self.frames_written == 0:
            self.abort()
            raise VideoError(f"{self.out}: no frames were written")
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        """Stop without producing an output file."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
        try:
            self._container.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)
