"""The gallery of enrolled faces: a crash-safe store and identity search over it.

    from edge.gallery import Gallery, identify
    gallery = Gallery.open("door.gallery", model_id=embedder_sha256)
    matches = identify(gallery, vectors, SearchSettings())   # [Match(name, similarity, row) or None]

``store`` holds the files and their guarantees, ``search`` the identity-level
answers over edge.gallery.topk.top_k, ``errors`` the exception classes. Names are
imported lazily, so importing the package loads neither numba nor SQLite.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Gallery": "edge.gallery.store",
    "GalleryView": "edge.gallery.store",
    "RowInfo": "edge.gallery.store",
    "Match": "edge.gallery.search",
    "search": "edge.gallery.search",
    "identify": "edge.gallery.search",
    "GalleryError": "edge.gallery.errors",
    "GalleryNotFoundError": "edge.gallery.errors",
    "CorruptGalleryError": "edge.gallery.errors",
    "ChecksumMismatchError": "edge.gallery.errors",
    "ModelMismatchError": "edge.gallery.errors",
    "DimensionMismatchError": "edge.gallery.errors",
    "GalleryLockedError": "edge.gallery.errors",
    "DiskFullError": "edge.gallery.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edge.gallery' has no attribute {name!r}")
