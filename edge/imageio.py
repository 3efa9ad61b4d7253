"""Reading photos from disk into the engine's image format (H, W, 3) uint8 BGR.

Every failure raises ImageError with a message that says what is wrong with
which file, so a batch tool can report it and go on with the next file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MAX_IMAGE_BYTES = 256 * 1024 * 1024
"""Files larger than this are refused before decoding (a photo is far smaller)."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
"""File names taken as photos when a folder is scanned (the content decides the format)."""


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and the reason."""


def load_image(path: str | Path) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 BGR.

    The format is taken from the file's content, not its extension. Grayscale,
    palette, RGBA (alpha dropped) and 16-bit images are converted; EXIF
    orientation is applied as a phone would show the photo.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if size == 0:
        raise ImageError(f"{path}: empty file")
    if size > MAX_IMAGE_BYTES:
        raise ImageError(f"{path}: {size} bytes is too large for a photo")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, name=str(path))


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WEBP, BMP, TIFF, ...) as (H, W, 3) uint8 BGR."""
    truncated = _truncation_reason(data)
    if truncated:
        raise ImageError(f"{name}: truncated image ({truncated})")
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt data)")
    return np.ascontiguousarray(image)


def _truncation_reason(data: bytes) -> str | None:
    """Why the bytes look like a cut-off JPEG or PNG, or None.

    OpenCV decodes a truncated JPEG with a grey lower part and only a warning,
    which would silently feed half a face to the recognizer.
    """
    if data[:3] == b"\xff\xd8\xff":
        tail = data[-64:].rstrip(b"\x00\r\n ")
        if not tail.endswith(b"\xff\xd9"):
            return "JPEG end marker missing"
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-32:]:
            return "PNG IEND chunk missing"
    return None
