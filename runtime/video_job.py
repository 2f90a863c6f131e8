"""One video file through the model: decode + resize thread -> infer -> draw + encode thread."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from runtime.backends import Backend
from runtime.overlay import OverlayStyle
from runtime.pipeline import VIDEO_IMGSZ, FrameProcessor, Renderer, StageTimes, model_size_for
from runtime.video_io import DEFAULT_PRESET, FrameReader, VideoProbe, VideoWriter


@dataclass(frozen=True)
class VideoJobResult:
    input: str
    output: str
    frames: int
    seconds: float
    fps: float
    stages_ms: dict[str, float]
    codec: str
    rate: float
    width: int
    height: int
    audio: bool
    interrupted: bool
    backend: str
    input_size: str  # the network input, HxW

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """Every frame, in order, none dropped. Ctrl-C finishes the file with the frames done so far.

    The output appears at `out` only when complete (see VideoWriter); on any error it does not.
    `threaded=False` decodes and encodes in this thread, so the stage times add up to the total.
    `imgsz`: the network input's short side for a dynamic model (see model_size_for).
    """
    times = StageTimes()
    processor = FrameProcessor(backend, times, imgsz)
    renderer = Renderer(style, times)
    # Three threads share the work: decode + resize, infer, draw + encode.
    reader = FrameReader(probe, threaded=threaded, transform=processor.prepare).start()
    try:
        writer = VideoWriter(
            out,
            probe.rate,
            probe.width * style.view.panels,
            probe.height,
            reader.audio_stream,
            reader.audio,
            threaded=threaded,
            preset=preset,
            render=renderer,
        )
    except BaseException:
        reader.close()
        raise
    if on_note and not writer.is_h264:
        on_note(f"no H.264 encoder in this FFmpeg build; writing {writer.codec} instead")
    if on_note and writer.padded:
        on_note(f"{probe.width * style.view.panels}x{probe.height} is odd-sized; padded to {writer.width}x{writer.height} for H.264")
    frames, interrupted = 0, False
    t0 = time.perf_counter()
    try:
        try:
            for frame, batch in reader:
                for result in processor.push_prepared(frame, batch):
                    writer.write(result)
                    frames += 1
                if on_frame:
                    on_frame(frames, frames / (time.perf_counter() - t0))
        except KeyboardInterrupt:
            interrupted = True
        for result in processor.drain():
            writer.write(result)
            frames += 1
        written = writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()
    seconds = time.perf_counter() - t0
    times.add("decode", reader.decode_ms[:frames])
    times.add("encode", writer.encode_ms)
    return VideoJobResult(
        input=str(probe.path),
        output=str(written),
        frames=frames,
        seconds=seconds,
        fps=frames / seconds if seconds else 0.0,
        stages_ms=times.per_frame(frames),
        codec=writer.codec,
        rate=float(probe.rate),
        width=writer.width,
        height=writer.height,
        audio=probe.has_audio,
        interrupted=interrupted,
        backend=backend.name,
        input_size="{}x{}".format(*model_size_for((probe.height, probe.width), backend, imgsz)),
    )
