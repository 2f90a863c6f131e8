"""Live capture that keeps only the newest frame, so a slow consumer never builds up latency."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np


class CameraLike(Protocol):
    """What we need of cv2.VideoCapture (and what the tests fake)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


class LatestFrameCapture:
    """Reads a camera in a thread; `latest()` returns the newest frame not yet taken.

    Older unread frames are dropped (counted in `dropped`), which is right for a live view: the
    picture on screen should be as recent as possible, not every frame.
    """

    def __init__(self, camera: CameraLike, max_failures: int = 30, pace: float = 0.0) -> None:
        """`pace`: seconds between reads, for a file played as a camera (0: as fast as it delivers)."""
        self.camera = camera
        self.pace = pace
        self.max_failures = max_failures
        self.dropped = 0
        self.captured = 0
        self.failed = False
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._taken = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> LatestFrameCapture:
        self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        due = time.monotonic()
        while not self._stop.is_set():
            if self.pace:
                due += self.pace
                self._stop.wait(max(0.0, due - time.monotonic()))
            ok, frame = self.camera.read()
            if not ok or frame is None:
                failures += 1
                if failures >= self.max_failures:
                    with self._cond:
                        self.failed = True
                        self._cond.notify_all()
                    return
                time.sleep(0.01)
                continue
            failures = 0
            with self._cond:
                if self._seq > self._taken:
                    self.dropped += 1
                self._frame = frame
                self._seq += 1
                self.captured += 1
                self._cond.notify_all()

    def latest(self, timeout: float = 2.0) -> np.ndarray | None:
        """The newest frame after the last one taken; None on timeout or when the camera failed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq == self._taken and not self.failed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._seq == self._taken:
                return None
            self._taken = self._seq
            return self._frame

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        # Releasing a capture while its read() runs on the other thread can crash OpenCV's
        # backends; a read stuck past the timeout is left to the process's exit instead.
        if not self._thread.is_alive():
            self.camera.release()
