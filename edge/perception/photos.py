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
- ``"largest"`` (gallery add --largest): the largest face, whatever else is there;
- ``"every"`` (identify, liveness): every face, most confident first, each
  with its embedding (and, with ``liveness``, its liveness), as ``faces``; a
  photo without a face has none (no error).

A batch is spread over the machine by ``batch_plan``: so many worker processes
(one engine each, loaded once), each with so many threads. Photos go to them
in input order, as paths: each worker reads and decodes its photos itself,
once each, and sends back only boxes and embeddings. A worker dies with the
process that started it (``_start_worker``). Whatever goes wrong with one
photo (a file that is not an image, or too large, an OpenCV error on odd
dimensions) is that photo's ``error``: a batch goes on. A photo in which no
face is found is searched once more with a border around it (``find_faces``):
a tight crop, the face touching the edges, gives the detector too little
context; a photo with a face is searched once.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.perception.settings import MAX_THREADS, RecognitionSettings
from edge.imageio import DEFAULT_MAX_PIXELS, ImageError, load_image, shown
from edge.perception.engine import FaceEngine
from edge.perception.litert import DelegateError, ModelError
from edge.perception.liveness import Liveness, LivenessChecker
from edge.perception.subject import clear_cut_main_face, main_face, similar_to_largest
from edge.faces import BBox, Face

SubjectRule = Literal["main", "clear", "single", "largest", "every"]

CROP_BORDER = 0.2
"""Border added around a photo with no face found, as a fraction of its longer side (each edge)."""

PHOTOS_PER_PROCESS = 256
"""A batch gets a worker process for every this many photos (at most one per core);
a smaller batch runs in the calling process, on threads. Measured on 2 cores with
LFW photos: a process per core runs a photo in 15.0 ms against 17.4 ms for one
process on 2 threads, but starting the workers (imports, models, first shapes) costs
0.4 s more, so they pay from about 160 photos on a quiet machine; on a busy one
they lost (300 photos: 15.8 s against 10.8 s), and on a Raspberry Pi the imports
alone take seconds. Hence a margin: 256 photos per process."""

WORKER_MEMORY_MIB = 500
"""Memory one worker process may take, MiB: 480 MiB resident (float16 set) after
100 LFW photos and a portrait, most of it the detector's interpreters, one per
input shape seen. A batch starts no more workers than MemAvailable holds."""


class WorkerDied(RuntimeError):
    """A worker process of a batch ended without a result (killed, e.g. by the out-of-memory killer)."""


@dataclass(frozen=True, slots=True)
class EmbeddedFace:
    """One face of a photo: its box, detector score (0..1), embedding and, when asked for, liveness."""

    box: BBox
    score: float
    embedding: np.ndarray
    liveness: Liveness | None = None


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """The subject of one photo, or why there is none (``error``).

    ``score``: the detector's face probability (0..1) for the subject.
    ``candidates``: under the "clear" rule, the faces of a photo with no
    clear subject that are of similar size to its largest (``similar_to_largest``).
    ``by_position``: the one of ``candidates`` that is the photo's main
    subject by size and position beyond doubt (``clear_cut_main_face``), or None.
    ``faces``: under the "every" rule, every face of the photo, most confident first.
    """

    path: str
    box: BBox | None = None
    embedding: np.ndarray | None = None
    faces_found: int = 0
    score: float | None = None
    error: str | None = None
    candidates: tuple[EmbeddedFace, ...] = ()
    by_position: EmbeddedFace | None = None
    faces: tuple[EmbeddedFace, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """How a batch of photos uses the machine: ``processes`` engines, each on
    ``threads`` CPU threads (LiteRT's and OpenCV's). One process: the calling one."""

    processes: int
    threads: int


def batch_plan(photos: int, cores: int, workers: int | None = None, delegate: str = "cpu",
               memory_mib: float | None = None) -> BatchPlan:
    """Processes x threads for ``photos`` photos on ``cores`` CPUs: every core busy, none shared.

    Processes before threads: a photo is a chain of small model runs (the
    pyramid's levels, a few crops), which LiteRT's threads split less well
    than processes split photos. So one process per core (2 cores:
    2 x 1, 4: 4 x 1, 8: 8 x 1), fewer when the batch is too small to repay
    starting them (PHOTOS_PER_PROCESS photos each) or ``memory_mib`` (MiB
    available) would not hold them (WORKER_MEMORY_MIB each); then the largest
    count that divides the cores, so that the threads (cores / processes each)
    use them all: 1,000 photos on 8 cores, 2 x 4; 300 photos, 1 x 8 (in the
    calling process). ``workers`` (the commands' --workers) sets the number
    of processes instead (no more than photos; threads: the cores split among
    them). A hardware ``delegate`` ("edgetpu", "gpu") is one device: one process.
    """
    if delegate != "cpu":
        processes = 1
    elif workers is not None:
        processes = max(1, min(workers, photos))
    else:
        wanted = min(cores, photos // PHOTOS_PER_PROCESS)
        if memory_mib is not None:
            wanted = min(wanted, int(memory_mib // WORKER_MEMORY_MIB))
        processes = max(d for d in range(1, max(1, wanted) + 1) if cores % d == 0)
    return BatchPlan(processes, max(1, min(MAX_THREADS, cores // processes)))


def usable_cores() -> int:
    """The CPUs this process may run on: its affinity mask (taskset, a container's cpuset), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory_mib() -> float | None:
    """MemAvailable from /proc/meminfo, MiB; None where there is no such file."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def embed_photos(
    paths: Iterable[str],
    settings: RecognitionSettings,
    workers: int | None = None,
    rule: SubjectRule = "main",
    liveness: bool = False,
) -> Iterator[PhotoResult]:
    """The subject of each photo under ``rule``, in input order, spread over the machine by
    ``batch_plan`` (``workers``: that many processes). [recognition.runtime] num_threads
    is the door's setting; a batch sets the threads by the plan. ``liveness`` (rule
    "every" only): each face is also scored by a LivenessChecker on ``settings``."""
    if liveness and rule != "every":
        raise ValueError("liveness is scored under the 'every' rule only")
    paths = list(paths)
    plan = batch_plan(len(paths), usable_cores(), workers, settings.runtime.delegate, available_memory_mib())
    runtime = settings.runtime.model_copy(update={"num_threads": plan.threads})
    settings = settings.model_copy(update={"runtime": runtime})
    if plan.processes == 1:
        with FaceEngine.open(settings) as engine, _checker(settings, liveness) as checker:
            for path in paths:
                yield photo_result(engine, path, rule, settings.max_image_pixels, checker)
        return
    pool = ProcessPoolExecutor(plan.processes, multiprocessing.get_context("spawn"), _start_worker,
                               (settings, os.getpid(), liveness))
    done = 0
    try:
        with _sigint_blocked():  # map starts the workers
            results = pool.map(_worker_photo, paths, [rule] * len(paths), chunksize=4)
        for result in results:
            done += 1
            yield result
    except BrokenProcessPool:
        raise WorkerDied(f"a worker process died after {done} of {len(paths)} photos "
                         "(out of memory? try fewer --workers)") from None
    finally:  # stopped early (Ctrl-C, an error): drop the photos not yet started
        pool.shutdown(wait=True, cancel_futures=True)


def photo_result(engine: FaceEngine, path: str, rule: SubjectRule = "main",
                 max_pixels: int = DEFAULT_MAX_PIXELS, liveness: LivenessChecker | None = None) -> PhotoResult:
    """Load ``path`` (refused above ``max_pixels`` pixels) and embed its subject under ``rule``
    (under "every", with ``liveness``, each face scored too); errors become PhotoResult.error."""
    try:
        return _photo_result(engine, path, rule, max_pixels, liveness)
    except ImageError as exc:
        return PhotoResult(path, error=str(exc))
    except (cv2.error, MemoryError) as exc:
        return PhotoResult(path, error=f"{shown(path)}: cannot process ({one_line(exc)})")


def one_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's message (OpenCV's errors span several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _photo_result(engine: FaceEngine, path: str, rule: SubjectRule, max_pixels: int,
                  liveness: LivenessChecker | None) -> PhotoResult:
    image = load_image(path, max_pixels)
    faces = find_faces(engine, image)
    if rule == "every":
        embedded = _embedded(engine, image, faces)
        if liveness is not None and faces:
            scores = liveness.check(image, [face.box for face in faces])
            embedded = tuple(replace(face, liveness=score) for face, score in zip(embedded, scores))
        return PhotoResult(path, faces_found=len(faces), faces=embedded)
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
            candidates = _embedded(engine, image, contenders)
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


def _embedded(engine: FaceEngine, image: np.ndarray, faces: list[Face]) -> tuple[EmbeddedFace, ...]:
    if not faces:
        return ()
    return tuple(EmbeddedFace(f.box, f.score, e) for f, e in zip(faces, engine.embed(image, faces)))


def find_faces(engine: FaceEngine, image: np.ndarray) -> list[Face]:
    """The faces of a photo, most confident first, in its pixels; a photo
    with none is searched again inside a replicated border of CROP_BORDER."""
    faces = engine.detect(image)
    if faces:
        return faces
    border = max(1, round(CROP_BORDER * max(image.shape[:2])))
    framed = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REPLICATE)
    return [face.shifted(-border, -border) for face in engine.detect(framed)]


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Ctrl-C held back while worker processes start, so that they start with it
    blocked (spawn passes the signal mask on): a Ctrl-C is the parent's to handle, by
    stopping the pool, never a traceback from a worker. One that comes meanwhile is
    delivered to the parent as the block ends."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


_worker_engine: FaceEngine | Exception | None = None
"""This worker process's engine, set by _start_worker, or why it could not be opened."""
_worker_liveness: LivenessChecker | None = None
"""This worker's liveness checker, when the batch scores liveness."""
_worker_max_pixels = DEFAULT_MAX_PIXELS

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when its parent dies (Linux)."""


def _start_worker(settings: RecognitionSettings, parent: int, liveness: bool) -> None:
    """Open this worker's engine (and liveness checker) on the plan's threads (OpenCV's too); a
    model or delegate that cannot be opened is kept, to be raised (one line) with the first photo."""
    global _worker_engine, _worker_liveness, _worker_max_pixels
    _die_with_parent(parent)
    cv2.setNumThreads(settings.runtime.num_threads)
    try:
        _worker_engine = FaceEngine.open(settings)
        _worker_liveness = LivenessChecker.open(settings) if liveness else None
    except (ModelError, DelegateError) as exc:
        _worker_engine = exc
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
    if isinstance(_worker_engine, Exception):
        raise _worker_engine
    return photo_result(_worker_engine, path, rule, _worker_max_pixels, _worker_liveness)


@contextmanager
def _checker(settings: RecognitionSettings, wanted: bool) -> Iterator[LivenessChecker | None]:
    """A LivenessChecker on ``settings`` for the calling process when ``wanted``, closed after."""
    if not wanted:
        yield None
        return
    with LivenessChecker.open(settings) as checker:
        yield checker
