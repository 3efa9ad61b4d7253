"""1:1 verification: is the main subject of photo A the same person as that of photo B?

Photos are embedded in parallel worker processes (one engine each, loaded
once), each distinct photo only once however many pairs name it.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.config import RecognitionConfig, open_engine
from edge.imageio import ImageError, load_image
from edge.types import BBox


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """The main face of one photo, or why there is none (``error``)."""

    path: str
    box: BBox | None = None
    embedding: np.ndarray | None = None
    faces_found: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PairResult:
    path_a: str
    path_b: str
    similarity: float | None
    same: bool | None
    a: PhotoResult
    b: PhotoResult

    def to_dict(self) -> dict:
        return {
            "path_a": self.path_a,
            "path_b": self.path_b,
            "similarity": None if self.similarity is None else round(self.similarity, 5),
            "same": self.same,
            "box_a": self.a.box.as_list() if self.a.box else None,
            "box_b": self.b.box.as_list() if self.b.box else None,
            "error": "; ".join(e for e in (self.a.error, self.b.error) if e) or None,
        }


def read_pairs(csv_path: Path) -> list[tuple[str, str, bool | None]]:
    """Rows of a pairs file with columns path_a, path_b and optionally same (0/1)."""
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path_a", "path_b"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: needs a header with path_a,path_b[,same]")
        rows = []
        for line, row in enumerate(reader, start=2):
            same = row.get("same")
            if same not in (None, "", "0", "1", "true", "false", "True", "False"):
                raise ValueError(f"{csv_path}:{line}: 'same' must be 0 or 1, not {same!r}")
            label = None if same in (None, "") else same in ("1", "true", "True")
            rows.append((row["path_a"], row["path_b"], label))
    return rows


def compare(a: PhotoResult, b: PhotoResult, threshold: float) -> PairResult:
    if a.embedding is None or b.embedding is None:
        return PairResult(a.path, b.path, None, None, a, b)
    similarity = float(np.dot(a.embedding, b.embedding))
    return PairResult(a.path, b.path, similarity, similarity >= threshold, a, b)


def embed_photos(
    paths: Iterable[str], config: RecognitionConfig, workers: int | None = None
) -> Iterator[PhotoResult]:
    """The main subject of each photo, in input order, using ``workers`` processes.

    With several workers each engine gets an equal share of the CPU threads.
    """
    paths = list(paths)
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths) or 1))
    if workers == 1:
        engine = open_engine(config)
        for path in paths:
            yield _photo_result(engine, path)
        return
    threads = max(1, config.num_threads // workers)
    worker_config = config.model_copy(update={"num_threads": threads})
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, _start_worker, (worker_config,)) as pool:
        yield from pool.map(_worker_photo, paths, chunksize=4)


_worker_engine = None  # one engine per worker process, set by _start_worker


def _start_worker(config: RecognitionConfig) -> None:
    global _worker_engine
    _worker_engine = open_engine(config)


def _worker_photo(path: str) -> PhotoResult:
    return _photo_result(_worker_engine, path)


def _photo_result(engine, path: str) -> PhotoResult:
    try:
        image = load_image(path)
    except ImageError as exc:
        return PhotoResult(path, error=str(exc))
    faces = engine.detect(image)
    subject = engine.subject(image, faces)
    if subject is None:
        return PhotoResult(path, error=f"{path}: no face found")
    return PhotoResult(path, subject.face.box, subject.embedding, len(faces))
