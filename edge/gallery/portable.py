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
import os
import zipfile
from pathlib import Path

import numpy as np

from edge.gallery.errors import CorruptGalleryError, ModelMismatchError
from edge.gallery.store import Gallery

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


def read_export(source: Path) -> tuple[dict, np.ndarray]:
    """The metadata and (N, D) embeddings of an export file; CorruptGalleryError if it is not one."""
    try:
        with zipfile.ZipFile(source) as archive:
            meta = json.loads(archive.read("gallery.json"))
            vectors = np.load(io.BytesIO(archive.read("embeddings.npy")), allow_pickle=False)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptGalleryError(f"{source}: not a gallery export ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CorruptGalleryError(f"{source}: not a gallery export of format {FORMAT} v{VERSION}")
    rows = meta.get("rows", [])
    if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(rows) or vectors.shape[1] != meta.get("dim"):
        raise CorruptGalleryError(f"{source}: embeddings {vectors.dtype} {vectors.shape} do not match its {len(rows)} rows")
    return meta, vectors


def import_into(gallery: Gallery, source: Path) -> int:
    """Append an export's rows to a gallery open for writing (all or none); how many rows."""
    meta, vectors = read_export(source)
    if meta["model_id"] != gallery.model_id:
        raise ModelMismatchError(f"{source}: exported from model {meta['model_id']!r}; this gallery uses {gallery.model_id!r}")
    rows = meta["rows"]
    if not rows:
        return 0
    gallery.append(vectors, [r["identity"] for r in rows], [r["source"] for r in rows],
                   [r["quality"] for r in rows], added=[r["added"] for r in rows])
    return len(rows)
