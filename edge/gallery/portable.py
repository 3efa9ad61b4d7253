"""A gallery as one portable file, to move people between doors or keep a backup.

The file is a zip holding ``embeddings.npy`` (N, D) float32 unit vectors and
``gallery.json`` (format, model id, and per row: identity, source, time
added, quality). No pickles: numpy arrays are read with allow_pickle=False.
Deleted rows are not exported. Importing checks the model id, so embeddings
of another model can never enter a gallery.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from edge.gallery.errors import CorruptGalleryError, ModelMismatchError
from edge.gallery.store import Gallery
from edge.names import InvalidNameError, validate_name

FORMAT = "edge-gallery-export"
VERSION = 1


def export_gallery(gallery: Gallery, target: Path) -> int:
    """Write the live rows of ``gallery`` to ``target`` (atomically); how many rows."""
    view = gallery.view()
    rows = np.arange(view.count) if view.valid is None else np.flatnonzero(view.valid)
    vectors = np.asarray(view.matrix[rows], dtype=np.float32)
    if view.scales is not None:
        vectors *= view.scales[rows][:, None]
    info = {i.row: i for i in gallery.row_info(rows.tolist())}
    meta = {
        "format": FORMAT, "version": VERSION, "model_id": gallery.model_id, "dim": gallery.dim,
        "rows": [{"identity": info[r].identity, "source": info[r].source, "added": info[r].added,
                  "quality": info[r].quality} for r in rows.tolist()],
    }
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    temporary = Path(target).with_name(f".{Path(target).name}.partial")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("gallery.json", json.dumps(meta))
        archive.writestr("embeddings.npy", buffer.getvalue())
    with open(temporary, "rb") as f:
        os.fsync(f.fileno())
    os.replace(temporary, target)
    return len(rows)


MAX_JSON_BYTES = 256 * 1024 * 1024
MAX_NPY_BYTES = 1024 * 1024 * 1024
"""The largest gallery.json and embeddings.npy read from an export (millions of rows),
checked as they are inflated: a small zip cannot make the reader take more. The
embeddings are also held to what the metadata's rows need."""
NPY_HEADER_BYTES = 4096
"""Room for the .npy header above the vectors' own bytes (numpy writes 128 bytes or a few times that)."""

UNIT_TOLERANCE = 1e-3
"""How far from 1 an imported vector's length may be (float32 rounding is ~1e-7)."""


def read_export(source: Path) -> tuple[dict, np.ndarray]:
    """The metadata and (N, D) embeddings of an export file; CorruptGalleryError if it is not one.

    Everything is checked before anything is imported: the two members and
    their sizes, the metadata's fields, every name (edge.names.validate_name;
    names come back in their stored form), and the vectors' dtype, shape,
    finiteness and unit length.
    """
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):  # a device never ends, a FIFO blocks
            raise CorruptGalleryError(f"{source}: not a regular file")
        with zipfile.ZipFile(source) as archive:
            meta = _checked_meta(json.loads(_member(archive, "gallery.json", MAX_JSON_BYTES, source)), source)
            # The metadata says how many vectors there are: nothing larger is inflated.
            expected = len(meta["rows"]) * meta["dim"] * 4 + NPY_HEADER_BYTES
            vectors = np.load(io.BytesIO(_member(archive, "embeddings.npy", min(expected, MAX_NPY_BYTES), source)),
                              allow_pickle=False)
    except CorruptGalleryError:
        raise
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
            zipfile.LargeZipFile, zlib.error) as exc:  # not a zip, encrypted, damaged, bad JSON or .npy
        raise CorruptGalleryError(f"{source}: not a gallery export ({_one_line(exc)})") from None
    rows, dim = meta["rows"], meta["dim"]
    if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(rows) or vectors.shape[1] != dim:
        raise CorruptGalleryError(f"{source}: embeddings {vectors.dtype} {vectors.shape} do not match its {len(rows)} rows of dim {dim}")
    if not np.isfinite(vectors).all():
        raise CorruptGalleryError(f"{source}: embeddings hold NaN or infinite values")
    lengths = np.linalg.norm(vectors, axis=1)
    off = np.flatnonzero(np.abs(lengths - 1.0) > UNIT_TOLERANCE)
    if off.size:
        raise CorruptGalleryError(f"{source}: embedding of row {int(off[0])} has length {lengths[off[0]]:.4g}, not 1")
    return meta, vectors


def _checked_meta(meta: object, source: Path) -> dict:
    """The export's metadata with every field and name checked (rows replaced by their checked form)."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CorruptGalleryError(f"{source}: not a gallery export of format {FORMAT} v{VERSION}")
    if not isinstance(meta.get("model_id"), str) or not meta["model_id"]:
        raise CorruptGalleryError(f"{source}: no model_id")
    dim = meta.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 65536:
        raise CorruptGalleryError(f"{source}: dim {dim!r} is not 1..65536")
    rows = meta.get("rows")
    if not isinstance(rows, list):
        raise CorruptGalleryError(f"{source}: 'rows' is not a list")
    return {**meta, "rows": [_checked_row(row, i, source) for i, row in enumerate(rows)]}


def _member(archive: zipfile.ZipFile, name: str, limit: int, source: Path) -> bytes:
    """The bytes of one member, refused when it says or turns out to be over ``limit``."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CorruptGalleryError(f"{source}: not a gallery export (no {name})") from None
    if info.file_size > limit:
        raise CorruptGalleryError(f"{source}: {name} is {info.file_size} bytes; at most {limit} are read")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise CorruptGalleryError(f"{source}: {name} inflates past {limit} bytes")
    return data


def _checked_row(row: object, index: int, source: Path) -> dict:
    """One row of an export's metadata with its name validated (and normalised), or CorruptGalleryError."""
    where = f"{source}: row {index}"
    if not isinstance(row, dict):
        raise CorruptGalleryError(f"{where} is not an object")
    identity = row.get("identity")
    if not isinstance(identity, str):
        raise CorruptGalleryError(f"{where}: no identity")
    try:
        identity = validate_name(identity)
    except InvalidNameError as exc:
        raise CorruptGalleryError(f"{where}: unusable name {_one_line(repr(identity))}: {exc}") from None
    source_path, added, quality = row.get("source"), row.get("added"), row.get("quality")
    if source_path is not None and not isinstance(source_path, str):
        raise CorruptGalleryError(f"{where}: source is not text")
    if not _is_number(added) or not math.isfinite(added):
        raise CorruptGalleryError(f"{where}: 'added' is not a time")
    if quality is not None and (not _is_number(quality) or not math.isfinite(quality)):
        raise CorruptGalleryError(f"{where}: 'quality' is not a number")
    return {"identity": identity, "source": source_path, "added": float(added),
            "quality": None if quality is None else float(quality)}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:200]


def import_into(gallery: Gallery, source: Path, export: tuple[dict, np.ndarray] | None = None) -> int:
    """Append an export's rows to a gallery open for writing (all or none); how many rows.

    ``export``: what ``read_export(source)`` gave, if it was read already."""
    meta, vectors = export if export is not None else read_export(source)
    if meta["model_id"] != gallery.model_id:
        raise ModelMismatchError(f"{source}: exported from model {meta['model_id']!r}; this gallery uses {gallery.model_id!r}")
    rows = meta["rows"]
    if not rows:
        return 0
    gallery.append(vectors, [r["identity"] for r in rows], [r["source"] for r in rows],
                   [r["quality"] for r in rows], added=[r["added"] for r in rows])
    return len(rows)
