"""Where to search a frame for faces: nowhere in a still, empty doorway, near the people already there, or everywhere.

    gate = MotionGate(MotionSettings())
    search = gate.search(frame.image, frame.time, near=[track.box for track in tracker.live])
    if search is not None:
        faces = faces_in(engine, frame.image, search)   # edge.door.loop

Pure: no I/O and no clock of its own. Each frame is shrunk to a small grey
image (``width`` pixels wide, blurred against sensor noise) and compared
with the previous frame's: an area has motion when more than ``min_area``
(a fraction of the whole image) of its pixels changed by more than
``threshold`` grey levels. Comparing consecutive frames, not a fixed
background, lets a slow change of light pass without waking the detector,
while a person stepping in changes a large area at once.

With nobody tracked, a frame is searched whole when it has motion, and at
least every ``full_every`` seconds whatever happens (a person who stands
perfectly still, or arrived in a frame the gate missed, is still found).
While someone is tracked, every frame is searched: with ``near_tracks``
only in regions around the tracked faces (each face's box grown by
``margin`` face sizes on every side), unless something moves outside them
(someone else stepping in), ``full_every`` seconds have passed since the
last whole search, or the regions would cover half the frame anyway. The
detector's cost grows with the pixels it searches, so a face of 120 px in a
640x480 frame costs about a third of a whole search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.door.settings import MotionSettings
from edge.faces import BBox

_MOST_OF_THE_FRAME = 0.5
"""Regions covering more than this fraction of the frame: the whole frame is searched instead."""


@dataclass(frozen=True, slots=True)
class Search:
    """Where to search one frame: the whole frame (no regions), or only ``regions``
    (disjoint, whole pixels, inside the frame)."""

    regions: tuple[BBox, ...] = ()

    @property
    def whole(self) -> bool:
        return not self.regions


class MotionGate:
    """Decides per frame where to search it for faces (see the module docstring)."""

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._previous: np.ndarray | None = None
        self._last_whole: float | None = None
        self.skipped = 0
        """Frames not searched since the gate was made."""
        self.near = 0
        """Frames searched only near tracked faces."""

    def search(self, image: np.ndarray, now: float, near: Sequence[BBox] = ()) -> Search | None:
        """Where to search ``image`` (BGR, seen at ``now`` seconds); None: nowhere. ``near``: the
        boxes of the faces tracked (empty when nobody is)."""
        s = self.settings
        if not s.enabled:
            return Search()
        small = self._small(image)
        changed = None if self._previous is None or self._previous.shape != small.shape else (
            cv2.absdiff(self._previous, small) > s.threshold)
        self._previous = small
        due = self._last_whole is None or now - self._last_whole >= s.full_every
        height, width = image.shape[:2]
        regions = around(near, width, height, s.margin) if near and s.near_tracks else ()
        if regions and sum(r.area for r in regions) > _MOST_OF_THE_FRAME * width * height:
            regions = ()
        if regions and not due and not self._moved(changed, regions, small.shape[1] / width):
            self.near += 1
            return Search(regions)
        if near or due or self._moved(changed, (), 1.0):
            self._last_whole = now
            return Search()
        self.skipped += 1
        return None

    def _small(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        target = (self.settings.width, max(1, round(height * self.settings.width / width)))
        grey = cv2.cvtColor(cv2.resize(image, target, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (3, 3), 0)

    def _moved(self, changed: np.ndarray | None, outside: Sequence[BBox], scale: float) -> bool:
        """Whether the changed pixels outside the boxes (frame pixels; ``scale``: small image per
        frame pixel) are more than min_area of the image; always on the first frame."""
        if changed is None:
            return True
        if outside:
            changed = changed.copy()
        for box in outside:
            b = box.scaled(scale)
            changed[int(b.y1):math.ceil(b.y2), int(b.x1):math.ceil(b.x2)] = False
        return float(changed.mean()) > self.settings.min_area


def around(boxes: Sequence[BBox], width: int, height: int, margin: float) -> tuple[BBox, ...]:
    """The regions to search near faces at ``boxes`` in a ``width`` x ``height`` frame: each box grown
    by ``margin`` times its larger side on every side, in whole pixels inside the frame; regions that
    overlap are joined into the box around both, until none overlap."""
    joined: list[BBox] = []
    for box in boxes:
        grow = margin * max(box.width, box.height)
        grown = box.grown(grow, grow)
        region = BBox(*map(float, (math.floor(grown.x1), math.floor(grown.y1), math.ceil(grown.x2),
                                   math.ceil(grown.y2)))).clipped(width, height)
        while (other := next((r for r in joined if r.iou(region) > 0), None)) is not None:
            joined.remove(other)
            region = BBox(min(region.x1, other.x1), min(region.y1, other.y1),
                          max(region.x2, other.x2), max(region.y2, other.y2))
        joined.append(region)
    return tuple(r for r in joined if r.area > 0)
