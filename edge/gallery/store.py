"""The gallery: enrolled face embeddings on disk, safe against power cuts.

    gallery = Gallery.create(path, model_id=embedder_sha256)          # the one writer
    gallery.append(vectors, ["alice", "alice", "bob"], sources=[...])
    reader = Gallery.open(path, model_id=embedder_sha256)            # any number of readers
    view = reader.view()      # matrix (N, D), scales, valid: the input of edge.gallery.topk.top_k

A gallery is a directory:

    gallery.sqlite           metadata (edge.gallery.metadata), WAL mode: the truth about what is committed
    rows-<generation>.bin    the embedding matrix: header + rows (edge.gallery.fileformat)
    scales-<generation>.bin  int8 galleries only: one float32 scale per row
    writer.lock              flock()ed by the process writing (its pid inside)

Embeddings are float32 unit vectors, stored as float32 or as int8 with a
per-row scale. The store keeps what the caller passes (vector, identity,
source, quality) and the time added; nothing else.

Crash safety. ``state.row_count`` in SQLite is the only thing that makes
rows exist. An append writes its rows after the committed ones, fsyncs the
matrix files, and only then commits one SQLite transaction that inserts the
rows' metadata and raises row_count (synchronous=FULL: durable when COMMIT
returns). Killed before that commit, the gallery still says N rows; the
bytes after row N are garbage that nothing reads and the next append
overwrites. Killed after it, the rows were on disk before the count that
covers them. SQLite makes its own transaction atomic. File headers are
written once, when a file is made, and files are complete before anything
names them: ``create`` builds the directory under a temporary name and
renames it; ``compact`` writes the next generation's files, fsyncs them, and
switches ``state.generation`` in the transaction that renumbers the rows.
Files of other generations are leftovers, deleted by the next writer.

Writers and readers. One writer at a time holds ``writer.lock`` (flock:
released even when the process is killed); another gets GalleryLockedError.
Readers take no lock and do not wait for the writer (SQLite WAL). A reader
maps the matrix, never reads it whole (a 1M-row gallery opens in
milliseconds), and on ``refresh()`` (which ``view()`` calls) asks SQLite
whether anything was committed since (PRAGMA data_version, microseconds);
if so it rereads the row count and the deleted rows, and remaps when the
file grew or a compaction switched generations.

Damaged rows are never searched. Whoever maps rows (opening, and every
refresh after an append: only the rows not verified yet; after a compaction:
all of them) verifies each one (edge.gallery.fileformat.row_faults: its
checksum as recorded in SQLite, its scale, its length). A row that fails is
left out of the view's ``valid`` mask, logged, and listed in
``Gallery.excluded``; so is a row that a search finds at an impossible
similarity (edge.gallery.search), i.e. damaged after it was verified.
``check()`` verifies every row again and raises if any fails.

Readers follow their path. At most once a second (FOLLOW_INTERVAL)
``refresh()`` stat()s the directory and its database; when another gallery
took its place (``edge gallery build`` makes a new directory and renames it
into place; a restore does the same), the reader reopens it. While the path
holds no usable gallery (deleted, half-restored, damaged, another model) the
view is empty, so nobody is recognized, and ``problem`` says why; keeping the
old rows would keep recognizing people that were deleted on purpose. The
reader tries again every second. Writers do not follow: they hold the lock
of the directory they opened. A Gallery is for one thread.

Files are the owner's only: the directory 0700, its files (the SQLite WAL
and shared-memory files too) 0600; a writer tightens an older gallery's.
"""

from __future__ import annotations

import functools
import logging
import mmap
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.gallery import metadata
from edge.gallery.diskio import (
    acquire_lock,
    fsync_directory,
    is_disk_full,
    remove_tree,
    restrict_modes,
    write_at,
    write_new_file,
)
from edge.gallery.errors import (
    ChecksumMismatchError,
    CorruptGalleryError,
    DimensionMismatchError,
    DiskFullError,
    GalleryError,
    GalleryNotFoundError,
    ModelMismatchError,
)
from edge.gallery.fileformat import (
    FORMAT_VERSION,
    KIND_ROWS,
    KIND_SCALES,
    UNIT_TOLERANCE,
    Header,
    encode_rows,
    map_file,
    row_checksums,
    row_faults,
    row_norms,
    rows_file,
    scales_file,
    unit_tolerance,
)
from edge.gallery.metadata import RowInfo

LOCK_FILE = "writer.lock"
FOLLOW_INTERVAL = 1.0
"""Seconds between a reader's checks that its path still holds the gallery it opened."""
_CHECK_BATCH = 65536
"""Rows verified (or copied, by compact) per batch."""

__all__ = ["ExcludedRow", "Gallery", "GalleryView", "RowInfo", "UNIT_TOLERANCE"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, order=True)
class ExcludedRow:
    """A damaged row left out of every search: its number (in the current generation),
    the identity SQLite gives it (None if it has none), and what is wrong."""

    row: int
    identity: str | None
    reason: str

    def __str__(self) -> str:
        return f"row {self.row} ({self.identity or 'no identity'}): {self.reason}"


def _translated(method: Callable) -> Callable:
    """Report SQLite's own errors (a damaged or busy database) as GalleryError."""

    @functools.wraps(method)
    def call(self: Gallery, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _database_error(self.path, exc) from None

    return call


@dataclass(frozen=True, slots=True)
class GalleryView:
    """The committed rows 0..count-1 of generation ``generation``, as of one refresh.

    ``matrix`` (count, dim) float32 or int8, read-only, mapped from the file;
    ``scales`` (count,) float32 for int8 galleries, else None; ``valid``
    (count,) bool, False for deleted and damaged rows, or None when all are
    valid. ``epoch`` counts the galleries the reader has had at its path.
    """

    generation: int
    matrix: np.ndarray
    scales: np.ndarray | None
    valid: np.ndarray | None
    epoch: int = 0

    @property
    def count(self) -> int:
        return self.matrix.shape[0]

    @property
    def live_count(self) -> int:
        return self.count if self.valid is None else int(self.valid.sum())


class Gallery:
    """One gallery directory, open for reading or (one process at a time) for writing."""

    def __init__(self, path: Path, db: sqlite3.Connection, lock_fd: int | None) -> None:
        """Use Gallery.open or Gallery.create."""
        self.path = path
        self._db = db
        self._lock_fd = lock_fd
        meta = metadata.read_meta(db)
        try:
            version = int(meta["format_version"])
            self.gallery_id = bytes.fromhex(meta["gallery_id"])
            self.dim = int(meta["dim"])
            self.dtype = meta["dtype"]
            self.model_id = meta["model_id"]
        except (KeyError, ValueError) as exc:
            raise CorruptGalleryError(f"{path}: metadata incomplete ({exc!r})") from None
        if version != FORMAT_VERSION:
            raise GalleryError(f"{path}: format version {version}, this program reads {FORMAT_VERSION}")
        if self.dtype not in ("float32", "int8") or self.dim < 1:
            raise CorruptGalleryError(f"{path}: metadata says dtype {self.dtype!r}, dim {self.dim}")
        self._data_version: int | None = None
        self._maps: tuple[int, mmap.mmap, mmap.mmap | None] | None = None  # generation, rows, scales
        self._view: GalleryView | None = None
        self._files: tuple[int, int | None] | None = None  # the writer's rows and scales descriptors
        self._verified: tuple[int, int] = (-1, 0)  # (generation, rows 0..n-1 verified)
        self._faults: dict[int, ExcludedRow] = {}  # the damaged rows of the verified generation
        self._deleted: list[int] = []  # as of the last load
        self._wanted: tuple[str | None, int | None] = (None, None)  # open()'s model_id and dim, to reopen
        self._identity: tuple[int, ...] | None = None  # what was at the path when opened (see _follow)
        self._followed_at = time.monotonic()
        self._epoch = 0
        self._changes = 0
        self._problem: str | None = None

    # --- opening and closing ------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, model_id: str, dim: int = 128, dtype: str = "float32") -> Gallery:
        """A new, empty gallery at ``path`` (which must not exist), open for writing.

        ``model_id`` names the embedding model (e.g. the sha256 of its file);
        the gallery opens only for that id. ``dtype``: "float32" or "int8".
        """
        path = Path(path)
        if dtype not in ("float32", "int8"):
            raise ValueError(f"dtype must be 'float32' or 'int8', not {dtype!r}")
        if not 1 <= int(dim) <= 65536:
            raise ValueError(f"dim must be 1..65536, got {dim}")
        if not model_id:
            raise ValueError("model_id must be a non-empty string")
        if path.exists():
            raise GalleryError(f"{path} already exists")
        gallery_id = uuid.uuid4().bytes
        temporary = path.parent / f".{path.name}.creating-{gallery_id.hex()[:8]}"
        try:
            temporary.mkdir(mode=0o700)
            write_new_file(rows_file(temporary, 0), Header(KIND_ROWS, dtype, int(dim), gallery_id, 0, model_id).pack())
            if dtype == "int8":
                write_new_file(scales_file(temporary, 0), Header(KIND_SCALES, "float32", 1, gallery_id, 0, model_id).pack())
            os.close(os.open(temporary / LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            db = metadata.connect(temporary, create=True)
            try:
                metadata.initialise(db, {
                    "format_version": str(FORMAT_VERSION), "gallery_id": gallery_id.hex(), "dim": str(int(dim)),
                    "dtype": dtype, "model_id": model_id, "created": repr(time.time()),
                })
            finally:
                db.close()
            fsync_directory(temporary)
            os.rename(temporary, path)
            fsync_directory(path.parent)
        except BaseException as exc:
            remove_tree(temporary)
            if is_disk_full(exc):
                raise DiskFullError(f"{path}: no space left to create the gallery") from exc
            raise
        return cls.open(path, model_id, dim=dim, writable=True)

    @classmethod
    def open(
        cls,
        path: str | Path,
        model_id: str | None = None,
        dim: int | None = None,
        writable: bool = False,
        lock_timeout: float = 0.0,
    ) -> Gallery:
        """Open the gallery at ``path``: map its matrix, do not read it.

        model_id, dim: what the caller's embeddings are; a gallery made with
        another model raises ModelMismatchError, of another dimension
        DimensionMismatchError (None accepts any, e.g. to list a gallery).
        writable: take the writer lock, waiting up to ``lock_timeout``
        seconds, else GalleryLockedError.
        """
        path = Path(path)
        if not (path / metadata.FILE_NAME).is_file():
            raise GalleryNotFoundError(f"{path}: not a gallery (no {metadata.FILE_NAME})")
        identity = _identity(path)  # before connecting: if it changes meanwhile, the reader just reopens
        lock_fd = acquire_lock(path / LOCK_FILE, lock_timeout) if writable else None
        db = None
        try:
            db = metadata.connect(path)
            gallery = cls(path, db, lock_fd)
            gallery._wanted, gallery._identity = (model_id, dim), identity
            if model_id is not None and model_id != gallery.model_id:
                raise ModelMismatchError(
                    f"{path}: made with model {gallery.model_id!r}, not {model_id!r}; rebuild it with this model"
                )
            if dim is not None and int(dim) != gallery.dim:
                raise DimensionMismatchError(f"{path}: rows are {gallery.dim}-d, not {dim}-d")
            gallery._catch_up()
            if writable:
                gallery._start_writing()
            return gallery
        except BaseException as exc:
            if db is not None:
                db.close()
            if lock_fd is not None:
                os.close(lock_fd)
            if isinstance(exc, sqlite3.DatabaseError):
                raise _database_error(path, exc) from None
            raise

    def close(self) -> None:
        """Release the lock and the database; views already taken stay readable."""
        for fd in self._files or ():
            if fd is not None:
                os.close(fd)
        self._files = None
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        self._maps = None
        self._view = None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def writable(self) -> bool:
        return self._lock_fd is not None

    # --- reading -------------------------------------------------------------

    def refresh(self) -> bool:
        """Catch up with what other processes committed, and (readers) with what is at
        the path now; whether anything changed. A reader whose gallery is gone or
        unreadable gets an empty view and ``problem`` instead of an exception."""
        changes = self._changes  # kept across _follow taking over a fresh handle's fields
        changed = self._refresh()
        self._changes = changes + int(changed)
        return changed

    def _refresh(self) -> bool:
        if not self.writable:
            if self._follow():
                return True
            if self._problem is not None:
                return False
        try:
            return self._catch_up()
        except (GalleryError, sqlite3.DatabaseError) as exc:
            error = _database_error(self.path, exc) if isinstance(exc, sqlite3.DatabaseError) else exc
            if self.writable:
                raise error from None
            self._lose(str(error))
            return True

    def view(self) -> GalleryView:
        """The committed rows as of now, ready for edge.gallery.topk.top_k."""
        self.refresh()
        return self._view

    @property
    def count(self) -> int:
        """Committed rows, deleted ones included, as of the last refresh."""
        return self._view.count

    @property
    def changes(self) -> int:
        """Counts what this handle has seen change (rows, names, another gallery or none at
        the path), as of the last refresh: compare two readings to know whether to look again."""
        return self._changes

    @property
    def excluded(self) -> tuple[ExcludedRow, ...]:
        """The damaged rows left out of every search, by row (as of the last refresh)."""
        return tuple(sorted(self._faults.values()))

    @property
    def problem(self) -> str | None:
        """Why this reader has no gallery to search (its path deleted, replaced by
        something unusable, or damaged), or None while it has one."""
        return self._problem

    def people(self) -> tuple[str, ...]:
        """The names of the people enrolled, sorted; none while a reader has no usable gallery."""
        return () if self._problem is not None else tuple(sorted(self.identities()))

    @_translated
    def identities(self) -> dict[str, int]:
        """Each enrolled identity with its number of samples (not deleted), by name."""
        self._require_gallery()
        return metadata.identities(self._db)

    @_translated
    def row_info(self, rows: Iterable[int] | None = None) -> list[RowInfo]:
        """Metadata of the given rows (all rows when None), in row order."""
        self._require_gallery()
        return metadata.row_info(self._db, rows)

    @_translated
    def names_of(self, rows: Iterable[int], generation: int) -> dict[int, str] | None:
        """Identity of each row as numbered in ``generation``; None when a compaction
        has renumbered the rows since (the caller's view is stale: search again)."""
        self._require_gallery()
        with metadata.snapshot(self._db):
            if metadata.committed(self._db)[0] != generation:
                return None
            return metadata.names(self._db, rows)

    def exclude(self, rows: Iterable[int], reason: str, view: GalleryView) -> None:
        """Leave ``rows`` of ``view`` out of every later search as damaged (a search saw
        them at an impossible similarity); nothing when ``view`` is stale."""
        current = self._view
        if current is None or (view.epoch, view.generation) != (current.epoch, current.generation):
            return
        new = {int(r): ExcludedRow(int(r), None, reason) for r in rows if 0 <= int(r) < current.count}
        new = {r: e for r, e in new.items() if r not in self._faults}
        if not new:
            return
        try:
            names = metadata.names(self._db, new) if self._problem is None else {}
        except sqlite3.DatabaseError:
            names = {}
        new = {r: replace(e, identity=names.get(r)) for r, e in new.items()}
        self._faults.update(new)
        self._report(new.values())
        self._view = replace(current, valid=self._valid(current.count, self._deleted))

    @_translated
    def check(self) -> int:
        """Verify everything: SQLite's integrity, headers, sizes, every row (checksum,
        scale, length: edge.gallery.fileformat.row_faults).

        Returns the number of rows verified; raises CorruptGalleryError (or
        its subclass ChecksumMismatchError) saying what is wrong. The rows
        that fail are also in ``excluded`` afterwards.
        """
        self._require_gallery()
        result = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise CorruptGalleryError(f"{self.path / metadata.FILE_NAME}: {result.splitlines()[0]}")
        self._verified = (-1, 0)  # verify every row again
        self._faults = {}
        self._data_version = None
        self._catch_up()
        view = self._view
        rows, low, high = metadata.row_numbering(self._db)
        if rows != view.count or (rows and (low, high) != (0, view.count - 1)):
            raise CorruptGalleryError(
                f"{self.path}: metadata has {rows} rows numbered {low}..{high}, expected 0..{view.count - 1}"
            )
        bad = self.excluded
        if bad:
            summed = [e.row for e in bad if e.reason == "checksum mismatch"]
            if len(summed) == len(bad):
                shown = ", ".join(map(str, summed[:10])) + (" ..." if len(bad) > 10 else "")
                raise ChecksumMismatchError(f"{self.path}: {len(bad)} rows fail their checksum: {shown}")
            shown = "; ".join(f"{e.row} ({e.reason})" for e in bad[:10]) + (" ..." if len(bad) > 10 else "")
            error = ChecksumMismatchError if summed else CorruptGalleryError
            raise error(f"{self.path}: {len(bad)} rows damaged: {shown}")
        return view.count

    # --- writing -------------------------------------------------------------

    @_translated
    def append(
        self,
        embeddings: np.ndarray,
        identities: Sequence[str],
        sources: Sequence[str | None] | None = None,
        qualities: Sequence[float | None] | None = None,
        added: float | Sequence[float] | None = None,
    ) -> range:
        """Add rows, all or none; returns their row numbers once they are durable.

        embeddings: (n, dim) L2-normalised vectors; identities: n names;
        sources (e.g. the photo's path) and qualities (any score the caller
        keeps): n values or None each. added: Unix time (one for all rows, or
        one per row), default now.
        """
        self._require_writer()
        vectors = self._check_embeddings(embeddings)
        n = vectors.shape[0]
        identities = list(identities)
        sources = [None] * n if sources is None else list(sources)
        qualities = [None] * n if qualities is None else [None if q is None else float(q) for q in qualities]
        if not len(identities) == len(sources) == len(qualities) == n:
            raise ValueError(f"{n} embeddings need {n} identities, sources and qualities")
        if not all(isinstance(name, str) and name.strip() for name in identities):
            raise ValueError("identities must be non-empty strings")
        if n == 0:
            return range(self.count, self.count)
        if added is None or np.isscalar(added):
            added = [time.time() if added is None else float(added)] * n
        added = [float(a) for a in added]
        if len(added) != n:
            raise ValueError(f"{n} embeddings need {n} times added")
        codes, scales = encode_rows(vectors, self.dtype)
        if np.abs(row_norms(codes, scales) - 1.0).max() > unit_tolerance(self.dtype):
            raise ValueError(f"embeddings too far from unit length once stored as {self.dtype}")
        checksums = row_checksums(codes, scales)
        generation, start = metadata.committed(self._db)
        rows_fd, scales_fd = self._files
        try:
            _write_rows(rows_fd, self._header(KIND_ROWS, generation), start, codes)
            if scales_fd is not None:
                _write_rows(scales_fd, self._header(KIND_SCALES, generation), start, scales[:, None])
                os.fsync(scales_fd)
            os.fsync(rows_fd)
            records = [(start + i, identities[i], sources[i], added[i], qualities[i], 0, checksums[i]) for i in range(n)]
            with metadata.transaction(self._db):
                metadata.add_rows(self._db, records, start + n)
        except (OSError, sqlite3.Error) as exc:
            if is_disk_full(exc):
                _truncate_quietly(rows_fd, self._header(KIND_ROWS, generation).offset(start))
                if scales_fd is not None:
                    _truncate_quietly(scales_fd, self._header(KIND_SCALES, generation).offset(start))
                raise DiskFullError(f"{self.path}: disk full; the {n} rows were not added") from exc
            raise
        self._load()
        return range(start, start + n)

    @_translated
    def delete(self, rows: Iterable[int]) -> int:
        """Mark rows deleted (searches skip them, ``compact`` removes them); how many were live."""
        self._require_writer()
        with metadata.transaction(self._db):
            changed = metadata.mark_deleted(self._db, rows)
        self._load()
        return changed

    @_translated
    def delete_identity(self, identity: str) -> int:
        """Mark every sample of ``identity`` deleted; how many were live."""
        self._require_writer()
        with metadata.transaction(self._db):
            changed = metadata.mark_identity_deleted(self._db, identity)
        self._load()
        return changed

    @_translated
    def rename_identity(self, old: str, new: str) -> int:
        """Give ``old``'s samples the name ``new`` (which must not be enrolled); how many."""
        self._require_writer()
        if not isinstance(new, str) or not new.strip():
            raise ValueError("the new name must be a non-empty string")
        with metadata.transaction(self._db):
            if metadata.identities(self._db).get(new):
                raise GalleryError(f"{self.path}: {new!r} is already enrolled; remove it first or choose another name")
            changed = metadata.rename_identity(self._db, old, new)
        self._load()
        return changed

    @_translated
    def compact(self) -> int:
        """Rewrite the gallery without its deleted rows, renumbering the rest; how many went.

        The live rows are copied into the next generation's files and checked
        against their checksums on the way (ChecksumMismatchError leaves the
        gallery as it was); one transaction then switches to the new files.
        """
        self._require_writer()
        self._load()
        view = self._view
        generation = view.generation + 1
        live = np.setdiff1d(np.arange(view.count), self._deleted)  # damaged rows too: their check refuses
        stored = metadata.live_checksums(self._db)
        paths = [rows_file(self.path, generation)] + ([scales_file(self.path, generation)] if view.scales is not None else [])
        try:
            for path in paths:
                path.unlink(missing_ok=True)
            write_new_file(paths[0], self._header(KIND_ROWS, generation).pack())
            if view.scales is not None:
                write_new_file(paths[1], self._header(KIND_SCALES, generation).pack())
            files: list[int] = []
            try:
                for path in paths:
                    files.append(os.open(path, os.O_RDWR))
                for first in range(0, live.size, _CHECK_BATCH):
                    rows = live[first:first + _CHECK_BATCH]
                    codes = np.ascontiguousarray(view.matrix[rows])
                    scales = None if view.scales is None else np.ascontiguousarray(view.scales[rows])
                    bad = [int(r) for r, a in zip(rows, row_checksums(codes, scales)) if stored.get(int(r)) != a]
                    if bad:
                        raise ChecksumMismatchError(f"{self.path}: rows {bad[:10]} fail their checksum; not compacted")
                    _write_rows(files[0], self._header(KIND_ROWS, generation), first, codes)
                    if scales is not None:
                        _write_rows(files[1], self._header(KIND_SCALES, generation), first, scales[:, None])
                for fd in files:
                    os.fsync(fd)
            finally:
                for fd in files:
                    os.close(fd)
            fsync_directory(self.path)
            with metadata.transaction(self._db):
                metadata.renumber_live_rows(self._db, generation)
            metadata.scrub_wal(self._db)  # the log's older frames still hold the removed rows
        except BaseException as exc:
            for path in paths:
                path.unlink(missing_ok=True)
            if is_disk_full(exc):
                raise DiskFullError(f"{self.path}: disk full; not compacted") from exc
            raise
        self._start_writing()
        self._load()
        return view.count - int(live.size)

    # --- internals -----------------------------------------------------------

    def _header(self, kind: int, generation: int) -> Header:
        if kind == KIND_ROWS:
            return Header(KIND_ROWS, self.dtype, self.dim, self.gallery_id, generation, self.model_id)
        return Header(KIND_SCALES, "float32", 1, self.gallery_id, generation, self.model_id)

    def _require_gallery(self) -> None:
        if self._problem is not None:
            raise GalleryError(self._problem)

    def _require_writer(self) -> None:
        if not self.writable:
            raise GalleryError(f"{self.path}: open read-only; open it with writable=True to change it")

    def _check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"{self.path}: rows are {self.dim}-d, got embeddings of shape {np.shape(embeddings)}"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("embeddings contain NaN or infinity")
        norms = np.linalg.norm(vectors, axis=1)
        if norms.size and np.abs(norms - 1.0).max() > UNIT_TOLERANCE:
            raise ValueError("embeddings must be L2-normalised (unit length)")
        return np.ascontiguousarray(vectors)

    def _catch_up(self) -> bool:
        """Reload when SQLite says something was committed since the last time."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version and self._view is not None:
            return False
        self._load()
        self._data_version = version
        return True

    def _follow(self) -> bool:
        """Readers, at most once every FOLLOW_INTERVAL: reopen when the path holds another
        gallery than ours (or ours was lost); whether the view changed."""
        now = time.monotonic()
        if now - self._followed_at < FOLLOW_INTERVAL:
            return False
        self._followed_at = now
        try:
            identity = _identity(self.path)
        except OSError:
            identity = None
        if identity == self._identity and self._problem is None:
            return False
        if identity is None:
            if self._problem is None:
                self._lose(f"{self.path}: the gallery was deleted")
                return True
            return False
        model_id, dim = self._wanted
        try:
            fresh = Gallery.open(self.path, model_id, dim)
        except GalleryError as exc:
            if self._problem == str(exc):
                return False
            self._lose(str(exc))
            return True
        self._db.close()
        epoch = self._epoch + 1
        self.__dict__.update(vars(fresh))  # take over its connection, mappings and view
        self._epoch = epoch
        self._view = replace(self._view, epoch=epoch)
        log.warning("%s: another gallery is at the path now; opened it (%d rows)", self.path, self._view.count)
        return True

    def _lose(self, problem: str) -> None:
        """Readers: no usable gallery at the path; search nothing until there is one again."""
        log.error("%s; matching against nobody until a gallery is there again", problem)
        self._problem = problem
        self._faults = {}
        self._verified = (-1, 0)
        self._data_version = None
        self._maps = None
        self._epoch += 1
        empty = np.zeros((0, self.dim), np.dtype(self.dtype))
        self._view = GalleryView(-1, empty, None if self.dtype == "float32" else np.zeros(0, np.float32), None,
                                 self._epoch)

    def _load(self) -> None:
        """Read the committed state; (re)map the matrix files when they changed or grew;
        verify the rows not verified yet."""
        for attempt in range(3):
            with metadata.snapshot(self._db):
                generation, count = metadata.committed(self._db)
                deleted = metadata.deleted_rows(self._db)
            try:
                self._map(generation, count)
            except CorruptGalleryError:
                # A writer may have compacted twice since our snapshot and deleted the files
                # we were about to map; only an unchanged state makes this corruption.
                if attempt == 2 or metadata.committed(self._db)[0] == generation:
                    raise
                continue
            _, rows_map, scales_map = self._maps
            start = self._header(KIND_ROWS, generation).offset(0)
            matrix = np.frombuffer(rows_map, np.dtype(self.dtype), count * self.dim, start).reshape(count, self.dim)
            scales = None if scales_map is None else np.frombuffer(scales_map, np.float32, count, start)
            if self._verify(generation, matrix, scales):
                break
        else:
            raise GalleryError(f"{self.path}: compacted again and again while being read; try again")
        self._deleted = [r for r in deleted if r < count]
        self._problem = None
        self._view = GalleryView(generation, matrix, scales, self._valid(count, self._deleted), self._epoch)

    def _verify(self, generation: int, matrix: np.ndarray, scales: np.ndarray | None) -> bool:
        """Verify rows not verified yet (all of them in a new generation), noting the damaged
        ones; False if a compaction switched generations meanwhile."""
        if self._verified[0] != generation:
            self._verified, self._faults = (generation, 0), {}
        found: dict[int, ExcludedRow] = {}
        for first in range(self._verified[1], matrix.shape[0], _CHECK_BATCH):
            stop = min(matrix.shape[0], first + _CHECK_BATCH)
            with metadata.snapshot(self._db):  # checksums as numbered in this generation
                if metadata.committed(self._db)[0] != generation:
                    return False
                expected = metadata.checksums(self._db, first, stop)
                faults = row_faults(matrix[first:stop], None if scales is None else scales[first:stop], expected)
                names = metadata.names(self._db, [first + i for i in faults]) if faults else {}
            for i, reason in faults.items():
                found[first + i] = ExcludedRow(first + i, names.get(first + i), reason)
            self._verified = (generation, stop)
        self._faults.update(found)
        self._report(found.values())
        return True

    def _valid(self, count: int, deleted: list[int]) -> np.ndarray | None:
        if not deleted and not self._faults:
            return None
        valid = np.ones(count, np.bool_)
        valid[deleted] = False
        valid[[r for r in self._faults if r < count]] = False
        return valid

    def _report(self, found: Iterable[ExcludedRow]) -> None:
        found = sorted(found)
        if found:
            shown = "; ".join(map(str, found[:10])) + (" ..." if len(found) > 10 else "")
            log.warning("%s: %d damaged rows left out of every search: %s", self.path, len(found), shown)

    def _map(self, generation: int, count: int) -> None:
        """Map generation's files unless the current mappings already hold ``count`` rows of it."""
        rows_header = self._header(KIND_ROWS, generation)
        scales_header = self._header(KIND_SCALES, generation)
        if self._maps is not None and self._maps[0] == generation:
            _, rows_map, scales_map = self._maps
            if len(rows_map) >= rows_header.offset(count) and (
                scales_map is None or len(scales_map) >= scales_header.offset(count)
            ):
                return
        rows_map = map_file(rows_file(self.path, generation), rows_header, count)
        scales_map = None
        if self.dtype == "int8":
            scales_map = map_file(scales_file(self.path, generation), scales_header, count)
        self._maps = (generation, rows_map, scales_map)

    def _start_writing(self) -> None:
        """Writer start-up (and after a compaction): delete other generations' files, open this one's."""
        generation, _ = metadata.committed(self._db)
        keep = {rows_file(self.path, generation).name, scales_file(self.path, generation).name}
        for leftover in [*self.path.glob("rows-*.bin"), *self.path.glob("scales-*.bin")]:
            if leftover.name not in keep:
                leftover.unlink(missing_ok=True)
        restrict_modes(self.path)
        for fd in self._files or ():
            if fd is not None:
                os.close(fd)
        self._files = None
        try:
            rows_fd = os.open(rows_file(self.path, generation), os.O_RDWR)
            try:
                scales_fd = os.open(scales_file(self.path, generation), os.O_RDWR) if self.dtype == "int8" else None
            except BaseException:
                os.close(rows_fd)
                raise
        except FileNotFoundError as exc:
            raise CorruptGalleryError(f"{exc.filename}: missing") from None
        self._files = (rows_fd, scales_fd)


def _write_rows(fd: int, header: Header, start: int, rows: np.ndarray) -> None:
    """Write ``rows`` from row ``start`` on, growing the file by at least an eighth when
    it must grow, so that readers remap seldom (the spare bytes are sparse)."""
    end = header.offset(start + rows.shape[0])
    size = os.fstat(fd).st_size
    if size < end:
        os.ftruncate(fd, -(-max(end, size + size // 8) // 65536) * 65536)
    write_at(fd, memoryview(np.ascontiguousarray(rows)).cast("B"), header.offset(start))


def _truncate_quietly(fd: int, size: int) -> None:
    """After a failed append: give the disk space past the committed rows back, if we can."""
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass


def _identity(path: Path) -> tuple[int, int, int]:
    """What is at ``path``: device and inode of the directory and of its database. An open
    database's inode cannot be reused while the reader holds it, so a gallery rebuilt or
    restored at the same path always differs."""
    directory, database = os.stat(path), os.stat(path / metadata.FILE_NAME)
    return directory.st_dev, directory.st_ino, database.st_ino


def _database_error(path: Path, exc: sqlite3.DatabaseError) -> GalleryError:
    if getattr(exc, "sqlite_errorcode", None) in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
        return GalleryError(f"{path}: database busy ({exc})")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CorruptGalleryError(f"{path / metadata.FILE_NAME}: {reason}")
