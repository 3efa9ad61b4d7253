"""What can go wrong with a gallery, one class per cause the caller can act on."""

from __future__ import annotations


class GalleryError(Exception):
    """Base class: the gallery cannot be used as asked."""


class GalleryNotFoundError(GalleryError):
    """The path is not a gallery directory (or does not exist)."""


class CorruptGalleryError(GalleryError):
    """Files that are not what the gallery recorded: bad or truncated header,
    missing rows, metadata and matrix that disagree. Restore from a backup."""


class ChecksumMismatchError(CorruptGalleryError):
    """A stored checksum (of a file header or of a row) does not match the bytes."""


class ModelMismatchError(GalleryError):
    """The gallery was made with another embedding model; its vectors are not
    comparable with this model's. Rebuild the gallery with the current model."""


class DimensionMismatchError(GalleryError):
    """Vectors of another length than the gallery's rows."""


class GalleryLockedError(GalleryError):
    """Another process (or another handle in this one) is writing the gallery."""


class DiskFullError(GalleryError):
    """No space left to write; nothing of the failed change became visible."""
