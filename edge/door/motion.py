"""Is anything happening at the door? A cheap motion gate, so that an empty doorway costs next to nothing.

    gate = MotionGate(MotionSettings())
    if gate.wants_search(frame.image, frame.time, tracking=bool(tracker.live)):
        faces = engine.detect(frame.image)

Pure: no I/O and no clock of its own. Each frame is shrunk to a small grey
image (``width`` pixels wide, blurred against sensor noise) and compared
with the previous frame's: it counts as motion when more than ``min_area``
(a fraction of the image) of its pixels changed by more than ``threshold``
grey levels. Comparing consecutive frames, not a fixed background, lets a
slow change of light pass without waking the detector, while a person
stepping in changes a large area at once.

Faces are searched on a frame with motion, on every frame while someone is
tracked, and at least every ``full_every`` seconds whatever happens (a
person who stands perfectly still, or arrived in a frame the gate missed,
is still found).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.door.settings import MotionSettings


class MotionGate:
    """Decides per frame whether to search it for faces (see the module docstring)."""

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._previous: np.ndarray | None = None
        self._last_search: float | None = None
        self.skipped = 0
        """Frames not searched since the gate was made."""

    def wants_search(self, image: np.ndarray, now: float, tracking: bool) -> bool:
        """Whether to search ``image`` (BGR, seen at ``now`` seconds) for faces; ``tracking``: someone is followed."""
        s = self.settings
        small = self._small(image)
        moved = self._previous is None or self._moved(self._previous, small)
        self._previous = small
        due = self._last_search is None or now - self._last_search >= s.full_every
        if not s.enabled or tracking or moved or due:
            self._last_search = now
            return True
        self.skipped += 1
        return False

    def _small(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        target = (self.settings.width, max(1, round(height * self.settings.width / width)))
        grey = cv2.cvtColor(cv2.resize(image, target, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (3, 3), 0)

    def _moved(self, before: np.ndarray, after: np.ndarray) -> bool:
        if before.shape != after.shape:
            return True
        changed = cv2.absdiff(before, after) > self.settings.threshold
        return float(changed.mean()) > self.settings.min_area
