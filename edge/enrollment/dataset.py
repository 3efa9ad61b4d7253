"""Enrolling people into a gallery from photos.

A dataset is a folder with one sub-folder per person (the sub-folder's name
is the identity, the images inside are that person's photos), or photos
named after the person in them, or both:

    people/
      alice/ 1.jpg 2.png
      bob/   door.jpg
      carol.jpg

Each photo contributes one embedding: when building, its only face or its
largest when that one is clearly the subject (edge.perception.photos, rule "clear"),
else the one face that matches the person's clear photos (``pick_by_reference``:
a group photo in alice's folder enrolls alice, not her friends), else, when
the person has no clear photo to compare with, the photo's main subject if
size and position leave no doubt (edge.perception.subject.clear_cut_main_face;
listed under ``review`` in the report; not with ``strict``). When the person
has clear photos and no face matches them, the photo is skipped: their own
photos say the central face is someone else. When adding
to a gallery, its only face (or the largest with --largest). Any other photo
is skipped with the reason. The gallery stores, per row, the identity, the
photo's path as given, the time added and the detector's face probability
as the row's quality; nothing else. A photo whose name (or folder's name)
is not valid UTF-8 is skipped: the gallery keeps names and paths as text.
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

from edge.gallery.diskio import is_disk_full, remove_tree
from edge.gallery.errors import DiskFullError, GalleryError
from edge.gallery.store import Gallery
from edge.imageio import IMAGE_SUFFIXES, shown
from edge.names import InvalidNameError, validate_name
from edge.perception.modelset import embedding_model_id
from edge.perception.photos import EmbeddedFace, PhotoResult, SubjectRule, embed_photos
from edge.perception.settings import RecognitionSettings
from edge.similarity import MATCH_THRESHOLD, is_match
from edge.faces import BBox

BATCH_ROWS = 256
"""Rows appended per gallery transaction while building."""

Progress = Callable[[int, int], None]
"""Called with (photos done, photos in all) as a build goes."""

# pick_by_reference's reasons for taking no face; only the first lets a build take the
# main subject by position instead (nothing contradicts it; with NONE_MATCHES the person's
# own photos do, and with several matching faces the photo is ambiguous).
NO_REFERENCE = "no clear photo of this person to compare with"
NONE_MATCHES = "none matches this person's other photos"

_BY_POSITION_WHEN = {NO_REFERENCE: "no clear photo of them to compare with"}
"""The end of ``Review.why`` ("main subject by position; ..."), by pick_by_reference's reason."""


@dataclass(frozen=True, slots=True)
class DatasetPhoto:
    identity: str
    path: str


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Matched:
    """A photo with several faces from which the face matching the person's other photos was enrolled.

    ``similarity``: cosine similarity of that face to the mean of the person's clear samples.
    """

    path: str
    identity: str
    box: BBox
    similarity: float


@dataclass(frozen=True, slots=True)
class Review:
    """A photo with several faces from which the main subject by position was enrolled, to check.

    ``why``: how it was chosen and why no better way was open.
    """

    path: str
    identity: str
    box: BBox
    why: str


@dataclass(slots=True)
class BuildReport:
    """What a build enrolled (samples per identity) and what it skipped, and why.

    ``matched``: the photos without a clear subject that were enrolled by
    matching the person's other photos (which face was taken, to check).
    ``review``: those enrolled by taking their main subject by position,
    there being nothing to match (which face was taken, to check).
    ``notes``: names worth a second look (see ``name_notes``).
    """

    gallery: str
    enrolled: Counter = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)
    matched: list[Matched] = field(default_factory=list)
    review: list[Review] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "gallery": self.gallery,
            "identities": len(self.enrolled),
            "samples": sum(self.enrolled.values()),
            "enrolled": dict(sorted(self.enrolled.items())),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "matched": [{"path": m.path, "name": m.identity, "box": m.box.as_list(), "similarity": round(m.similarity, 4)}
                        for m in self.matched],
            "review": [{"path": r.path, "name": r.identity, "box": r.box.as_list(), "why": r.why} for r in self.review],
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }


def scan_dataset(root: Path) -> tuple[list[DatasetPhoto], list[Skipped]]:
    """The photos of a dataset, sorted, and the files that are not photos.

    Two layouts, which may be mixed: a sub-folder per person (the folder's
    name is the identity), and photos directly in ``root`` named after the
    one person in them (``alice.jpg``: identity ``alice``), as the classic
    face_recognition scripts take them. Raises ValueError when ``root`` is
    not a folder or holds neither.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{shown(root)}: not a folder")
    photos: list[DatasetPhoto] = []
    skipped: list[Skipped] = []
    for path in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if path.is_dir():
            found, rejected = scan_person(path)
            photos += found
            skipped += rejected
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            _add_named(photos, skipped, path.stem, path)
        else:
            skipped.append(Skipped(shown(path), "not an image file (by its name)"))
    if not photos and not skipped:
        raise ValueError(f"{shown(root)}: no person folders and no photos (expected {root}/<name>/<photos> or {root}/<name>.jpg)")
    return photos, skipped


def scan_person(folder: Path, name: str | None = None) -> tuple[list[DatasetPhoto], list[Skipped]]:
    """The photos in one person's folder, enrolled as ``name`` (default: the folder's name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{shown(folder)}: not a folder")
    photos: list[DatasetPhoto] = []
    skipped: list[Skipped] = []
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for path in files:
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            _add_named(photos, skipped, name or folder.name, path)
        else:
            skipped.append(Skipped(shown(path), "not an image file (by its name)"))
    if not files:
        skipped.append(Skipped(shown(folder), "empty folder"))
    return photos, skipped


def name_notes(photos: list[DatasetPhoto], enrolled: Counter | None = None) -> list[str]:
    """What a person should know about the names of ``photos`` before trusting the result.

    A name whose photos come from several places (``alice/`` and
    ``alice.jpg``) is one person; names that differ only in case are two;
    a name already in the gallery (``enrolled``: samples per name) gets the
    new photos added to that person's samples.
    """
    enrolled = enrolled or Counter()
    places: dict[str, set[str]] = {}
    for photo in photos:
        places.setdefault(photo.identity, set()).add(str(Path(photo.path).parent))
    notes = []
    for name, folders in sorted(places.items()):
        if len(folders) > 1:
            notes.append(f"{name}: the photos in {', '.join(sorted(folders))} are enrolled as one person")
        if enrolled.get(name):
            count = enrolled[name]
            notes.append(f"{name} is already enrolled ({count} sample{'s' if count != 1 else ''}): "
                         "these photos add to them")
    by_case: dict[str, set[str]] = {}
    for name in set(places) | set(enrolled):
        by_case.setdefault(name.casefold(), set()).add(name)
    for names in sorted(sorted(group) for group in by_case.values() if len(group) > 1):
        if set(names) & set(places):
            notes.append(f"{' and '.join(names)} differ only in case and are different people; "
                         "rename one (edge gallery rename) if they are the same")
    return notes


def _add_named(photos: list[DatasetPhoto], skipped: list[Skipped], raw_name: str, path: Path) -> None:
    if not _is_text(str(path)) or not _is_text(raw_name):
        skipped.append(Skipped(shown(path), "the name of the file, its folder or the person is not valid UTF-8; "
                                            "rename it"))
        return
    try:
        photos.append(DatasetPhoto(validate_name(raw_name), str(path)))
    except InvalidNameError as exc:
        skipped.append(Skipped(str(path), f"unusable name {raw_name!r}: {exc}"))


def _is_text(text: str) -> bool:
    """Whether ``text`` holds no undecodable bytes (os.fsdecode's surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def build_gallery(
    dataset: Path,
    gallery_path: Path,
    recognition: RecognitionSettings,
    dtype: str = "float32",
    workers: int | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    match_threshold: float = MATCH_THRESHOLD,
) -> BuildReport:
    """Make a new gallery at ``gallery_path`` from the dataset folder.

    ``strict``: a photo with several faces of similar size is enrolled only
    by matching the person's other photos, never by its main subject's position.

    The gallery is built under a temporary name beside ``gallery_path`` and
    renamed into place only when complete: an interrupted build leaves no
    gallery behind (and no half-enrolled one), and what a killed build left
    (``.NAME.building-PID-*`` of a process that is gone) is removed by the
    next build of that path. Raises GalleryError when ``gallery_path``
    exists, before any work, or when it appeared meanwhile (another build),
    at the end; nothing is left behind then.
    """
    started = time.perf_counter()
    gallery_path = Path(gallery_path)
    if gallery_path.exists() or gallery_path.is_symlink():
        raise GalleryError(f"{shown(gallery_path)} already exists; choose a new path or remove it first")
    _, running = remove_leftovers(gallery_path)
    if running:
        raise GalleryError(f"{shown(gallery_path)} is being built by process {_owner(running[0])} "
                           f"(if it is not, remove {shown(running[0])})")
    photos, skipped = scan_dataset(dataset)
    report = BuildReport(shown(gallery_path), skipped=skipped, notes=name_notes(photos))
    temporary = gallery_path.with_name(f".{gallery_path.name}{BUILDING}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        gallery = Gallery.create(temporary, embedding_model_id(recognition), dtype=dtype)
    except BaseException as exc:  # made, but not opened: remove it
        remove_tree(temporary)
        if isinstance(exc, DiskFullError) or is_disk_full(exc):
            raise DiskFullError(f"{shown(gallery_path)}: no space left to build the gallery; nothing was built") from None
        raise
    try:
        _enroll(gallery, photos, recognition, workers, progress, "clear", report, by_position=not strict,
                match_threshold=match_threshold)
        gallery.close()
        if gallery_path.exists() or gallery_path.is_symlink():  # rename would replace an empty folder
            raise GalleryError(f"{shown(gallery_path)} appeared while building (another build?); "
                               "this build was not kept")
        try:
            os.rename(temporary, gallery_path)
        except OSError as exc:
            raise GalleryError(f"{shown(gallery_path)}: cannot put the gallery in place "
                               f"({exc.strerror or exc}); this build was not kept") from None
    except BaseException as exc:
        gallery.close()
        remove_tree(temporary)
        if is_disk_full(exc) or (isinstance(exc, DiskFullError) and str(temporary) in str(exc)):
            raise DiskFullError(f"{shown(gallery_path)}: no space left to build the gallery; nothing was built") from None
        raise
    report.seconds = time.perf_counter() - started
    return report


BUILDING = ".building-"
"""Between a gallery's name and the builder's process id in the name of a gallery being built."""


def remove_leftovers(gallery_path: Path) -> tuple[list[Path], list[Path]]:
    """Remove the temporary galleries of builds of ``gallery_path`` that were
    killed (their process is gone, or they predate the process id in the name).

    Returns (removed, running): what was removed, and the temporary galleries
    of builds still running (left alone)."""
    removed: list[Path] = []
    running: list[Path] = []
    prefix = f".{gallery_path.name}{BUILDING}"  # and "." + prefix: one killed while Gallery.create made it
    try:
        entries = list(gallery_path.parent.iterdir())
    except OSError:
        return running
    for entry in entries:
        name = entry.name[1:] if entry.name.startswith("." + prefix) else entry.name
        if not name.startswith(prefix) or not entry.is_dir() or entry.is_symlink():
            continue
        owner = _owner(entry)
        if owner is not None and _is_running(owner):
            running.append(entry)
            continue
        try:
            remove_tree(entry)
        except OSError:
            continue
        removed.append(entry)
    return removed, running


def _owner(temporary: Path) -> int | None:
    """The process id in the name of a gallery being built, if there is one."""
    owner = temporary.name.lstrip(".").partition(BUILDING)[2].split("-")[0]
    return int(owner) if owner.isdigit() else None


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def add_to_gallery(
    gallery_path: Path,
    photos: list[DatasetPhoto],
    skipped: list[Skipped],
    recognition: RecognitionSettings,
    largest: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Enroll ``photos`` into the existing gallery (rows already there are kept).

    A photo must show exactly one face, or with ``largest`` its largest face
    is taken. Rows are committed in batches: an interruption keeps the
    batches already committed and loses nothing that was there before.
    """
    started = time.perf_counter()
    report = BuildReport(str(gallery_path), skipped=list(skipped))
    gallery = Gallery.open(gallery_path, embedding_model_id(recognition), writable=True, lock_timeout=5.0)
    try:
        enrolled = {(r.identity, r.source) for r in gallery.row_info() if not r.deleted}
        report.notes = name_notes(photos, Counter(gallery.identities()))
        fresh = []
        for photo in photos:
            if (photo.identity, photo.path) in enrolled:
                report.skipped.append(Skipped(photo.path, f"already enrolled as {photo.identity} from this photo"))
            else:
                fresh.append(photo)
        _enroll(gallery, fresh, recognition, workers, progress, "largest" if largest else "single", report)
    finally:
        gallery.close()
    report.seconds = time.perf_counter() - started
    return report


def _enroll(gallery: Gallery, photos: list[DatasetPhoto], recognition: RecognitionSettings, workers: int | None,
            progress: Progress | None, rule: SubjectRule, report: BuildReport, by_position: bool = False,
            match_threshold: float = MATCH_THRESHOLD) -> None:
    pending: list[tuple[DatasetPhoto, PhotoResult]] = []
    undecided: list[tuple[DatasetPhoto, PhotoResult]] = []  # several faces: wait for the person's clear photos
    sums: dict[str, np.ndarray] = {}  # per person, the sum of their clear samples: its direction is their mean
    results = embed_photos([p.path for p in photos], recognition, workers, rule=rule)
    for done, (photo, result) in enumerate(zip(photos, results), start=1):
        if result.embedding is not None:
            pending.append((photo, result))
            sums[photo.identity] = sums.get(photo.identity, 0.0) + result.embedding
        elif result.candidates:
            undecided.append((photo, result))
        else:
            report.skipped.append(Skipped(photo.path, _reason(result)))
        if len(pending) >= BATCH_ROWS:
            _append(gallery, pending, report)
        if progress is not None:
            progress(done, len(photos))
    for photo, result in undecided:
        chosen, why = pick_by_reference(result.candidates, sums.get(photo.identity), match_threshold)
        if chosen is None and by_position and result.by_position is not None and why in _BY_POSITION_WHEN:
            central = result.by_position
            pending.append((photo, PhotoResult(photo.path, central.box, central.embedding, result.faces_found,
                                               central.score)))
            report.review.append(Review(photo.path, photo.identity, central.box,
                                        f"main subject by position; {_BY_POSITION_WHEN[why]}"))
            continue
        if chosen is None:
            report.skipped.append(Skipped(photo.path, f"{_reason(result)} ({why})"))
            continue
        candidate, similarity = chosen
        pending.append((photo, PhotoResult(photo.path, candidate.box, candidate.embedding, result.faces_found,
                                           candidate.score)))
        report.matched.append(Matched(photo.path, photo.identity, candidate.box, similarity))
    _append(gallery, pending, report)


def pick_by_reference(
    candidates: tuple[EmbeddedFace, ...], reference: np.ndarray | None, threshold: float
) -> tuple[tuple[EmbeddedFace, float] | None, str]:
    """The one candidate face that is the person of ``reference``, or why none is.

    ``reference`` is the sum (or mean) of the person's clear samples, None
    when they have none. A candidate is the person when its cosine
    similarity to it is at least ``threshold`` (the match threshold);
    exactly one candidate may be. Returns ((candidate, similarity), "") or
    (None, reason).
    """
    if reference is None:
        return None, NO_REFERENCE
    centre = reference / max(float(np.linalg.norm(reference)), 1e-12)
    similarities = np.stack([c.embedding for c in candidates]) @ centre
    matching = np.flatnonzero(is_match(similarities, threshold))
    if len(matching) == 0:
        return None, NONE_MATCHES
    if len(matching) > 1:
        return None, f"{len(matching)} match this person's other photos"
    best = int(matching[0])
    return (candidates[best], float(similarities[best])), ""


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
    prefix = f"{shown(result.path)}: "
    return error[len(prefix):] if error.startswith(prefix) else error
