"""A door scene made from the bundled photos, for `edge demo`, the tests and the benchmark.

The bundled photos (tests/fixtures/faces, see PROVENANCE.md there; in a wheel
edge/_samples) are Obama and Biden portraits. The demo enrolls Obama from two
of them, then plays 640x480 frames in which a third photo of Obama walks
past, the door is empty for a while, and Biden (not enrolled: a stranger)
walks past. The expected events: one `recognized` Obama, one `unknown`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (640, 480)
"""Width, height of the generated frames, pixels."""

PORTRAIT_HEIGHT = 460
"""Pixels: the visitor's portrait nearly fills the frame's height (a face about 70 px wide)."""

ENROLLED = {"obama": ("obama.jpg", "obama2.jpg")}
VISITORS = ("obama3.jpg", "biden.jpg")


def samples_dir() -> Path:
    """The bundled photos: the source checkout's fixtures, else the wheel's copy."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "tests" / "fixtures" / "faces", package / "_samples"):
        if (candidate / "PROVENANCE.md").is_file():
            return candidate
    raise FileNotFoundError("the bundled sample photos are missing (tests/fixtures/faces)")


def write_dataset(out: Path, samples: Path | None = None) -> Path:
    """A folder-per-person dataset of the enrolled people (for `edge gallery build`)."""
    samples = samples or samples_dir()
    for name, files in ENROLLED.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copy(samples / file, out / name / file)
    return out


def write_frames(
    out: Path,
    samples: Path | None = None,
    visitors: tuple[str, ...] = VISITORS,
    frames_per_visit: int = 10,
    empty_frames: int = 30,
    faces_per_frame: int = 1,
) -> Path:
    """Numbered PNG frames: each visitor walks across, with empty frames in between.

    With ``faces_per_frame`` > 1 the visitor appears that many times side by
    side (each portrait cut to its slot), for timing several faces per frame.
    The visitor moves one pixel per frame.
    """
    samples = samples or samples_dir()
    out.mkdir(parents=True, exist_ok=True)
    slot = FRAME_SIZE[0] // faces_per_frame
    index = 0
    for visitor in visitors:
        portrait = _fit(cv2.imread(str(samples / visitor)), slot - 8, PORTRAIT_HEIGHT)
        for step in range(frames_per_visit):
            frame = _background()
            for k in range(faces_per_frame):
                _paste(frame, portrait, k * slot + slot // 2 + step - frames_per_visit // 2, FRAME_SIZE[1] // 2)
            cv2.imwrite(str(out / f"{index:05d}.png"), frame)
            index += 1
        for _ in range(empty_frames):
            cv2.imwrite(str(out / f"{index:05d}.png"), _background())
            index += 1
    return out


def _background() -> np.ndarray:
    width, height = FRAME_SIZE
    ramp = np.linspace(60, 180, width, dtype=np.float32)
    return np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)


def _fit(portrait: np.ndarray, width: int, height: int) -> np.ndarray:
    """The portrait scaled to ``height``, its sides cut (about the middle) to at most ``width``."""
    scaled_width = round(portrait.shape[1] * height / portrait.shape[0])
    scaled = cv2.resize(portrait, (scaled_width, height), interpolation=cv2.INTER_AREA)
    cut = max(0, scaled_width - width) // 2
    return scaled[:, cut : cut + min(width, scaled_width)]


def _paste(frame: np.ndarray, portrait: np.ndarray, cx: int, cy: int) -> None:
    height, width = portrait.shape[:2]
    x1, y1 = cx - width // 2, cy - height // 2
    fx1, fy1 = max(x1, 0), max(y1, 0)
    fx2, fy2 = min(x1 + width, frame.shape[1]), min(y1 + height, frame.shape[0])
    frame[fy1:fy2, fx1:fx2] = portrait[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1]


def write_stills(out: Path, shots: tuple[str, ...], samples: Path | None = None) -> Path:
    """One frame per shot: a bundled photo's name, "blank" (nobody) or "two" (two faces)."""
    samples = samples or samples_dir()
    out.mkdir(parents=True, exist_ok=True)
    for index, shot in enumerate(shots):
        frame = _background()
        if shot == "two":
            slot = FRAME_SIZE[0] // 2
            portrait = _fit(cv2.imread(str(samples / ENROLLED["obama"][0])), slot - 8, PORTRAIT_HEIGHT)
            for k in range(2):
                _paste(frame, portrait, k * slot + slot // 2, FRAME_SIZE[1] // 2)
        elif shot != "blank":
            portrait = _fit(cv2.imread(str(samples / shot)), FRAME_SIZE[0] - 8, PORTRAIT_HEIGHT)
            _paste(frame, portrait, FRAME_SIZE[0] // 2, FRAME_SIZE[1] // 2)
        cv2.imwrite(str(out / f"{index:05d}.png"), frame)
    return out
