"""Door scenes made from real face photos, for the door tests and benchmarks/door.py.

A scene is a run of 640x480 frames, FPS a second, in which people (each a
face photo) stand in a spot, step in and out one after another, stand side
by side or walk in front of each other. Frames are made in memory; write()
saves them as numbered PNGs for `edge run --source DIR`.

    scene = Scene()
    scene.step(1.5, Walk(alice))                  # alice in the middle for 1.5 s
    scene.step(0.2)                               # nobody
    scene.step(1.5, Walk(stranger))               # the next one, in the same spot
    for frame, shot in zip(scene.frames(), scene.shots): ...

People come from LFW (lfw_person: the central part of a 250x250 photo,
the face and little else), or from any BGR face crop. LFW is read only
where it is (../shared/data/lfw); nothing of it is stored in the repo.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.frames import Frame

FPS = 10.0
"""Frames per second of a scene (frame i is at i / FPS seconds)."""
SIZE = (640, 480)
"""Width, height of a frame, pixels."""
FACE_PIXELS = 190
"""Side of a pasted face crop, pixels: the face in it is about 120 px, as a door camera sees a visitor."""


@dataclass(frozen=True)
class Person:
    """Someone in a scene: a name (for the test's expectations) and a square BGR face crop."""

    name: str
    photo: np.ndarray = field(repr=False, compare=False)


def lfw_person(lfw: Path, name: str, number: int, size: int = FACE_PIXELS) -> Person:
    """LFW photo ``number`` (1-based) of ``name``: its central 150x150, scaled to ``size`` px."""
    path = lfw / name / f"{name}_{number:04d}.jpg"
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(path)
    crop = image[50:200, 50:200]
    return Person(name, cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))


@dataclass(frozen=True)
class Walk:
    """A person during one step: centre at ``start`` on its first frame, at ``end`` on its last
    (default: stays at ``start``, swaying a pixel or two). Pixels."""

    person: Person
    start: tuple[float, float] = (SIZE[0] / 2, SIZE[1] / 2)
    end: tuple[float, float] | None = None


@dataclass
class Scene:
    """Frames step by step; ``shots[i]`` names who is visible in frame i (front-most last)."""

    steps: list[tuple[int, tuple[Walk, ...]]] = field(default_factory=list)

    def step(self, seconds: float, *walks: Walk) -> Scene:
        """Add ``seconds`` of frames with these people (later ones in front); none: an empty doorway."""
        self.steps.append((max(1, round(seconds * FPS)), walks))
        return self

    @property
    def shots(self) -> list[tuple[str, ...]]:
        return [tuple(w.person.name for w in walks) for count, walks in self.steps for _ in range(count)]

    def starts(self) -> list[int]:
        """The index of each step's first frame."""
        out, index = [], 0
        for count, _ in self.steps:
            out.append(index)
            index += count
        return out

    def frames(self) -> Iterator[Frame]:
        index = 0
        for count, walks in self.steps:
            for k in range(count):
                image = _background()
                for walk in walks:
                    end = walk.end or walk.start
                    t = k / max(count - 1, 1)
                    sway = 2.0 * math.sin(index / 3.0) if walk.end is None else 0.0
                    cx = walk.start[0] + t * (end[0] - walk.start[0]) + sway
                    cy = walk.start[1] + t * (end[1] - walk.start[1])
                    _paste(image, walk.person.photo, round(cx), round(cy))
                yield Frame(image, index / FPS, index)
                index += 1

    def write(self, out: Path) -> Path:
        """The frames as numbered PNGs in ``out`` (for a folder source at FPS)."""
        out.mkdir(parents=True, exist_ok=True)
        for frame in self.frames():
            cv2.imwrite(str(out / f"{frame.index:05d}.png"), frame.image)
        return out


def empty_doorway(seed: int, light: float = 0.0) -> np.ndarray:
    """An empty doorway as a camera sees it: a fixed scene, sensor noise (sigma 3 grey levels) drawn
    from ``seed``, everything ``light`` levels brighter."""
    rng = np.random.default_rng(seed)
    scene = np.add.outer(np.linspace(60, 160, SIZE[1]), np.linspace(0, 40, SIZE[0]))
    frame = scene[:, :, None] + light + rng.normal(0, 3, (SIZE[1], SIZE[0], 1))
    return np.clip(np.repeat(frame, 3, axis=2), 0, 255).astype(np.uint8)


def _background() -> np.ndarray:
    ramp = np.linspace(70, 170, SIZE[0], dtype=np.float32).astype(np.uint8)
    return np.repeat(np.repeat(ramp[None, :, None], SIZE[1], axis=0), 3, axis=2)


def _paste(frame: np.ndarray, photo: np.ndarray, cx: int, cy: int) -> None:
    height, width = photo.shape[:2]
    x1, y1 = cx - width // 2, cy - height // 2
    fx1, fy1 = max(x1, 0), max(y1, 0)
    fx2, fy2 = min(x1 + width, frame.shape[1]), min(y1 + height, frame.shape[0])
    if fx2 > fx1 and fy2 > fy1:
        frame[fy1:fy2, fx1:fx2] = photo[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1]
