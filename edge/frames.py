"""Frames and where they come from: the contract between camera adapters and their readers.

A frame source is a context manager with one method, ``read() -> Frame | None``
(None: the source has ended, e.g. the last file of a folder). The sources
themselves (Pi camera, OpenCV capture, folder) are in ``edge.adapters.camera``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: ``image`` BGR uint8 (H, W, 3); ``time`` seconds (the source's clock); ``index`` from 0.

    ``dropped``: frames a live camera delivered since the last frame read that
    nobody took (the reader was busy), dropped so that this one is the newest.
    """

    image: np.ndarray
    time: float
    index: int
    dropped: int = 0


class FrameSource(Protocol):
    """What the door loop and enrollment read frames from."""

    name: str

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...

    def read(self) -> Frame | None: ...
