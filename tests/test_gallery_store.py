"""The gallery store: round trips, readers and writers, and every error class."""

import errno
import mmap
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.gallery.errors import (
    ChecksumMismatchError,
    CorruptGalleryError,
    DimensionMismatchError,
    DiskFullError,
    GalleryError,
    GalleryLockedError,
    GalleryNotFoundError,
    ModelMismatchError,
)
from edge.gallery.fileformat import HEADER_SIZE
from edge.gallery.store import Gallery

REPO = Path(__file__).resolve().parents[1]
MODEL = "sha256:sface-test"


def unit(rng, n, dim=128):
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def rng():
    return np.random.default_rng(12)


@pytest.fixture(params=["float32", "int8"])
def dtype(request):
    return request.param


def dequantised(view):
    if view.scales is None:
        return np.asarray(view.matrix)
    return view.matrix.astype(np.float32) * view.scales[:, None]


def test_round_trip(tmp_path, rng, dtype):
    vectors = unit(rng, 5)
    with Gallery.create(tmp_path / "g", MODEL, dtype=dtype) as writer:
        rows = writer.append(vectors, ["ann", "ann", "bob", "cy", "bob"], sources=list("abcde"),
                             qualities=[0.9, None, 0.5, 1, 0.2], added=1000.0)
        assert rows == range(0, 5)
        assert writer.append(np.empty((0, 128), np.float32), []) == range(5, 5)
    with Gallery.open(tmp_path / "g", MODEL, dim=128) as reader:
        view = reader.view()
        assert view.count == view.live_count == 5 and view.valid is None
        assert view.matrix.dtype == np.dtype(dtype) and not view.matrix.flags.writeable
        tolerance = 0 if dtype == "float32" else 0.004
        np.testing.assert_allclose(dequantised(view), vectors, atol=tolerance)
        assert reader.identities() == {"ann": 2, "bob": 2, "cy": 1}
        info = reader.row_info([4, 1])
        assert [(r.row, r.identity, r.source, r.quality, r.added, r.deleted) for r in info] == [
            (1, "ann", "b", None, 1000.0, False),
            (4, "bob", "e", 0.2, 1000.0, False),
        ]
        reader.check()


def test_open_maps_the_matrix(tmp_path, rng):
    with Gallery.create(tmp_path / "g", MODEL) as writer:
        writer.append(unit(rng, 3), ["a"] * 3)
        base = writer.view().matrix
        while isinstance(base, np.ndarray):
            base = base.base
        assert isinstance(base.obj if isinstance(base, memoryview) else base, mmap.mmap)


@pytest.mark.slow
def test_reader_sees_rows_from_a_writer_process_without_reopening(tmp_path, rng):
    path = tmp_path / "g"
    Gallery.create(path, MODEL).close()
    reader = Gallery.open(path, MODEL)
    assert reader.view().count == 0
    script = (
        "import sys, numpy as np; from edge.gallery.store import Gallery\n"
        "v = np.eye(128, dtype=np.float32)[:int(sys.argv[2])]\n"
        "with Gallery.open(sys.argv[1], 'sha256:sface-test', writable=True) as g:\n"
        "    g.append(v, ['p%d' % i for i in range(len(v))])\n"
    )
    for total in (4, 8):
        subprocess.run([sys.executable, "-c", script, str(path), "4"], check=True, cwd=REPO, timeout=60)
        view = reader.view()
        assert view.count == total
    np.testing.assert_array_equal(view.matrix[4:8], np.eye(128, dtype=np.float32)[:4])
    reader.close()


@pytest.mark.slow
def test_reader_process_sees_rows_from_this_writer(tmp_path, rng):
    path = tmp_path / "g"
    writer = Gallery.create(path, MODEL)
    script = (
        "import sys; from edge.gallery.store import Gallery\n"
        "g = Gallery.open(sys.argv[1], 'sha256:sface-test')\n"
        "for line in sys.stdin:\n"
        "    v = g.view(); print(v.count, round(float(v.matrix[-1].sum()), 4) if v.count else 0, flush=True)\n"
    )
    reader = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for batch in (1, 2, 600):
            vectors = unit(rng, batch)
            writer.append(vectors, ["x"] * batch)
            reader.stdin.write("?\n")
            reader.stdin.flush()
            count, last_sum = reader.stdout.readline().split()
            assert int(count) == writer.count
            assert float(last_sum) == pytest.approx(float(vectors[-1].sum()), abs=2e-4)
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
        writer.close()


def test_delete_and_compact(tmp_path, rng, dtype):
    vectors = unit(rng, 6)
    writer = Gallery.create(tmp_path / "g", MODEL, dtype=dtype)
    writer.append(vectors, ["a", "b", "a", "c", "b", "a"], sources=[str(i) for i in range(6)])
    reader = Gallery.open(tmp_path / "g", MODEL)
    assert writer.delete([1, 1, 4, 99]) == 2
    assert writer.delete_identity("c") == 1
    view = reader.view()
    assert view.live_count == 3 and list(np.flatnonzero(~view.valid)) == [1, 3, 4]
    assert reader.identities() == {"a": 3}
    old_view = view
    assert writer.compact() == 3
    assert sorted(p.name for p in (tmp_path / "g").glob("*.bin")) == ["rows-1.bin"] + (
        ["scales-1.bin"] if dtype == "int8" else []
    )
    view = reader.view()
    assert view.generation == 1 and view.count == 3 and view.valid is None
    np.testing.assert_allclose(dequantised(view), vectors[[0, 2, 5]], atol=0.004)
    assert [r.source for r in reader.row_info()] == ["0", "2", "5"]
    assert old_view.matrix.shape == (6, 128)  # views taken before stay readable
    assert reader.check() == 3
    writer.append(unit(rng, 1), ["d"])
    assert reader.view().count == 4
    writer.close()
    reader.close()


def test_garbage_after_the_committed_rows_is_ignored_then_overwritten(tmp_path, rng):
    path = tmp_path / "g"
    with Gallery.create(path, MODEL) as writer:
        writer.append(unit(rng, 2), ["a", "b"])
    with open(path / "rows-0.bin", "r+b") as f:  # what a writer killed before its commit leaves
        f.seek(HEADER_SIZE + 2 * 512)
        f.write(os.urandom(3 * 512 + 100))
    with Gallery.open(path, MODEL) as reader:
        assert reader.view().count == 2
        reader.check()
    more = unit(rng, 1)
    with Gallery.open(path, MODEL, writable=True) as writer:
        writer.append(more, ["c"])
        np.testing.assert_array_equal(writer.view().matrix[2], more[0])
        assert writer.check() == 3


def test_leftover_generation_files_are_removed_by_the_next_writer(tmp_path, rng):
    path = tmp_path / "g"
    Gallery.create(path, MODEL).close()
    (path / "rows-7.bin").write_bytes(b"half a compaction")
    with Gallery.open(path, MODEL) as reader:
        assert reader.view().count == 0
    Gallery.open(path, MODEL, writable=True).close()
    assert not (path / "rows-7.bin").exists()


# --- errors -----------------------------------------------------------------


def make(tmp_path, rng, dtype="float32", rows=3):
    path = tmp_path / "g"
    with Gallery.create(path, MODEL, dtype=dtype) as writer:
        writer.append(unit(rng, rows), ["a"] * rows)
    return path


def test_not_a_gallery(tmp_path):
    with pytest.raises(GalleryNotFoundError):
        Gallery.open(tmp_path / "missing")
    with pytest.raises(GalleryError, match="already exists"):
        Gallery.create(tmp_path, MODEL)


def test_other_model(tmp_path, rng):
    path = make(tmp_path, rng)
    with pytest.raises(ModelMismatchError, match="rebuild"):
        Gallery.open(path, "sha256:another-model")
    Gallery.open(path).close()  # no model given: listing is allowed


def test_dimension_mismatch(tmp_path, rng):
    path = make(tmp_path, rng)
    with pytest.raises(DimensionMismatchError):
        Gallery.open(path, MODEL, dim=512)
    with Gallery.open(path, MODEL, writable=True) as writer:
        with pytest.raises(DimensionMismatchError):
            writer.append(unit(rng, 1, dim=64), ["a"])
        with pytest.raises(ValueError, match="L2-normalised"):
            writer.append(unit(rng, 1) * 2, ["a"])
        with pytest.raises(ValueError, match="NaN"):
            writer.append(np.full((1, 128), np.nan, np.float32), ["a"])
        with pytest.raises(ValueError, match="identities"):
            writer.append(unit(rng, 2), ["a"])
        assert writer.count == 3


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda f: f.truncate(100), CorruptGalleryError, "truncated header"),
        (lambda f: (f.seek(0), f.write(b"NOTAGALY")), CorruptGalleryError, "bad magic"),
        (lambda f: (f.seek(40), f.write(b"X")), ChecksumMismatchError, "header checksum"),
        (lambda f: f.truncate(HEADER_SIZE + 512 + 10), CorruptGalleryError, "truncated, "),
    ],
)
def test_damaged_matrix_file(tmp_path, rng, damage, error, message):
    path = make(tmp_path, rng)
    with open(path / "rows-0.bin", "r+b") as f:
        damage(f)
    with pytest.raises(error, match=message):
        Gallery.open(path, MODEL)


def test_damaged_scales_file(tmp_path, rng):
    path = make(tmp_path, rng, dtype="int8")
    with open(path / "scales-0.bin", "r+b") as f:
        f.truncate(HEADER_SIZE + 4)
    with pytest.raises(CorruptGalleryError, match="scales-0.bin: truncated"):
        Gallery.open(path, MODEL)


def test_files_from_another_gallery(tmp_path, rng):
    path = make(tmp_path, rng)
    other = tmp_path / "other"
    with Gallery.create(other, MODEL) as writer:
        writer.append(unit(rng, 3), ["b"] * 3)
    (path / "rows-0.bin").write_bytes((other / "rows-0.bin").read_bytes())
    with pytest.raises(CorruptGalleryError, match="does not match the metadata"):
        Gallery.open(path, MODEL)


def test_damaged_database(tmp_path, rng):
    path = make(tmp_path, rng)
    (path / "gallery.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptGalleryError):
        Gallery.open(path, MODEL)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_row_checksum_mismatch(tmp_path, rng, dtype):
    path = make(tmp_path, rng, dtype=dtype, rows=4)
    row_size = 128 * np.dtype(dtype).itemsize
    with open(path / "rows-0.bin", "r+b") as f:
        f.seek(HEADER_SIZE + 2 * row_size + 7)
        f.write(b"\x55")
    with Gallery.open(path, MODEL, writable=True) as gallery:  # opening does not read the rows
        with pytest.raises(ChecksumMismatchError, match="1 rows fail their checksum: 2"):
            gallery.check()
        gallery.delete([0])
        with pytest.raises(ChecksumMismatchError, match="not compacted"):
            gallery.compact()
        assert gallery.view().generation == 0 and gallery.count == 4


def test_locked(tmp_path, rng):
    path = make(tmp_path, rng)
    writer = Gallery.open(path, MODEL, writable=True)
    with pytest.raises(GalleryLockedError, match=f"pid {os.getpid()}"):
        Gallery.open(path, MODEL, writable=True)
    with pytest.raises(GalleryLockedError):
        Gallery.open(path, MODEL, writable=True, lock_timeout=0.2)
    with Gallery.open(path, MODEL) as reader:  # readers never wait
        assert reader.view().count == 3
        with pytest.raises(GalleryError, match="read-only"):
            reader.append(unit(rng, 1), ["a"])
    writer.close()
    Gallery.open(path, MODEL, writable=True).close()


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("call", ["pwrite", "fsync", "ftruncate"])
def test_disk_full_while_appending(tmp_path, rng, monkeypatch, call, dtype):
    """ENOSPC from each system call an append makes (the file must grow: 600 rows)."""
    path = make(tmp_path, rng, dtype=dtype)
    writer = Gallery.open(path, MODEL, writable=True)
    monkeypatch.setattr(os, call, enospc)
    with pytest.raises(DiskFullError, match="disk full; the 600 rows were not added"):
        writer.append(unit(rng, 600), ["b"] * 600)
    monkeypatch.undo()
    with Gallery.open(path, MODEL) as reader:
        assert reader.view().count == 3 and reader.identities() == {"a": 3}
        assert reader.check() == 3
    writer.append(unit(rng, 1), ["c"])
    assert writer.check() == 4
    writer.close()


def test_disk_full_in_the_database(tmp_path, rng):
    """A real SQLITE_FULL: the database may not grow by another page."""
    path = make(tmp_path, rng)
    writer = Gallery.open(path, MODEL, writable=True)
    pages = writer._db.execute("PRAGMA page_count").fetchone()[0]
    writer._db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(DiskFullError):
        writer.append(unit(rng, 200), ["someone with a long name " * 8] * 200, sources=["x" * 200] * 200)
    writer.close()
    with Gallery.open(path, MODEL) as reader:
        assert reader.view().count == 3 and reader.check() == 3


def test_disk_full_while_creating(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "pwrite", enospc)
    with pytest.raises(DiskFullError, match="no space left"):
        Gallery.create(tmp_path / "g", MODEL)
    assert list(tmp_path.iterdir()) == []


def test_integrity_of_metadata(tmp_path, rng):
    path = make(tmp_path, rng)
    db = sqlite3.connect(path / "gallery.sqlite")
    db.execute("DELETE FROM rows WHERE row = 1")
    db.commit()
    db.close()
    with Gallery.open(path, MODEL) as reader:
        with pytest.raises(CorruptGalleryError, match="metadata has 2 rows"):
            reader.check()


def test_reader_keeps_up_with_many_small_appends(tmp_path, rng, dtype):
    """The matrix and scales files grow in steps of their own; the reader remaps as needed."""
    writer = Gallery.create(tmp_path / "g", MODEL, dtype=dtype)
    reader = Gallery.open(tmp_path / "g", MODEL)
    vectors = unit(rng, 700)
    for start in range(0, 21_000, 700):
        writer.append(vectors, ["p"] * 700)
        view = reader.view()
        assert view.count == start + 700
        np.testing.assert_allclose(dequantised(view)[-700:], vectors, atol=0.004)
    assert reader.check() == 21_000
    writer.close()
    reader.close()
