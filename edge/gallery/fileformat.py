"""The gallery's matrix files: layout, header, row encoding, checksums, mapping.

A matrix file is a 4096-byte header followed by rows, row i at byte
HEADER_SIZE + i * row_bytes (4096 keeps rows aligned for vector loads and the
file mappable at page granularity). The header, little-endian:

    offset  size  field
         0     8  magic b"EDGEGLRY"
         8     2  format version (FORMAT_VERSION)
        10     1  kind: 1 = embedding rows, 2 = per-row int8 scales
        11     1  dtype: 1 = float32, 2 = int8
        12     4  values per row (the embedding dimension; 1 for scales)
        16    16  gallery id (random, also in the SQLite metadata)
        32     4  generation (bumped by every compaction)
        36     2  length of the model id in bytes (at most MAX_MODEL_ID_BYTES)
        38     n  model id, UTF-8
      4092     4  CRC-32 of bytes 0..4091

The row count is deliberately not in the header: the SQLite metadata holds
the committed count, so that one SQLite commit is the single moment rows
become visible (see edge.gallery.store). A file may be longer than its
committed rows (space reserved ahead, or rows of an append that never
committed); those bytes mean nothing.

int8 rows store round(x / s) per component, s = max|x| / 127 for the row,
so codes span -127..127; the float32 scales s live in a second file of the
same layout (kind 2, one value per row).

A row is searchable only when ``row_faults`` finds nothing wrong with it: its
bytes (and its scale's) match the checksum SQLite recorded when it was
appended, its scale is finite and positive, and its length is 1 within
UNIT_TOLERANCE (float32) or INT8_UNIT_TOLERANCE (int8, after the scale: the
rounding to 127 levels alone moves a unit vector's length by up to about
0.004). The writer refuses rows that would fail this, so a row that fails
it was damaged after it was written.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.gallery.errors import ChecksumMismatchError, CorruptGalleryError, GalleryError

MAGIC = b"EDGEGLRY"
FORMAT_VERSION = 1
HEADER_SIZE = 4096
MAX_MODEL_ID_BYTES = 1024
KIND_ROWS, KIND_SCALES = 1, 2
DTYPES = {"float32": 1, "int8": 2}
INT8_LEVELS = 127
UNIT_TOLERANCE = 1e-3
"""Largest accepted | ||v|| - 1 | of a float32 row (and of an embedding appended)."""
INT8_UNIT_TOLERANCE = 1e-2
"""The same for an int8 row after its scale (measured on 200,000 random unit vectors: at most 0.0036)."""

_DTYPE_NAMES = {code: name for name, code in DTYPES.items()}
_FIXED = struct.Struct("<8sHBBI16sIH")
_CRC = struct.Struct("<I")
_CRC_OFFSET = HEADER_SIZE - _CRC.size


@dataclass(frozen=True, slots=True)
class Header:
    """The fields of a matrix file header; see the module docstring."""

    kind: int
    dtype: str
    dim: int
    gallery_id: bytes
    generation: int
    model_id: str

    def pack(self) -> bytes:
        model = self.model_id.encode("utf-8")
        if len(model) > MAX_MODEL_ID_BYTES:
            raise ValueError(f"model id longer than {MAX_MODEL_ID_BYTES} bytes")
        fixed = _FIXED.pack(
            MAGIC, FORMAT_VERSION, self.kind, DTYPES[self.dtype], self.dim,
            self.gallery_id, self.generation, len(model),
        )
        body = (fixed + model).ljust(_CRC_OFFSET, b"\0")
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def unpack(cls, raw: bytes, where: Path) -> Header:
        """Parse and verify a header read from the file ``where``."""
        if len(raw) < HEADER_SIZE:
            raise CorruptGalleryError(f"{where}: truncated header ({len(raw)} of {HEADER_SIZE} bytes)")
        magic, version, kind, dtype, dim, gallery_id, generation, model_len = _FIXED.unpack_from(raw)
        if magic != MAGIC:
            raise CorruptGalleryError(f"{where}: not a gallery matrix file (bad magic {magic!r})")
        (stored_crc,) = _CRC.unpack_from(raw, _CRC_OFFSET)
        if zlib.crc32(raw[:_CRC_OFFSET]) != stored_crc:
            raise ChecksumMismatchError(f"{where}: header checksum mismatch")
        if version != FORMAT_VERSION:
            raise GalleryError(f"{where}: format version {version}, this program reads {FORMAT_VERSION}")
        if kind not in (KIND_ROWS, KIND_SCALES) or dtype not in _DTYPE_NAMES or model_len > MAX_MODEL_ID_BYTES:
            raise CorruptGalleryError(f"{where}: header fields out of range")
        model = raw[_FIXED.size:_FIXED.size + model_len].decode("utf-8", errors="replace")
        return cls(kind, _DTYPE_NAMES[dtype], dim, gallery_id, generation, model)

    @property
    def row_bytes(self) -> int:
        return self.dim * np.dtype(self.dtype).itemsize

    def offset(self, row: int) -> int:
        """Byte offset of ``row`` in the file."""
        return HEADER_SIZE + row * self.row_bytes


def rows_file(directory: Path, generation: int) -> Path:
    return directory / f"rows-{generation}.bin"


def scales_file(directory: Path, generation: int) -> Path:
    return directory / f"scales-{generation}.bin"


def map_file(path: Path, expected: Header, rows: int) -> mmap.mmap:
    """Map a matrix file read-only after checking its header and that it holds ``rows`` rows."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise CorruptGalleryError(f"{path}: missing") from None
    except OSError as exc:
        raise CorruptGalleryError(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CorruptGalleryError(f"{path}: not a regular file")
        header = Header.unpack(os.pread(fd, HEADER_SIZE, 0), path)
        if header != expected:
            raise CorruptGalleryError(f"{path}: header {header} does not match the metadata {expected}")
        size = os.fstat(fd).st_size
        if size < expected.offset(rows):
            raise CorruptGalleryError(
                f"{path}: truncated, {size} bytes where the {rows} committed rows need {expected.offset(rows)}"
            )
        return mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def encode_rows(vectors: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows as stored: float32 as given; int8 codes with float32 per-row scales.

    ``vectors`` is (n, D) float32 without all-zero rows (callers pass unit vectors).
    """
    if dtype == "float32":
        return np.ascontiguousarray(vectors, dtype=np.float32), None
    scales = (np.abs(vectors).max(axis=1) / INT8_LEVELS).astype(np.float32)
    codes = np.clip(np.rint(vectors / scales[:, None]), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
    return codes, scales


def row_checksums(rows: np.ndarray, scales: np.ndarray | None) -> list[int]:
    """CRC-32 of each (n, D) row's stored bytes, continued over its scale's 4 bytes for int8."""
    sums = list(map(zlib.crc32, np.ascontiguousarray(rows)))
    if scales is not None:
        scale_data = memoryview(np.ascontiguousarray(scales, dtype=np.float32)).cast("B")
        sums = [zlib.crc32(scale_data[4 * i:4 * i + 4], crc) for i, crc in enumerate(sums)]
    return sums


def row_norms(rows: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """Euclidean length of each (n, D) stored row, after its scale for int8."""
    values = np.asarray(rows).astype(np.float32, copy=False)
    norms = np.sqrt(np.einsum("ij,ij->i", values, values)).astype(np.float64)
    return norms if scales is None else norms * np.asarray(scales, dtype=np.float64)


def unit_tolerance(dtype: str) -> float:
    """How far from 1 a stored row's length may be: the rule shared by the writer and every reader."""
    return INT8_UNIT_TOLERANCE if dtype == "int8" else UNIT_TOLERANCE


def row_faults(rows: np.ndarray, scales: np.ndarray | None, checksums: np.ndarray) -> dict[int, str]:
    """What is wrong with each damaged row of an (n, D) batch as stored, by index in the batch.

    checksums: (n,) the stored CRC-32 of each row (-1 where the metadata has
    none). Checks, in this order: the checksum, the scale (finite, > 0), the
    length (see the module docstring). Rows not in the answer are sound.
    """
    faults: dict[int, str] = {}
    with np.errstate(all="ignore"):
        actual = np.fromiter(row_checksums(rows, scales), np.int64, rows.shape[0])
        for i in np.flatnonzero(actual != checksums).tolist():
            faults[i] = "no checksum in the metadata" if checksums[i] < 0 else "checksum mismatch"
        if scales is not None:
            for i in np.flatnonzero(~(np.isfinite(scales) & (scales > 0))).tolist():
                faults.setdefault(i, f"int8 scale {float(scales[i])!r} is not finite and positive")
        norms = row_norms(rows, scales)
        tolerance = unit_tolerance("int8" if scales is not None else "float32")
        for i in np.flatnonzero(~(np.abs(norms - 1.0) <= tolerance)).tolist():
            faults.setdefault(i, f"length {float(norms[i]):.6g}, not 1")
    return faults
