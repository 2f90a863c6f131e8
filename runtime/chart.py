"""Small line charts drawn with OpenCV (no plotting library): values in [0, 1] over time."""

from __future__ import annotations

import cv2
import numpy as np

Colour = tuple[int, int, int]
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Chart:
    """A white BGR picture with a [0, 1] value axis over [0, t_end] seconds; a legend along the bottom."""

    def __init__(self, t_end: float, width: int = 960, height: int = 240) -> None:
        self.image = np.full((height, width, 3), 255, np.uint8)
        self.left, self.top, self.bottom = 48, 12, 28
        self.pw, self.ph = width - self.left - 12, height - self.top - self.bottom
        self.t_end = max(t_end, 1e-6)
        for v in (0.0, 0.5, 1.0):
            self.hline(v, (225, 225, 225))
            cv2.putText(self.image, f"{v:.1f}", (6, self.y(v) + 4), FONT, 0.35, (90, 90, 90), 1, cv2.LINE_AA)

    def x(self, t: float) -> int:
        return self.left + int(round(t / self.t_end * self.pw))

    def y(self, v: float) -> int:
        return self.top + int(round((1 - v) * self.ph))

    def hline(self, v: float, colour: Colour) -> None:
        cv2.line(self.image, (self.left, self.y(v)), (self.left + self.pw, self.y(v)), colour, 1, cv2.LINE_AA)

    def span(self, start: float, end: float, colour: Colour) -> None:
        cv2.rectangle(self.image, (self.x(start), self.top), (max(self.x(end), self.x(start) + 1), self.top + self.ph), colour, -1)

    def line(self, times: np.ndarray, values: np.ndarray, colour: Colour, thickness: int = 2) -> None:
        points = np.array([[self.x(t), self.y(v)] for t, v in zip(times, values)], np.int32)
        if len(points) > 1:
            cv2.polylines(self.image, [points], False, colour, thickness, cv2.LINE_AA)

    def dots(self, times: np.ndarray, values: np.ndarray, colour: Colour) -> None:
        for t, v in zip(times, values):
            cv2.circle(self.image, (self.x(t), self.y(v)), 2, colour, -1, cv2.LINE_AA)

    def legend(self, entries: list[tuple[str, Colour]]) -> np.ndarray:
        """The time range and the legend along the bottom; returns the picture."""
        h = self.image.shape[0]
        cv2.putText(self.image, f"0 - {self.t_end:.1f} s", (self.left, h - 9), FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
        lx = self.left + 110
        for text, colour in entries:
            cv2.rectangle(self.image, (lx, h - 17), (lx + 10, h - 8), colour, -1)
            cv2.putText(self.image, text, (lx + 14, h - 9), FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
            lx += 24 + cv2.getTextSize(text, FONT, 0.4, 1)[0][0]
        return self.image
