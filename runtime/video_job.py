"""One video file through the model, on three threads: decode + prepare -> infer -> draw + encode.

This module owns the threads; video_io only reads and writes. Bounded queues between the stages
keep memory flat whatever the clip's length, and frame order is kept. Frames travel as I420, the
decoder's and encoder's own layout: no full-size BGR picture is ever made.

An interrupt (Ctrl-C, or SIGTERM through runtime.interrupts) stops reading, finishes the frames in
flight, copies the audio up to the last frame and closes the file: what was done stays playable.
Without an output (`out=None`, `dbd-rt batch --no-video`) the job only analyses: `on_result`
receives every frame's maps, in order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runtime.backends import Backend
from runtime.files import remove_stale_partials
from runtime.focus_assist import AssistConfig
from runtime.interrupts import interrupts_deferred, signal_name
from runtime.map_writer import MapWriter, SaveMaps
from runtime.overlay import OverlayStyle
from runtime.overlay_i420 import view_size
from runtime.pipeline import VIDEO_IMGSZ, FrameProcessor, FrameResult, Renderer, StageTimes, model_size_for, squash_note
from runtime.smoothing import SmoothingConfig
from runtime.video_io import DEFAULT_PRESET, VideoProbe, VideoReader, VideoWriter

_END = object()
QUEUE_FRAMES = 8


@dataclass(frozen=True)
class VideoJobResult:
    input: str
    output: str | None  # None when interrupted before the first frame, or when only analysing
    frames: int
    frames_expected: int  # what the container said (0: it did not say)
    seconds: float
    fps: float
    stages_ms: dict[str, float]
    codec: str
    rate: float
    rate_source: str
    width: int
    height: int
    rotation: int
    audio: bool
    interrupted: str | None  # "Ctrl-C", "SIGTERM" or None
    backend: str
    input_size: str  # the network input, HxW
    maps: list[str]  # files written by --save-maps

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Stage(threading.Thread):
    """Runs `work` on its own thread; an exception is kept for the job's thread to raise."""

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # surfaced by the job's own thread
            self.error = exc


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class VideoJob:
    """Every frame, in order, none dropped, each at its own timestamp.

    The output appears at `out` only when complete; on any error it does not. `threaded=False`
    decodes and encodes in the caller's thread, so the stage times add up to the total (the bench
    uses it). `imgsz`: the network input's short side for a dynamic model (see model_size_for).
    """

    def __init__(
        self,
        probe: VideoProbe,
        out: Path | None,
        backend: Backend,
        style: OverlayStyle,
        on_frame: Callable[[int, float], None] | None = None,
        on_note: Callable[[str], None] | None = None,
        on_result: Callable[[FrameResult], None] | None = None,
        threaded: bool = True,
        preset: str = DEFAULT_PRESET,
        imgsz: int = VIDEO_IMGSZ,
        smoothing: SmoothingConfig | None = SmoothingConfig(),
        assist: AssistConfig | None = None,
        save_maps: SaveMaps | None = None,
    ) -> None:
        self.probe, self.out, self.backend = probe, out, backend
        self.threaded, self.imgsz = threaded, imgsz
        self.on_frame, self.on_result = on_frame, on_result
        self.note = on_note or (lambda message: None)
        self.times = StageTimes()
        self.processor = FrameProcessor(backend, self.times, imgsz, smoothing)
        if self.processor.smoother is not None:  # depth smoothed only where someone sees or keeps it
            self.processor.smoother.depth = style.view.shows_depth or save_maps is not None or on_result is not None
        self.renderer = Renderer(style, self.times, assist, probe.time_base)
        self.frames = 0
        self._decode_ms: list[float] = []
        self._encode_ms: list[float] = []
        self._stop = threading.Event()
        self._abandon = threading.Event()  # an error: the encoder drops what is left unwritten
        self._to_infer: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._to_encode: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._decoder = _Stage("decode", self._decode_loop)
        self._encoder = _Stage("encode", self._encode_loop)
        squash = squash_note((probe.height, probe.width), backend)
        if squash:
            self.note(squash)
        self.reader = VideoReader(probe)
        self.writer: VideoWriter | None = None
        self.maps: MapWriter | None = None
        self._maps_written: list[str] = []
        try:
            self.writer = self._open_writer(style, preset) if out is not None else None
            if save_maps is not None:
                self.maps = MapWriter(save_maps.folder, save_maps.formats, (probe.height, probe.width), probe.time_base, probe.rate)
        except BaseException:
            if self.writer is not None:
                self.writer.abort()
            self.reader.close()
            raise

    def _open_writer(self, style: OverlayStyle, preset: str) -> VideoWriter:
        p, out = self.probe, self.out
        assert out is not None
        for stale in remove_stale_partials(out):
            self.note(f"removed {stale.name}, left by an earlier run that was killed")
        frame_size = (p.height + p.height % 2, p.width + p.width % 2)
        out_h, out_w = view_size(style.view, frame_size)
        writer = VideoWriter(out, out_w, out_h, p.time_base, p.rate, self.reader.audio_stream, preset)
        if not writer.is_h264:
            self.note(f"no H.264 encoder in this FFmpeg build; writing {writer.codec} instead")
        if frame_size != (p.height, p.width):
            self.note(f"{p.width}x{p.height} is odd-sized; padded to {frame_size[1]}x{frame_size[0]} for H.264's 4:2:0 colour")
        if (out_h, out_w) != (frame_size[0], frame_size[1] * style.view.panels):
            self.note(f"the {style.view.value} view is scaled to {out_w}x{out_h} to stay playable (at most 3840 wide)")
        return writer

    # ---------------------------------------------------------------- stages

    def _decoded(self) -> Iterator[tuple[Any, Any, int]]:
        input_h, input_w = self.processor.input_size((self.probe.height, self.probe.width))
        frames = iter(self.reader)
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)
            if item is None:
                return
            i420 = item.i420()
            self._decode_ms.append((time.perf_counter() - t0) * 1000)
            with self.times.time("preprocess"):
                batch = item.resized_bgr(input_h, input_w)[None]
            yield i420, batch, item.pts

    def _decode_loop(self) -> None:
        try:
            for item in self._decoded():
                if not _put(self._to_infer, item, self._stop):
                    return
        finally:
            _put(self._to_infer, _END, self._stop)

    def _encode(self, result: FrameResult) -> None:
        if self.maps is not None:
            self.maps.write(result.in_focus_model, result.depth_model, result.pts)
        if self.writer is None:
            return
        image = self.renderer(result)
        t0 = time.perf_counter()
        self.writer.write_i420(image, result.pts)
        self.writer.mux_audio(self.reader.audio, until_s=self.writer.last_time)
        self._encode_ms.append((time.perf_counter() - t0) * 1000)

    def _encode_loop(self) -> None:
        while (item := self._to_encode.get()) is not _END:
            if not self._abandon.is_set():
                self._encode(item)

    def _hand_to_encoder(self, item: object) -> None:
        while True:
            if self._encoder.error is not None:
                raise self._encoder.error
            try:
                self._to_encode.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _emit(self, results: list[FrameResult]) -> None:
        for r in results:
            if self.on_result:
                self.on_result(r)
            if self.threaded:
                self._hand_to_encoder(r)
            else:
                self._encode(r)
            self.frames += 1

    # ---------------------------------------------------------------- the run

    def run(self) -> VideoJobResult:
        interrupt: BaseException | None = None
        t_start = time.perf_counter()
        try:
            if self.threaded:
                self._decoder.start()
                self._encoder.start()
            try:
                source = iter(self._to_infer.get, _END) if self.threaded else self._decoded()
                for frame, batch, pts in source:
                    self._emit(self.processor.push_prepared(frame, batch, pts, i420=True))
                    if self.on_frame:
                        self.on_frame(self.frames, self.frames / (time.perf_counter() - t_start))
                if self._decoder.error is not None:
                    raise self._decoder.error
            except KeyboardInterrupt as exc:
                interrupt = exc
            name = self.out.name if self.out else self.probe.path.name
            with interrupts_deferred(lambda sig: self.note(f"{sig} again: still finishing {name}, one moment")):
                written = self._finish(interrupt)
        except BaseException:
            self._abort()
            raise
        finally:
            self._stop.set()
            # The decoder may be inside PyAV on the container: closing it under the decoder's feet
            # is a use-after-free (a segfault, seen when the first frame is refused).
            if self._decoder.is_alive():
                self._decoder.join()
            self.reader.close()
        return self._result(written, interrupt, time.perf_counter() - t_start)

    def _finish(self, interrupt: BaseException | None) -> str | None:
        """Stop reading, drain the frames in flight, close the file (renamed into place)."""
        self._stop.set()
        if self.threaded:
            self._decoder.join()
            if self._decoder.error is not None and interrupt is None:
                raise self._decoder.error
        self._emit(self.processor.drain())
        if self.threaded:
            self._hand_to_encoder(_END)
            self._encoder.join()
            if self._encoder.error is not None:
                raise self._encoder.error
        if self.maps is not None:
            self._maps_written = [str(p) for p in self.maps.finish()]
        if self.writer is None:
            return None
        if interrupt is not None and self.frames == 0:
            self.writer.abort()
            return None
        # Audio may be stored up to a second behind the picture: read on to the last frame.
        until = self.writer.last_time + float(1 / self.probe.rate)
        self.reader.read_audio_until(until)
        return str(self.writer.finish(self.reader.audio, until))

    def _abort(self) -> None:
        self._stop.set()
        self._abandon.set()
        if self._encoder.is_alive():
            # It drops what is queued once _abandon is set, but the frame it is encoding must be
            # done before the writer closes under it (a use-after-free in FFmpeg otherwise).
            self._to_encode.put(_END)
            self._encoder.join()
        if self.writer is not None:
            self.writer.abort()
        if self.maps is not None:
            self.maps.abort()

    def _result(self, written: str | None, interrupt: BaseException | None, seconds: float) -> VideoJobResult:
        p, frames = self.probe, self.frames
        self.times.add("decode", self._decode_ms[:frames])
        self.times.add("encode", self._encode_ms)
        if interrupt is None and p.frames and frames < p.frames:
            self.note(f"{p.path}: {frames} of the {p.frames} frames the file lists were readable; it looks truncated")
        return VideoJobResult(
            input=str(p.path),
            output=written,
            frames=frames,
            frames_expected=p.frames,
            seconds=seconds,
            fps=frames / seconds if seconds else 0.0,
            stages_ms=self.times.per_frame(frames),
            codec=self.writer.codec if self.writer else "",
            rate=float(p.rate),
            rate_source=p.rate_source,
            width=self.writer.width if self.writer else p.width,
            height=self.writer.height if self.writer else p.height,
            rotation=p.rotation,
            audio=p.has_audio,
            interrupted=None if interrupt is None else signal_name(interrupt),
            backend=self.backend.name,
            input_size="{}x{}".format(*model_size_for((p.height, p.width), self.backend, self.imgsz)),
            maps=self._maps_written,
        )


def process_video(probe: VideoProbe, out: Path | None, backend: Backend, style: OverlayStyle, **kwargs: Any) -> VideoJobResult:
    """Run one VideoJob (keyword arguments as VideoJob takes them)."""
    return VideoJob(probe, out, backend, style, **kwargs).run()
