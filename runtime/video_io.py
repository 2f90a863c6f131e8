"""Video files with PyAV: checked opening, upright decoded frames with their timestamps, and an
H.264 writer that keeps those timestamps and copies the audio. I/O only: no threads (video_job
runs these on its own threads) and no drawing.

Frames come out as players show them: the stream's display matrix (every portrait phone clip has
one) is applied, and the output carries none. Each frame keeps its presentation time, so variable
frame rate clips (phones, screen recordings) keep their timing and their audio stays in sync.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from runtime.files import temporary_path

DEFAULT_FPS = Fraction(30)
H264_CODECS = ("libx264", "h264")
FALLBACK_CODEC = "mpeg4"
# Containers the writer produces (H.264 in each); anything else is refused before work starts.
OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv")
# x264 speed preset: on a 2-core CPU the encoder shares the cores with the network, and a
# side-by-side 640x480 view is 1920x480 pixels. Measured there: ultrafast 13-16 ms per frame,
# superfast 21-26, veryfast 26-34 (files about 4x, 2x, 1x the size).
DEFAULT_PRESET = "ultrafast"
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")
# Display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it) -> the turn that makes
# the coded picture upright.
_UPRIGHT = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, -90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, -180: cv2.ROTATE_180}


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class VideoProbe:
    path: Path
    width: int  # as displayed: after the rotation
    height: int
    rotation: int  # display-matrix rotation, degrees counter-clockwise (0, 90, -90, 180)
    rate: Fraction  # nominal frame rate: the output's for a stream without timestamps
    rate_source: str  # "container", "stream" (the codec's own timing info) or "assumed"
    frames: int  # as the container reports it; 0 when unknown
    has_audio: bool
    time_base: Fraction  # of the frame timestamps
    timestamps: bool  # frames carry presentation times (False for raw .h264 and the like)

    @property
    def rate_fallback(self) -> bool:
        return self.rate_source == "assumed"


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded frame as stored (possibly sideways), with what makes it upright."""

    frame: av.VideoFrame
    pts: int  # presentation time in the probe's time_base
    rotation: int  # display-matrix rotation, degrees counter-clockwise
    # One per reader: swscale's context is built once, not per frame (1.0 against 2.7 ms at 1080p).
    reformatter: VideoReformatter

    def bgr(self) -> np.ndarray:
        """Upright BGR uint8 at full size."""
        return _turn(self.frame.to_ndarray(format="bgr24"), self.rotation)

    def i420(self) -> np.ndarray:
        """Upright I420 at full size, (H * 3 / 2, W); an odd side gets one replicated row/column,
        as 4:2:0 chroma needs even sides."""
        f = self.frame
        if f.width % 2 or f.height % 2:
            bgr = f.to_ndarray(format="bgr24")
            bgr = np.pad(bgr, ((0, f.height % 2), (0, f.width % 2), (0, 0)), mode="edge")
            yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        else:
            yuv = f.to_ndarray(format="yuv420p")
        return _turn_i420(yuv, self.rotation)

    def resized_bgr(self, height: int, width: int) -> np.ndarray:
        """Upright BGR at (height, width), scaled from the decoded YUV by FFmpeg's swscale with
        area averaging in one pass: 1 ms at 1080p where OpenCV's area resize of the full BGR frame
        took 7."""
        h, w = (width, height) if self.rotation in (90, -90) else (height, width)
        small = self.reformatter.reformat(self.frame, width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()
        return _turn(small, self.rotation)


def _turn(image: np.ndarray, rotation: int) -> np.ndarray:
    turn = _UPRIGHT.get(rotation)
    return image if turn is None else cv2.rotate(image, turn)


def _turn_i420(yuv: np.ndarray, rotation: int) -> np.ndarray:
    if rotation not in _UPRIGHT:
        return yuv
    h, w = yuv.shape[0] * 2 // 3, yuv.shape[1]
    flat, n = yuv.reshape(-1), h * w
    y, u, v = flat[:n].reshape(h, w), flat[n : n * 5 // 4].reshape(h // 2, w // 2), flat[n * 5 // 4 :].reshape(h // 2, w // 2)
    ty, tu, tv = (cv2.rotate(p, _UPRIGHT[rotation]) for p in (y, u, v))
    return np.concatenate([ty.ravel(), tu.ravel(), tv.ravel()]).reshape(-1, ty.shape[1])


def _valid_rate(rate: Fraction | None) -> bool:
    return rate is not None and rate.denominator != 0 and math.isfinite(float(rate)) and 0 < float(rate) <= 1000


def _rotation(frame: av.VideoFrame) -> int:
    try:
        degrees = int(round(frame.rotation))
    except (AttributeError, TypeError, ValueError):
        return 0
    return degrees if degrees in _UPRIGHT else 0


def _rate(container: av.container.InputContainer, stream: av.video.stream.VideoStream, timestamps: bool) -> tuple[Fraction, str]:
    """The nominal rate. A container with timestamps knows its average; a raw stream's demuxer
    invents 25 fps, while the codec's own timing info (H.264 VUI) holds the real one."""
    candidates = [(stream.average_rate, "container"), (stream.guessed_rate, "container")] if timestamps else []
    candidates += [(stream.codec_context.framerate, "stream"), (stream.guessed_rate, "stream")]
    for rate, source in candidates:
        if _valid_rate(rate):
            return Fraction(rate), source
    return DEFAULT_FPS, "assumed"


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
            rotation = _rotation(first)
            w, h = (first.height, first.width) if rotation in (90, -90) else (first.width, first.height)
            timestamps = first.pts is not None and stream.time_base is not None
            rate, source = _rate(container, stream, timestamps)
            return VideoProbe(
                path=path,
                width=w,
                height=h,
                rotation=rotation,
                rate=rate,
                rate_source=source,
                frames=int(stream.frames or 0),
                has_audio=bool(container.streams.audio),
                time_base=Fraction(stream.time_base) if timestamps else 1 / rate,
                timestamps=timestamps,
            )
    except VideoError:
        raise
    except PermissionError:
        raise VideoError(f"{path}: permission denied") from None
    except (av.error.FFmpegError, OSError, StopIteration) as exc:
        raise VideoError(f"{path}: not a readable video ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]


class VideoReader:
    """Decodes the first video stream into upright BGR frames with timestamps, in order.

    Audio packets met on the way are kept aside in `audio` (appended here, taken by the writer's
    thread; deque appends and pops are thread-safe) to be copied into the output unchanged.
    """

    def __init__(self, probe: VideoProbe) -> None:
        self.probe = probe
        self.audio: deque[av.Packet] = deque()
        self.decoded = 0
        self._container = av.open(str(probe.path))
        self._video = self._container.streams.video[0]
        self._video.thread_type = "AUTO"
        self.audio_stream = self._container.streams.audio[0] if self._container.streams.audio else None
        self._packets = self._container.demux(*[s for s in (self._video, self.audio_stream) if s is not None])
        self._last_pts: int | None = None
        self._reformatter = VideoReformatter()

    def __iter__(self) -> Iterator[DecodedFrame]:
        try:
            for packet in self._packets:
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        self.audio.append(packet)
                    continue
                for frame in packet.decode():
                    yield DecodedFrame(frame, self._pts(frame), self.probe.rotation, self._reformatter)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.probe.path}: decoding failed at frame {self.decoded + 1} ({_reason(exc)})") from None

    def _pts(self, frame: av.VideoFrame) -> int:
        """The frame's timestamp, made strictly increasing; counted at the nominal rate when the
        stream has none."""
        self.decoded += 1
        pts = frame.pts if self.probe.timestamps and frame.pts is not None else self.decoded - 1
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def read_audio_until(self, seconds: float) -> None:
        """Demux on (skipping video) until the audio reaches `seconds`: an interrupted job stops
        reading early, and a file may store its audio up to a second behind the picture."""
        if self.audio_stream is None:
            return
        try:
            for packet in self._packets:
                if packet.stream.type != "audio" or packet.dts is None:
                    continue
                self.audio.append(packet)
                if packet.pts is not None and float(packet.pts * packet.time_base) >= seconds:
                    return
        except av.error.FFmpegError:
            return  # a damaged tail: keep the audio read so far

    def close(self) -> None:
        self._container.close()


def read_frames(path: Path, count: int | None = None, indices: tuple[int, ...] | None = None) -> list[np.ndarray]:
    """Upright BGR frames of a video: the first `count`, or those at `indices` (0-based)."""
    wanted = None if indices is None else set(indices)
    reader = VideoReader(probe_video(path))
    frames: list[np.ndarray] = []
    try:
        for i, frame in enumerate(reader):
            if wanted is None or i in wanted:
                frames.append(frame.bgr())
            if len(frames) == (count if wanted is None else len(wanted)):
                break
    finally:
        reader.close()
    return frames


class VideoWriter:
    """H.264 (yuv420p) with each frame at its own timestamp, and copied audio.

    Written to a temporary name beside the output and renamed only when complete, so an error
    never leaves a half-written file where the user expects a video.
    """

    def __init__(
        self,
        out: Path,
        width: int,
        height: int,
        time_base: Fraction,
        rate: Fraction,
        audio_template: av.audio.stream.AudioStream | None = None,
        preset: str = DEFAULT_PRESET,
        crf: int = 23,
    ) -> None:
        self.out = Path(out)
        self.tmp = temporary_path(self.out)
        self.preset, self.crf = preset, crf
        self.time_base = Fraction(time_base)
        # 4:2:0 chroma needs even sides: odd frames get one replicated row/column.
        self.width, self.height = width + width % 2, height + height % 2
        self.padded = (self.width, self.height) != (width, height)
        self.frames_written = 0
        self.last_time = 0.0  # seconds: where the picture has reached
        try:
            self._container = av.open(str(self.tmp), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"{self.out}: cannot write here ({_reason(exc)})") from None
        try:
            self.codec = self._add_video_stream(rate)
            self._audio_out = self._container.add_stream_from_template(audio_template) if audio_template is not None else None
        except BaseException:
            self.abort()
            raise
        self._audio_pending: av.Packet | None = None

    def _add_video_stream(self, rate: Fraction) -> str:
        for codec in (*H264_CODECS, FALLBACK_CODEC):
            try:
                stream = self._container.add_stream(codec, rate=rate)
            except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
                continue
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.codec_context.time_base = self.time_base
            if codec == "libx264":
                stream.options = {"preset": self.preset, "crf": str(self.crf)}
            self._video_out = stream
            return codec
        raise VideoError(f"{self.out}: no H.264 or MPEG-4 encoder in this FFmpeg build")

    @property
    def is_h264(self) -> bool:
        return self.codec in H264_CODECS

    def write(self, image: np.ndarray, pts: int) -> None:
        """One BGR picture at `pts` (in `time_base`; strictly increasing)."""
        if self.padded:
            image = np.pad(image, ((0, self.height - image.shape[0]), (0, self.width - image.shape[1]), (0, 0)), mode="edge")
        # OpenCV's BGR -> I420 (BT.601, limited range, as libswscale's default) is ~6x faster than
        # letting the encoder convert a bgr24 frame: 0.9 against 5.2 ms for a 1920x480 side-by-side.
        self.write_i420(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), pts)

    def write_i420(self, i420: np.ndarray, pts: int) -> None:
        """One I420 picture, (height * 3 / 2, width), at `pts`."""
        try:
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
            frame.pts = pts
            frame.time_base = self.time_base
            for packet in self._video_out.encode(frame):
                self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"{self.out}: encoding failed ({_reason(exc)})") from None
        self.frames_written += 1
        self.last_time = float(pts * self.time_base)

    def mux_audio(self, packets: deque[av.Packet], until_s: float) -> None:
        """Copy the audio packets that start before `until_s`; keep the rest for a later call."""
        if self._audio_out is None:
            return
        while True:
            packet = self._audio_pending
            self._audio_pending = None
            if packet is None:
                try:
                    packet = packets.popleft()
                except IndexError:
                    return
            if packet.pts is not None and float(packet.pts * packet.time_base) >= until_s:
                self._audio_pending = packet
                return
            packet.stream = self._audio_out
            try:
                self._container.mux(packet)
            except av.error.FFmpegError:
                pass  # one bad audio packet must not cost the video

    def finish(self, audio: deque[av.Packet] | None = None, audio_until_s: float | None = None) -> Path:
        """Flush the encoder, copy audio up to `audio_until_s`, close and rename into place."""
        try:
            for packet in self._video_out.encode(None):
                self._container.mux(packet)
            if audio is not None:
                self.mux_audio(audio, self.last_time if audio_until_s is None else audio_until_s)
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise VideoError(f"{self.out}: finishing the file failed ({_reason(exc)})") from None
        if self.frames_written == 0:
            self.abort()
            raise VideoError(f"{self.out}: no frames were written")
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        """Stop without producing an output file."""
        discard(self._container, self.tmp)


def discard(container: av.container.OutputContainer, tmp: Path) -> None:
    """Close a half-written output and remove its temporary file."""
    try:
        container.close()
    except Exception:
        pass  # a container that failed mid-write may not close cleanly; it is deleted anyway
    tmp.unlink(missing_ok=True)


def check_output_video(out: Path) -> str | None:
    """Why `out` cannot be a video output (None when it can): checked before any work."""
    if out.is_dir():
        return f"{out}: is a folder; give a file name such as {out / 'out.mp4'}"
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        shown = out.suffix or "no suffix"
        return f"{out}: {shown} is not a video format dbd-rt writes; use {', '.join(OUTPUT_SUFFIXES)}"
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return f"{out}: the output folder {parent} does not exist"
    if not os.access(parent, os.W_OK):
        return f"{out}: the folder {parent} is not writable"
    return None
