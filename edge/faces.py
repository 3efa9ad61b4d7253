"""Result types shared by every stage: small, frozen, plain.

Coordinate convention (the only one in the project): pixel coordinates of the
image as it was given to the engine, origin at the top-left corner, x to the
right, y down, as floats. A box is (x1, y1, x2, y2) with x2/y2 the far edges,
so width = x2 - x1. Landmarks are (x, y) points in the same frame.
Images are numpy arrays of shape (height, width, 3), uint8, BGR channel order
(OpenCV's), unless a name says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""The five landmarks in order; left/right as seen in the image (left = smaller x)."""


@dataclass(frozen=True, slots=True)
class BBox:
    """An axis-aligned box in pixels; see the module docstring for the convention."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    @property
    def size(self) -> float:
        """Geometric mean of width and height, in pixels: the face's 'size'."""
        return math.sqrt(self.area)

    def scaled(self, factor: float) -> BBox:
        """The same box in an image resized by ``factor``."""
        return BBox(self.x1 * factor, self.y1 * factor, self.x2 * factor, self.y2 * factor)

    def shifted(self, dx: float, dy: float) -> BBox:
        """The same box with the origin moved by (-dx, -dy): (x + dx, y + dy)."""
        return BBox(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def grown(self, dx: float, dy: float) -> BBox:
        """The box with ``dx`` pixels added on the left and right, ``dy`` above and below."""
        return BBox(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy)

    def clipped(self, width: int, height: int) -> BBox:
        """The part of the box inside a ``width`` x ``height`` image."""
        return BBox(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def iou(self, other: BBox) -> float:
        """Intersection over union, 0..1."""
        iw = min(self.x2, other.x2) - max(self.x1, other.x1)
        ih = min(self.y2, other.y2) - max(self.y1, other.y1)
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        return inter / (self.area + other.area - inter)

    def as_list(self, ndigits: int = 1) -> list[float]:
        return [round(v, ndigits) for v in (self.x1, self.y1, self.x2, self.y2)]


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face.

    ``score`` is the detector's face probability (0..1, O-Net output).
    ``landmarks`` holds the five points named in LANDMARK_NAMES, as (x, y).
    """

    box: BBox
    score: float
    landmarks: tuple[tuple[float, float], ...]

    def landmarks_array(self) -> np.ndarray:
        """Landmarks as a (5, 2) float32 array of (x, y)."""
        return np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)

    def scaled(self, factor: float) -> Face:
        """The same face in an image resized by ``factor``."""
        return Face(
            self.box.scaled(factor),
            self.score,
            tuple((x * factor, y * factor) for x, y in self.landmarks),
        )

    def shifted(self, dx: float, dy: float) -> Face:
        """The same face with every point moved by (dx, dy) (e.g. out of a padded copy of the image)."""
        return Face(self.box.shifted(dx, dy), self.score, tuple((x + dx, y + dy) for x, y in self.landmarks))

    def to_dict(self) -> dict:
        return {
            "box": self.box.as_list(),
            "score": round(self.score, 4),
            "landmarks": [[round(x, 1), round(y, 1)] for x, y in self.landmarks],
        }
