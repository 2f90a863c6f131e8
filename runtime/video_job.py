"""One video file through the model, on three threads: decode + prepare -> infer -> draw + encode.

This module owns the threads; video_io only reads and writes. Bounded queues between the stages
keep memory flat whatever the clip's length, and frame order is kept.

An interrupt (Ctrl-C, or SIGTERM through runtime.interrupts) stops reading, finishes the frames in
flight, copies the audio up to the last frame and closes the file: what was done stays playable.
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
from runtime.interrupts import interrupts_deferred, signal_name
from runtime.overlay import OverlayStyle
from runtime.overlay_i420 import view_size
from runtime.pipeline import VIDEO_IMGSZ, FrameProcessor, FrameResult, Renderer, StageTimes, model_size_for, squash_note
from runtime.video_io import DEFAULT_PRESET, VideoProbe, VideoReader, VideoWriter

_END = object()
QUEUE_FRAMES = 8


@dataclass(frozen=True)
class VideoJobResult:
    input: str
    output: str | None  # None when interrupted before the first frame
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Stage(threading.Thread):
    """Runs `work` over items from `source` on its own thread; an exception is kept for the caller."""

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


def process_video(
    probe: VideoProbe,
    out: Path,
    backend: Backend,
    style: OverlayStyle,
    on_frame: Callable[[int, float], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    threaded: bool = True,
    preset: str = DEFAULT_PRESET,
    imgsz: int = VIDEO_IMGSZ,
) -> VideoJobResult:
    """Every frame, in order, none dropped, each at its own timestamp.

    The output appears at `out` only when complete; on any error it does not. `threaded=False`
    decodes and encodes in this thread, so the stage times add up to the total (the bench uses it).
    `imgsz`: the network input's short side for a dynamic model (see model_size_for).
    """
    note = on_note or (lambda message: None)
    times = StageTimes()
    processor = FrameProcessor(backend, times, imgsz)
    renderer = Renderer(style, times)
    for stale in remove_stale_partials(out):
        note(f"removed {stale.name}, left by an earlier run that was killed")
    squash = squash_note((probe.height, probe.width), backend)
    if squash:
        note(squash)
    # Frames travel as I420, the decoder's and encoder's own layout: no full-size BGR is ever made.
    frame_size = (probe.height + probe.height % 2, probe.width + probe.width % 2)
    out_h, out_w = view_size(style.view, frame_size)
    reader = VideoReader(probe)
    try:
        writer = VideoWriter(out, out_w, out_h, probe.time_base, probe.rate, reader.audio_stream, preset)
    except BaseException:
        reader.close()
        raise
    if not writer.is_h264:
        note(f"no H.264 encoder in this FFmpeg build; writing {writer.codec} instead")
    if frame_size != (probe.height, probe.width):
        note(f"{probe.width}x{probe.height} is odd-sized; padded to {frame_size[1]}x{frame_size[0]} for H.264's 4:2:0 colour")
    if (out_h, out_w) != (frame_size[0], frame_size[1] * style.view.panels):
        note(f"the {style.view.value} view is scaled to {out_w}x{out_h} to stay playable (at most 3840 wide)")
    decode_ms: list[float] = []
    encode_ms: list[float] = []

    input_h, input_w = processor.input_size((probe.height, probe.width))

    def decoded() -> Iterator[tuple[Any, Any, int]]:
        frames = iter(reader)
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)
            if item is None:
                return
            i420 = item.i420()
            decode_ms.append((time.perf_counter() - t0) * 1000)
            with times.time("preprocess"):
                batch = item.resized_bgr(input_h, input_w)[None]
            yield i420, batch, item.pts

    def encode(result: FrameResult) -> None:
        image = renderer(result)
        t0 = time.perf_counter()
        writer.write_i420(image, result.pts)
        writer.mux_audio(reader.audio, until_s=writer.last_time)
        encode_ms.append((time.perf_counter() - t0) * 1000)

    frames, interrupt = 0, None
    t_start = time.perf_counter()
    stop = threading.Event()
    to_infer: queue.Queue = queue.Queue(QUEUE_FRAMES)
    to_encode: queue.Queue = queue.Queue(QUEUE_FRAMES)

    abandon = threading.Event()  # an error: the encoder drops what is left unwritten

    def decode_loop() -> None:
        try:
            for item in decoded():
                if not _put(to_infer, item, stop):
                    return
        finally:
            _put(to_infer, _END, stop)

    def encode_loop() -> None:
        while (item := to_encode.get()) is not _END:
            if not abandon.is_set():
                encode(item)

    decoder, encoder = _Stage("decode", decode_loop), _Stage("encode", encode_loop)

    def hand_to_encoder(item: object) -> None:
        while True:
            if encoder.error is not None:
                raise encoder.error
            try:
                to_encode.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def emit(results: list[FrameResult]) -> None:
        nonlocal frames
        for r in results:
            if threaded:
                hand_to_encoder(r)
            else:
                encode(r)
            frames += 1

    try:
        if threaded:
            decoder.start()
            encoder.start()
        try:
            source = iter(to_infer.get, _END) if threaded else decoded()
            for frame, batch, pts in source:
                emit(processor.push_prepared(frame, batch, pts, i420=True))
                if on_frame:
                    on_frame(frames, frames / (time.perf_counter() - t_start))
            if decoder.error is not None:
                raise decoder.error
        except KeyboardInterrupt as exc:
            interrupt = exc
        with interrupts_deferred(lambda sig: note(f"{sig} again: still finishing {out.name}, one moment")):
            stop.set()
            if threaded:
                decoder.join()
                if decoder.error is not None and interrupt is None:
                    raise decoder.error
            emit(processor.drain())
            if threaded:
                hand_to_encoder(_END)
                encoder.join()
                if encoder.error is not None:
                    raise encoder.error
            if interrupt is not None and frames == 0:
                writer.abort()
                written = None
            else:
                # Audio may be stored up to a second behind the picture: read on to the last frame.
                reader.read_audio_until(writer.last_time + float(1 / probe.rate))
                written = str(writer.finish(reader.audio, writer.last_time + float(1 / probe.rate)))
    except BaseException:
        stop.set()
        abandon.set()
        if encoder.is_alive():
            try:
                to_encode.put(_END, timeout=5)
            except queue.Full:
                pass
            encoder.join(timeout=5)
        writer.abort()
        raise
    finally:
        stop.set()
        reader.close()
    seconds = time.perf_counter() - t_start
    times.add("decode", decode_ms[:frames])
    times.add("encode", encode_ms)
    if interrupt is None and probe.frames and frames < probe.frames:
        note(f"{probe.path}: {frames} of the {probe.frames} frames the file lists were readable; it looks truncated")
    return VideoJobResult(
        input=str(probe.path),
        output=written,
        frames=frames,
        frames_expected=probe.frames,
        seconds=seconds,
        fps=frames / seconds if seconds else 0.0,
        stages_ms=times.per_frame(frames),
        codec=writer.codec,
        rate=float(probe.rate),
        rate_source=probe.rate_source,
        width=writer.width,
        height=writer.height,
        rotation=probe.rotation,
        audio=probe.has_audio,
        interrupted=None if interrupt is None else signal_name(interrupt),
        backend=backend.name,
        input_size="{}x{}".format(*model_size_for((probe.height, probe.width), backend, imgsz)),
    )
