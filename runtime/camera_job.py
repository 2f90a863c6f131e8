"""A live camera through the model: newest frame in, view on screen (and optionally recorded).

The device can be a camera index, a device path, or a video file played as if it were a camera (at
its own frame rate), which is also how the loop is tested without a camera: a scripted input plays
keys and mouse drags at given frames through the same controls a window feeds.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from runtime.capture import LatestFrameCapture
from runtime.interrupts import interrupts_deferred, signal_name
from runtime.overlay import COLORS, FocusThreshold, PeakingMode, View, draw_help
from runtime.photo_job import PhotoError, write_png
from runtime.pipeline import FrameProcessor, FrameResult, Renderer
from runtime.smoothing import SmoothingConfig
from runtime.video_io import VideoWriter

WINDOW = "dbd-rt"
# Recordings carry each frame's wall-clock time (ms), so a stalled camera does not speed playback up.
RECORD_TIME_BASE = Fraction(1, 1000)
VIEW_KEYS = {str(i + 1): view for i, view in enumerate(View)}
ZOOMS = (2.0, 4.0, 8.0)
# Every key of the window, as `?` shows them and `dbd-rt webcam --help` lists them.
KEYS = (
    ("q / Esc", "quit"),
    ("v", "next view"),
    (" ".join(VIEW_KEYS), " / ".join(v.value for v in View)),
    ("p", "peaking: fill / edges"),
    ("c", "peaking colour"),
    ("b", "peaking over grey / colour"),
    ("+ / -", "in-focus threshold stricter / looser"),
    ("%", "threshold as probability / sharpest share"),
    ("drag", "region of interest (score, graph)"),
    ("x", "clear the region"),
    ("m", "magnifier on / off"),
    ("z", "magnifier zoom 2x / 4x / 8x"),
    ("f", "temporal smoothing on / off"),
    ("h", "HUD on / off"),
    ("space", "pause"),
    ("s", "snapshot (PNG)"),
    ("r", "start / stop recording"),
    ("?", "this help"),
)


class CameraError(ValueError):
    """A camera that cannot be opened or stopped delivering; the message names it."""


@dataclass(frozen=True)
class CameraConfig:
    device: str = "0"  # index, device path, or a video file played as a camera
    width: int = 0  # requested capture size and rate; 0 = the camera's default
    height: int = 0
    fps: float = 0.0
    show: bool = True
    max_frames: int = 0  # 0 = until q, Esc, Ctrl-C or the end of a file
    snapshot_dir: Path = Path(".")  # snapshots, and recordings started with r
    record: Path | None = None  # record from the start to this file
    realtime: bool = True  # a file played as a camera delivers frames at its own rate, as a camera would

    @property
    def is_file(self) -> bool:
        return not self.device.isdigit() and Path(self.device).is_file()


@dataclass(frozen=True)
class CameraResult:
    frames: int
    dropped: int  # camera frames skipped because a newer one had arrived
    recorded: list[str]
    interrupted: str | None  # "Ctrl-C", "SIGTERM" or None
    snapshots: list[str]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """OpenCV and its FFmpeg print a dozen warnings for a missing camera; our one line says it."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_camera(config: CameraConfig) -> cv2.VideoCapture:
    source: int | str = int(config.device) if config.device.isdigit() else config.device
    with _quiet_stderr():
        cam = cv2.VideoCapture(source)
        opened = cam.isOpened()
    if not opened:
        where = f" (/dev/video{config.device})" if isinstance(source, int) else ""
        raise CameraError(f"cannot open camera {config.device}{where}")
    for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, config.width), (cv2.CAP_PROP_FRAME_HEIGHT, config.height), (cv2.CAP_PROP_FPS, config.fps)):
        if value:
            cam.set(prop, value)
    return cam


class _Recorder:
    """Writes the shown pictures at their wall-clock times; the file keeps its first picture's size."""

    def __init__(self, out: Path, rate: float) -> None:
        self.out, self.rate = out, Fraction(rate or 30.0).limit_denominator(1001)
        self.writer: VideoWriter | None = None
        self._t0 = time.perf_counter()
        self._last = -1

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self.writer = VideoWriter(self.out, image.shape[1], image.shape[0], RECORD_TIME_BASE, self.rate)
        if image.shape[:2] != (self.writer.height, self.writer.width):  # the view changed (v)
            image = cv2.resize(image, (self.writer.width, self.writer.height), interpolation=cv2.INTER_AREA)
        pts = max(self._last + 1, int((time.perf_counter() - self._t0) * 1000))
        self.writer.write(image, pts)
        self._last = pts

    def finish(self) -> str | None:
        return None if self.writer is None else str(self.writer.finish())


class Controls:
    """What keys and mouse drags change: the renderer's style and focus assist, the smoothing, and
    requests the loop carries out (quit, pause, snapshot, record)."""

    def __init__(self, renderer: Renderer, processor: FrameProcessor, smoothing: SmoothingConfig | None) -> None:
        self.renderer, self.processor = renderer, processor
        self.smoothing = smoothing if smoothing is not None and smoothing.strength > 0 else SmoothingConfig()
        self.quit = self.paused = self.help = False
        self.snapshot = self.toggle_record = False
        self.changed = False  # something visible changed: a paused picture is drawn again
        self._drag: tuple[int, int] | None = None
        self.frame_hw: tuple[int, int] = (0, 0)

    def _style(self, **changes: object) -> None:
        self.renderer.style = replace(self.renderer.style, **changes)

    def _assist(self, **changes: object) -> None:
        self.renderer.assist.config = replace(self.renderer.assist.config, **changes)

    def _bindings(self) -> dict[str, Callable[[], None]]:
        """Each key's action (KEYS says the same for people)."""
        style, assist = self.renderer.style, self.renderer.assist.config
        colours = list(COLORS)
        actions: dict[str, Callable[[], None]] = {
            "v": lambda: self._style(view=style.view.next()),
            "p": lambda: self._style(peaking=PeakingMode.edges if style.peaking is PeakingMode.fill else PeakingMode.fill),
            "c": lambda: self._style(color=colours[(colours.index(style.color) + 1) % len(colours)]),
            "b": lambda: self._style(mono=not style.mono),
            "+": lambda: self._style(threshold=style.threshold.nudged(up=True)),
            "-": lambda: self._style(threshold=style.threshold.nudged(up=False)),
            "%": lambda: self._style(threshold=FocusThreshold() if style.threshold.top_percent else FocusThreshold(20.0, True)),
            "x": lambda: self.renderer.assist.set_roi(None),
            "m": lambda: self._assist(magnifier=not assist.magnifier),
            "z": lambda: self._assist(zoom=ZOOMS[(ZOOMS.index(assist.zoom) + 1) % len(ZOOMS)] if assist.zoom in ZOOMS else ZOOMS[0]),
            "f": lambda: self.processor.set_smoothing(None if self.processor.smoother is not None else self.smoothing),
            "h": lambda: self._style(hud=not style.hud),
            " ": lambda: setattr(self, "paused", not self.paused),
            "s": lambda: setattr(self, "snapshot", True),
            "r": lambda: setattr(self, "toggle_record", True),
            "?": lambda: setattr(self, "help", not self.help),
            "q": lambda: setattr(self, "quit", True),
        }
        actions.update({ch: (lambda view=view: self._style(view=view)) for ch, view in VIEW_KEYS.items()})
        actions.update({"\x1b": actions["q"], "=": actions["+"], "_": actions["-"]})  # Esc; + and - without shift
        return actions

    def key(self, code: int) -> None:
        """One key press (an OpenCV key code; -1 = none)."""
        action = self._bindings().get(chr(code & 0xFF)) if code >= 0 else None
        if action is not None:
            action()
            self.changed = True

    def mouse(self, event: int, x: int, y: int, flags: int = 0, param: object = None) -> None:
        """An OpenCV mouse callback: a left-button drag on any panel sets the region of interest."""
        if event == cv2.EVENT_LBUTTONDOWN:
            self._drag = self._to_frame(x, y)
        elif event == cv2.EVENT_LBUTTONUP and self._drag is not None:
            (x0, y0), (x1, y1) = self._drag, self._to_frame(x, y)
            self._drag = None
            if abs(x1 - x0) >= 4 and abs(y1 - y0) >= 4:  # a click is not a region
                self.renderer.assist.set_roi((min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)))
                self.changed = True

    def _to_frame(self, x: int, y: int) -> tuple[int, int]:
        """Window (picture) coordinates to frame pixels: every panel shows the frame's geometry."""
        fh, fw = self.frame_hw
        scale = self.renderer.picture_height / fh if fh and self.renderer.picture_height else 1.0
        panel_w = max(1, round(fw * scale))
        return int(min(fw - 1, (x % panel_w) / scale)), int(min(fh - 1, max(0, y) / scale))


class Input(Protocol):
    """Where key presses and mouse drags come from: a window, or a script."""

    def show(self, image: np.ndarray) -> None: ...

    def poll(self, frame: int, controls: Controls) -> None: ...

    def close(self) -> None: ...


class WindowInput:
    """An OpenCV window: shows the picture, feeds its keys and mouse to the controls."""

    def __init__(self) -> None:
        self._hooked = False

    def show(self, image: np.ndarray) -> None:
        cv2.imshow(WINDOW, image)

    def poll(self, frame: int, controls: Controls) -> None:
        if not self._hooked:  # the window exists once something was shown
            cv2.setMouseCallback(WINDOW, controls.mouse)
            self._hooked = True
        controls.key(cv2.waitKey(1))

    def close(self) -> None:
        cv2.destroyAllWindows()


class ScriptedInput:
    """Plays `script`, {shown frame: [event, ...]}, through the controls: an event is a string of
    keys ("v", "+", "?"), ("drag", x0, y0, x1, y1) in picture pixels, or "ctrl-c" (raises
    KeyboardInterrupt there). For demos, screenshots and tests; `shown` keeps what would be displayed."""

    def __init__(self, script: dict[int, list[str | tuple]]) -> None:
        self.script = script
        self.shown: list[np.ndarray] = []
        self._done: set[int] = set()

    @classmethod
    def parse(cls, text: str) -> ScriptedInput:
        """ "10:v 20:m 30:drag=10,10,90,60 40:q" (frame:event, space-separated; ValueError if malformed)."""
        script: dict[int, list[str | tuple]] = {}
        for item in text.split():
            frame, _, event = item.partition(":")
            if not frame.isdigit() or not event:
                raise ValueError(f"--keys: expected FRAME:EVENT, got {item!r}")
            if event.startswith("drag="):
                coords = tuple(int(v) for v in event[5:].split(","))
                if len(coords) != 4:
                    raise ValueError(f"--keys: drag takes X0,Y0,X1,Y1, got {item!r}")
                script.setdefault(int(frame), []).append(("drag", *coords))
            else:
                script.setdefault(int(frame), []).append(event)
        return cls(script)

    def show(self, image: np.ndarray) -> None:
        self.shown.append(image)
        del self.shown[:-4]  # the last few are enough; a long script must not hold every picture

    def poll(self, frame: int, controls: Controls) -> None:
        if frame in self._done or frame not in self.script:
            return
        self._done.add(frame)
        for event in self.script[frame]:
            if isinstance(event, tuple):
                _, x0, y0, x1, y1 = event
                controls.mouse(cv2.EVENT_LBUTTONDOWN, x0, y0)
                controls.mouse(cv2.EVENT_MOUSEMOVE, x1, y1)
                controls.mouse(cv2.EVENT_LBUTTONUP, x1, y1)
            elif event == "ctrl-c":
                raise KeyboardInterrupt
            else:
                for ch in {"space": " ", "esc": "\x1b"}.get(event, event):
                    controls.key(ord(ch))

    def close(self) -> None:
        pass


def _auto_name(folder: Path, frames: int, suffix: str) -> Path:
    return folder / f"dbd-rt-{time.strftime('%Y%m%d-%H%M%S')}-{frames:05d}{suffix}"


def run_camera(
    cam: cv2.VideoCapture,
    config: CameraConfig,
    processor: FrameProcessor,
    renderer: Renderer,
    on_note: Callable[[str], None] | None = None,
    keys: Input | None = None,
    smoothing: SmoothingConfig | None = None,
) -> CameraResult:
    """The live loop. Keys (KEYS) come from the window, or from `keys` (a script) when given."""
    note = on_note or (lambda message: None)
    source = keys or (WindowInput() if config.show else None)
    controls = Controls(renderer, processor, smoothing)
    pace = 1.0 / (cam.get(cv2.CAP_PROP_FPS) or 30.0) if config.realtime and config.is_file else 0.0
    capture = LatestFrameCapture(cam, pace=pace).start()
    rate = cam.get(cv2.CAP_PROP_FPS)
    recorder = _Recorder(config.record, rate) if config.record is not None else None
    recorded: list[str] = []
    snapshots: list[str] = []
    frames, shown, last_result, picture, interrupt = 0, 0, None, None, None
    try:
        while not config.max_frames or frames < config.max_frames:
            if not controls.paused:
                frame = capture.latest()
                if frame is None:
                    if capture.failed and config.is_file and frames:
                        break  # a file played as a camera has ended
                    raise CameraError(f"camera {config.device} stopped delivering frames")
                # With two frames in flight a push returns the previous frame's result (or none yet).
                for result in processor.push(frame):
                    last_result = result
                    picture = _draw(renderer, result, controls)
                    if recorder is not None:
                        recorder.write(picture)
                    frames += 1
            elif controls.changed and last_result is not None:
                picture = _draw(renderer, last_result, controls)
            controls.changed = False
            if picture is None:
                continue
            if source is not None:
                source.show(draw_help(picture.copy(), KEYS) if controls.help else picture)
                source.poll(shown, controls)
                shown += 1
            if controls.quit:
                break
            if controls.snapshot:
                controls.snapshot = False
                snap = _auto_name(config.snapshot_dir, frames, ".png")
                try:
                    write_png(snap, picture)
                except PhotoError as exc:  # a full disk should not end a live view
                    note(str(exc))
                else:
                    snapshots.append(str(snap))
                    note(f"saved {snap}")
            if controls.toggle_record:
                controls.toggle_record = False
                if recorder is None:
                    recorder = _Recorder(_auto_name(config.snapshot_dir, frames, ".mp4"), rate)
                    note(f"recording to {recorder.out}")
                else:
                    done = recorder.finish()
                    recorder = None
                    if done:
                        recorded.append(done)
                        note(f"recorded {done}")
    except KeyboardInterrupt as exc:
        interrupt = exc
    except BaseException:
        # A camera that stops (unplugged) or a failing model: what was recorded stays playable.
        done = _stop(capture, source, recorder, note)
        if done:
            note(f"recorded {done} up to the failure")
        raise
    done = _stop(capture, source, recorder, note)
    if done:
        recorded.append(done)
    return CameraResult(frames, capture.dropped, recorded, None if interrupt is None else signal_name(interrupt), snapshots)


def _stop(capture: LatestFrameCapture, source: Input | None, recorder: _Recorder | None, note: Callable[[str], None]) -> str | None:
    """Release the camera and the window and close the recording; its path, if one was made."""
    with interrupts_deferred(lambda sig: note(f"{sig} again: still finishing, one moment")):
        capture.stop()
        if source is not None:
            source.close()
        return recorder.finish() if recorder is not None else None


def _draw(renderer: Renderer, result: FrameResult, controls: Controls) -> np.ndarray:
    controls.frame_hw = result.frame_size
    if controls.processor.smoother is not None:  # depth is smoothed only while a view shows it
        controls.processor.smoother.depth = renderer.style.view.shows_depth
    label = renderer.style.view.value + (" smooth" if controls.processor.smoother is not None else "")
    return renderer(result, label)
