"""Photos to embeddings, in parallel: the shared first step of verify and gallery build.

Each photo is loaded, searched for faces and reduced to one face, its subject:

- ``"main"`` (verification): the face the photo is of, weighing size and
  closeness to the centre (edge.perception.subject);
- ``"clear"`` (gallery build): one face alone, or the largest when it is at
  least CLEAR_SUBJECT_RATIO times the size of the next one; otherwise no
  subject, since enrolling a bystander under someone's name would let that
  bystander in, but the faces come back as ``candidates`` so that the
  build can pick the one that matches the person's other photos, with
  ``by_position`` marking the one that is the main subject beyond doubt
  (``clear_cut_main_face``), if one is, for a person with nothing to match;
- ``"single"`` (gallery add): exactly one face, else skipped;
- ``"largest"`` (gallery add --largest): the largest face, whatever else is there.

Photos go to worker processes (one engine each, loaded once) in input order;
a worker dies with the process that started it (``_start_worker``). Whatever
goes wrong with one photo (a file that is not an image, or too large, an
OpenCV error on odd dimensions) is that photo's ``error``: a batch goes on.
A photo in which no face is found is searched once more with a border
around it (``find_faces``): a tight crop, the face touching the edges, gives
the detector too little context.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge.perception.settings import RecognitionSettings
from edge.imageio import DEFAULT_MAX_PIXELS, ImageError, load_image, shown
from edge.perception.engine import FaceEngine
from edge.perception.subject import clear_cut_main_face, main_face, similar_to_largest
from edge.faces import BBox, Face

SubjectRule = Literal["main", "clear", "single", "largest"]

CROP_BORDER = 0.2
"""Border added around a photo with no face found, as a fraction of its longer side (each edge)."""

@dataclass(frozen=True, slots=True)
class Candidate:
    """One face of a photo whose subject is not clear: its box, detector score and embedding."""

    box: BBox
    score: float
    embedding: np.ndarray


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """The subject of one photo, or why there is none (``error``).

    ``score``: the detector's face probability (0..1) for the subject.
    ``candidates``: under the "clear" rule, the faces of a photo with no
    clear subject that are of similar size to its largest (``similar_to_largest``).
    ``by_position``: the one of ``candidates`` that is the photo's main
    subject by size and position beyond doubt (``clear_cut_main_face``), or None.
    """

    path: str
    box: BBox | None = None
    embedding: np.ndarray | None = None
    faces_found: int = 0
    score: float | None = None
    error: str | None = None
    candidates: tuple[Candidate, ...] = ()
    by_position: Candidate | None = None


def embed_photos(
    paths: Iterable[str],
    settings: RecognitionSettings,
    workers: int | None = None,
    rule: SubjectRule = "main",
) -> Iterator[PhotoResult]:
    """The subject of each photo, in input order, using ``workers`` processes.

    With several workers each engine gets an equal share of the CPU threads.
    """
    paths = list(paths)
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths) or 1))
    if workers == 1:
        engine = FaceEngine.open(settings)
        for path in paths:
            yield photo_result(engine, path, rule, settings.max_image_pixels)
        return
    threads = max(1, settings.runtime.num_threads // workers)
    runtime = settings.runtime.model_copy(update={"num_threads": threads})
    worker_settings = settings.model_copy(update={"runtime": runtime})
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, _start_worker, (worker_settings, os.getpid())) as pool:
        yield from pool.map(_worker_photo, paths, [rule] * len(paths), chunksize=4)


def photo_result(engine: FaceEngine, path: str, rule: SubjectRule = "main",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> PhotoResult:
    """Load ``path`` (refused above ``max_pixels`` pixels) and embed its subject under ``rule``;
    errors become PhotoResult.error."""
    try:
        return _photo_result(engine, path, rule, max_pixels)
    except ImageError as exc:
        return PhotoResult(path, error=str(exc))
    except (cv2.error, MemoryError) as exc:
        return PhotoResult(path, error=f"{shown(path)}: cannot process ({one_line(exc)})")


def one_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's message (OpenCV's errors span several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _photo_result(engine: FaceEngine, path: str, rule: SubjectRule, max_pixels: int) -> PhotoResult:
    image = load_image(path, max_pixels)
    faces = find_faces(engine, image)
    if not faces:
        return PhotoResult(path, error=f"{shown(path)}: no face found")
    if rule == "main":
        face = main_face(faces, image.shape[1], image.shape[0])
    elif rule == "largest":
        face = max(faces, key=lambda f: f.box.size)
    elif rule == "single" and len(faces) > 1:
        return PhotoResult(path, faces_found=len(faces),
                           error=f"{shown(path)}: {len(faces)} faces; pass --largest to take the largest")
    elif rule == "single":
        face = faces[0]
    else:
        contenders = similar_to_largest(faces)
        if len(contenders) > 1:
            embeddings = engine.embed(image, contenders)
            candidates = tuple(Candidate(f.box, f.score, e) for f, e in zip(contenders, embeddings))
            central = clear_cut_main_face(faces, image.shape[1], image.shape[0])
            return PhotoResult(
                path, faces_found=len(faces),
                error=f"{shown(path)}: {len(faces)} faces of similar size; none is clearly the subject",
                candidates=candidates,
                by_position=next((c for f, c in zip(contenders, candidates) if f is central), None),
            )
        face = contenders[0]
    embedding = engine.embed(image, [face])[0]
    return PhotoResult(path, face.box, embedding, len(faces), face.score)


def find_faces(engine: FaceEngine, image: np.ndarray) -> list[Face]:
    """The faces of a photo, most confident first, in its pixels; a photo
    with none is searched again inside a replicated border of CROP_BORDER."""
    faces = engine.detect(image)
    if faces:
        return faces
    border = max(1, round(CROP_BORDER * max(image.shape[:2])))
    framed = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REPLICATE)
    return [face.shifted(-border, -border) for face in engine.detect(framed)]


_worker_engine: FaceEngine | None = None  # one engine per worker process, set by _start_worker
_worker_max_pixels = DEFAULT_MAX_PIXELS

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when its parent dies (Linux)."""


def _start_worker(settings: RecognitionSettings, parent: int) -> None:
    global _worker_engine, _worker_max_pixels
    _die_with_parent(parent)
    _worker_engine = FaceEngine.open(settings)
    _worker_max_pixels = settings.max_image_pixels


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when ``parent`` (the process that
    started it) dies, even by SIGKILL; exit at once if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def _worker_photo(path: str, rule: SubjectRule) -> PhotoResult:
    return photo_result(_worker_engine, path, rule, _worker_max_pixels)
