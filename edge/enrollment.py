"""Enrolling people into a gallery from photos.

A dataset is a folder with one sub-folder per person; the sub-folder's name
is the identity, the images inside are that person's photos:

    people/
      alice/ 1.jpg 2.png
      bob/   door.jpg

Each photo contributes one embedding: its only face, or its largest when that
one is clearly the subject (edge.photos, rule "clear"); any other photo is
skipped with the reason. The gallery stores, per row, the identity, the
photo's path as given, the time added and the detector's face probability
as the row's quality; nothing else.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.config import Config, embedding_model_id
from edge.gallery.diskio import remove_tree
from edge.gallery.errors import GalleryError
from edge.gallery.store import Gallery
from edge.imageio import IMAGE_SUFFIXES
from edge.photos import PhotoResult, embed_photos

BATCH_ROWS = 256
"""Rows appended per gallery transaction while building."""

Progress = Callable[[int, int], None]
"""Called with (photos done, photos in all) as a build goes."""


@dataclass(frozen=True, slots=True)
class DatasetPhoto:
    identity: str
    path: str


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str
    reason: str


@dataclass(slots=True)
class BuildReport:
    """What a build enrolled (samples per identity) and what it skipped, and why."""

    gallery: str
    enrolled: Counter = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "gallery": self.gallery,
            "identities": len(self.enrolled),
            "samples": sum(self.enrolled.values()),
            "enrolled": dict(sorted(self.enrolled.items())),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "seconds": round(self.seconds, 2),
        }


def scan_dataset(root: Path) -> tuple[list[DatasetPhoto], list[Skipped]]:
    """The photos of a folder-per-person dataset, sorted, and the files that are not photos.

    Raises ValueError when ``root`` is not a folder or holds no person folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    photos: list[DatasetPhoto] = []
    skipped: list[Skipped] = []
    people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise ValueError(f"{root}: no person folders (expected {root}/<name>/<photos>)")
    for folder in people:
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                photos.append(DatasetPhoto(folder.name, str(path)))
            else:
                skipped.append(Skipped(str(path), "not an image file (by its name)"))
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        skipped.append(Skipped(str(path), "not inside a person folder"))
    return photos, skipped


def build_gallery(
    dataset: Path,
    gallery_path: Path,
    config: Config,
    workers: int | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Make a new gallery at ``gallery_path`` from the dataset folder.

    The gallery is built under a temporary name beside ``gallery_path`` and
    renamed into place only when complete: an interrupted build leaves no
    gallery behind (and no half-enrolled one). Raises GalleryError when
    ``gallery_path`` exists.
    """
    started = time.perf_counter()
    gallery_path = Path(gallery_path)
    if gallery_path.exists():
        raise GalleryError(f"{gallery_path} already exists; choose a new path or remove it first")
    photos, skipped = scan_dataset(dataset)
    model_id = embedding_model_id(config.recognition)
    report = BuildReport(str(gallery_path), skipped=skipped)
    temporary = gallery_path.with_name(f".{gallery_path.name}.building-{uuid.uuid4().hex[:8]}")
    gallery = Gallery.create(temporary, model_id, dtype=config.gallery.dtype)
    try:
        pending: list[tuple[DatasetPhoto, PhotoResult]] = []
        results = embed_photos([p.path for p in photos], config.recognition, workers, rule="clear")
        for done, (photo, result) in enumerate(zip(photos, results), start=1):
            if result.embedding is None:
                report.skipped.append(Skipped(photo.path, _reason(result)))
            else:
                pending.append((photo, result))
            if len(pending) >= BATCH_ROWS:
                _append(gallery, pending, report)
            if progress is not None:
                progress(done, len(photos))
        _append(gallery, pending, report)
        gallery.close()
        os.rename(temporary, gallery_path)
    except BaseException:
        gallery.close()
        remove_tree(temporary)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _append(gallery: Gallery, pending: list[tuple[DatasetPhoto, PhotoResult]], report: BuildReport) -> None:
    if not pending:
        return
    gallery.append(
        np.stack([r.embedding for _, r in pending]),
        [p.identity for p, _ in pending],
        sources=[p.path for p, _ in pending],
        qualities=[r.score for _, r in pending],
    )
    report.enrolled.update(p.identity for p, _ in pending)
    pending.clear()


def _reason(result: PhotoResult) -> str:
    """The error without the path prefix (the report shows the path beside it)."""
    error = result.error or "no embedding"
    prefix = f"{result.path}: "
    return error[len(prefix):] if error.startswith(prefix) else error
