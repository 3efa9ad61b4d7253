"""Reading photos from disk into the engine's image format (H, W, 3) uint8 BGR.

Every failure raises ImageError with a message that says what is wrong with
which file, so a batch tool can report it and go on with the next file.

Before anything is decoded, the image's size is read from its header
(``image_size``: JPEG, PNG, GIF, BMP, WebP, TIFF, PNM) and an image of more
than ``max_pixels`` pixels, or with a side longer than MAX_IMAGE_SIDE, is
refused: a few hundred bytes can claim 30,000 x 30,000 pixels, which the
decoder would allocate. A format whose header is not understood here is
refused too. OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS, read once when
its library loads) is set as this module is imported (by edge.config, via the
settings, before anything loads OpenCV), as a backstop at the largest limit a
setting may give.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

DEFAULT_MAX_PIXELS = 40_000_000
"""Images with more pixels than this are refused (the default of [recognition] max_image_pixels)."""

LARGEST_MAX_PIXELS = 200_000_000
"""The highest ``max_pixels`` a setting may ask for; OpenCV's own limit is set to it."""

MAX_IMAGE_SIDE = 30_000
"""Images with a longer side are refused whatever their pixel count (OpenCV's
geometry functions take at most 32,767 pixels a side)."""

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(LARGEST_MAX_PIXELS))  # before OpenCV loads
# OpenCV's C++ warnings (a camera index that is not there, ...) would come before edge's own one-line error.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import numpy as np  # noqa: E402  (OpenCV is imported where it decodes: reading the config must not load it)

MAX_IMAGE_BYTES = 256 * 1024 * 1024
"""Files larger than this are refused before decoding (a photo is far smaller)."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
"""File names taken as photos when a folder is scanned (the content decides the format)."""


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and the reason."""


def shown(path: str | os.PathLike) -> str:
    """``path`` as text that can be printed anywhere: bytes of a non-UTF-8 file
    name (os.fsdecode's surrogate escapes) as ``\\xNN``."""
    text = os.fsdecode(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte gives
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 BGR.

    The format is taken from the file's content, not its extension. Grayscale,
    palette, RGBA (alpha dropped) and 16-bit images are converted; EXIF
    orientation is applied as a phone would show the photo. An image of more
    than ``max_pixels`` pixels is refused from its header, before decoding.
    """
    path = Path(path)
    name = shown(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except ValueError:  # a NUL byte in the path (a pairs file or a folder listing can carry one)
        raise ImageError(f"{name}: not a usable file name") from None
    if stat.S_ISDIR(status.st_mode):
        raise ImageError(f"{name}: is a directory, not an image")
    if not stat.S_ISREG(status.st_mode):  # a FIFO or a device would block or never end
        raise ImageError(f"{name}: not a regular file")
    size = status.st_size
    if size == 0:
        raise ImageError(f"{name}: empty file")
    if size > MAX_IMAGE_BYTES:
        raise ImageError(f"{name}: {size} bytes is too large for a photo")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, name=name, max_pixels=max_pixels)


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WEBP, BMP, TIFF, ...) as (H, W, 3) uint8 BGR."""
    truncated = _truncation_reason(data)
    if truncated:
        raise ImageError(f"{name}: truncated image ({truncated})")
    check_size(data, name, max_pixels)
    import cv2

    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt data)")
    if image.shape[0] * image.shape[1] > max_pixels:  # e.g. a header that understated the size
        raise ImageError(f"{name}: {image.shape[1]} x {image.shape[0]} pixels is over the limit of {max_pixels}")
    return np.ascontiguousarray(image)


def check_size(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """The (width, height) the header of ``data`` declares, if within the limits; else ImageError."""
    try:
        size = image_size(data)
    except (struct.error, IndexError, ValueError):
        size = None
    if size is None:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt header)")
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: not a readable image (header gives {width} x {height} pixels)")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ImageError(f"{name}: {width} x {height} pixels; a side over {MAX_IMAGE_SIDE} is refused")
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width} x {height} pixels is over the limit of {max_pixels} "
                         "([recognition] max_image_pixels)")
    return width, height


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a JPEG, PNG, GIF, BMP, WebP, TIFF or PNM image; None for other formats."""
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_size(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24]) if data[12:16] == b"IHDR" else None
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM":
        if struct.unpack("<I", data[14:18])[0] == 12:  # BITMAPCOREHEADER
            return struct.unpack("<HH", data[18:22])
        width, height = struct.unpack("<ii", data[18:26])
        return width, abs(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    if data[:1] == b"P" and data[1:2] in b"123456" and len(data) > 2:
        return _pnm_size(data)
    return None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    found = {}
    for entry in range(count):
        start = offset + 2 + 12 * entry
        tag, kind = struct.unpack(order + "HH", data[start:start + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            if kind == 3:
                found[tag] = struct.unpack(order + "H", data[start + 8:start + 10])[0]
            elif kind == 4:
                found[tag] = struct.unpack(order + "I", data[start + 8:start + 12])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    numbers: list[int] = []
    for line in data[2:4096].split(b"\n"):
        for token in line.split(b"#", 1)[0].split():
            numbers.append(int(token))
            if len(numbers) == 2:
                return numbers[0], numbers[1]
    return None


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
