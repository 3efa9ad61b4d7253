"""Damaged rows never give a name; a reader follows its path; removed names are erased; owner-only files.

Every test here failed before rows were verified when mapped (issue 10).
"""

import json
import os
import shutil
import sqlite3
import stat
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from edge.gallery import store
from edge.gallery.errors import ChecksumMismatchError, CorruptGalleryError, GalleryError
from edge.gallery.fileformat import HEADER_SIZE
from edge.gallery.search import identify, nearest_samples, search
from edge.gallery.settings import SearchSettings
from edge.gallery.store import ExcludedRow, Gallery

MODEL = "sha256:integrity-test"
FACES = Path(__file__).parent / "fixtures" / "faces"
SETTINGS = SearchSettings(match_threshold=0.36)


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


@pytest.fixture(params=["float32", "int8"])
def dtype(request):
    return request.param


def people(path, dtype="float32", seed=3):
    """A gallery of five people, one sample each; returns their vectors by name."""
    rng = np.random.default_rng(seed)
    vectors = unit(rng.standard_normal((5, 128)))
    names = ["ann", "bob", "cy", "dee", "eve"]
    with Gallery.create(path, MODEL, dtype=dtype) as writer:
        writer.append(vectors, names)
    return dict(zip(names, vectors))


def flip(path, offset, bit):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


def row_offset(dtype, row, component=0):
    size = np.dtype(dtype).itemsize
    return HEADER_SIZE + (row * 128 + component) * size


def strangers(n=50, seed=99):
    return unit(np.random.default_rng(seed).standard_normal((n, 128)))


# --- damaged rows ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["exponent", "sign", "low mantissa"])
def test_a_flipped_bit_in_a_float32_row_gives_no_name_and_is_reported(tmp_path, where):
    path = tmp_path / "g"
    vectors = people(path)
    # bob is row 1; the last byte of a little-endian float32 holds the sign and the top of the exponent
    component = int(np.argmax(np.abs(vectors["bob"])))
    byte, bit = {"exponent": (3, 6), "sign": (3, 7), "low mantissa": (0, 0)}[where]
    flip(path / "rows-0.bin", row_offset("float32", 1, component) + byte, bit)
    with Gallery.open(path, MODEL) as reader:
        assert identify(reader, vectors["bob"], SETTINGS) == [None]
        assert all(answer is None for answer in identify(reader, strangers(), SETTINGS))
        assert sorted(m.name for m in search(reader, vectors["ann"], k=5)[0]) == ["ann", "cy", "dee", "eve"]
        assert reader.excluded == (ExcludedRow(1, "bob", "checksum mismatch"),)
        assert reader.view().live_count == 4
        # the others are still recognized
        assert [a.name for a in identify(reader, np.stack([vectors["ann"], vectors["eve"]]), SETTINGS)] == ["ann", "eve"]


@pytest.mark.parametrize("where", ["code", "code sign", "scale exponent", "scale mantissa"])
def test_a_flipped_bit_in_an_int8_row_or_its_scale_gives_no_name_and_is_reported(tmp_path, where):
    path = tmp_path / "g"
    vectors = people(path, "int8")
    component = int(np.argmax(np.abs(vectors["cy"])))  # cy is row 2
    if where.startswith("code"):
        flip(path / "rows-0.bin", row_offset("int8", 2, component), 7 if where == "code sign" else 1)
    else:
        flip(path / "scales-0.bin", HEADER_SIZE + 2 * 4 + (3 if where == "scale exponent" else 0), 6 if where == "scale exponent" else 0)
    with Gallery.open(path, MODEL) as reader:
        assert identify(reader, vectors["cy"], SETTINGS) == [None]
        assert all(answer is None for answer in identify(reader, strangers(), SETTINGS))
        assert [(e.row, e.identity) for e in reader.excluded] == [(2, "cy")]
        assert identify(reader, vectors["dee"], SETTINGS)[0].name == "dee"


def rewrite_row(path, dtype, row, values, scale=None):
    """Store ``values`` as row ``row`` with a checksum that matches: damage no checksum can see."""
    data = np.ascontiguousarray(values, dtype=np.dtype(dtype)).tobytes()
    with open(path / "rows-0.bin", "r+b") as f:
        f.seek(row_offset(dtype, row))
        f.write(data)
    crc = zlib.crc32(data)
    if scale is not None:
        with open(path / "scales-0.bin", "r+b") as f:
            f.seek(HEADER_SIZE + 4 * row)
            f.write(struct.pack("<f", scale))
        crc = zlib.crc32(struct.pack("<f", scale), crc)
    db = sqlite3.connect(path / "gallery.sqlite")
    db.execute("UPDATE rows SET checksum = ? WHERE row = ?", (crc, row))
    db.commit()
    db.close()


def test_a_row_of_length_37_is_excluded(tmp_path, dtype):
    path = tmp_path / "g"
    vectors = people(path, dtype)
    if dtype == "float32":
        rewrite_row(path, dtype, 3, vectors["dee"] * 37)
    else:  # sound codes, a scale 37 times too large
        codes = np.round(vectors["dee"] / np.abs(vectors["dee"]).max() * 127)
        rewrite_row(path, dtype, 3, codes, scale=37 * float(np.abs(vectors["dee"]).max() / 127))
    with Gallery.open(path, MODEL) as reader:
        assert identify(reader, vectors["dee"], SETTINGS) == [None]
        assert all(answer is None for answer in identify(reader, strangers(), SETTINGS))
        [excluded] = reader.excluded
        assert excluded.row == 3 and excluded.identity == "dee" and "length 37" in excluded.reason
        with pytest.raises(CorruptGalleryError, match=r"1 rows damaged: 3 \(length 37"):
            reader.check()


def test_a_row_damaged_after_it_was_verified_is_caught_by_its_impossible_similarity(tmp_path, caplog):
    """The reader verified the rows when it opened; then a bit flips in the mapped file."""
    path = tmp_path / "g"
    vectors = people(path)
    with Gallery.open(path, MODEL) as reader:
        assert reader.view().live_count == 5 and reader.excluded == ()
        stranger = strangers(1)[0]
        # the component where the stranger and eve agree in sign: eve's row becomes ~1e37 there
        component = int(np.argmax(stranger * vectors["eve"]))
        flip(path / "rows-0.bin", row_offset("float32", 4, component) + 3, 6)
        assert identify(reader, stranger, SETTINGS) == [None]
        assert [(e.row, e.identity) for e in reader.excluded] == [(4, "eve")]
        assert "similarity" in reader.excluded[0].reason
        assert "eve" not in [m.name for m in search(reader, stranger, k=5)[0]]
        assert 4 not in [s.row for s in nearest_samples(reader, stranger, 5)]
    assert "damaged rows left out of every search" in caplog.text


def test_appended_rows_are_verified_once(tmp_path, monkeypatch):
    verified = []
    real = store.row_faults
    monkeypatch.setattr(store, "row_faults", lambda rows, *a: verified.append(len(rows)) or real(rows, *a))
    path = tmp_path / "g"
    rng = np.random.default_rng(1)
    writer = Gallery.create(path, MODEL)
    writer.append(unit(rng.standard_normal((10, 128))), ["a"] * 10)
    reader = Gallery.open(path, MODEL)
    verified.clear()
    writer.append(unit(rng.standard_normal((3, 128))), ["b"] * 3)
    assert reader.view().count == 13
    reader.view()
    assert verified == [3, 3]  # the new rows only, once by the writer and once by the reader
    # a damaged appended row is caught by the reader that maps it
    writer.append(unit(rng.standard_normal((2, 128))), ["c", "d"])
    flip(path / "rows-0.bin", row_offset("float32", 14, 5), 2)
    reader.view()
    assert [(e.row, e.identity) for e in reader.excluded] == [(14, "d")]
    writer.close()
    reader.close()


def test_check_lists_the_damaged_rows(tmp_path):
    path = tmp_path / "g"
    people(path)
    flip(path / "rows-0.bin", row_offset("float32", 0, 9), 3)
    with Gallery.open(path, MODEL) as reader:
        with pytest.raises(ChecksumMismatchError, match="1 rows fail their checksum: 0"):
            reader.check()
        assert reader.excluded == (ExcludedRow(0, "ann", "checksum mismatch"),)


# --- the reader follows its path -----------------------------------------------------------


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_reader_sees_a_gallery_rebuilt_at_its_path_within_seconds(tmp_path):
    path = tmp_path / "g"
    old = people(path, seed=1)
    reader = Gallery.open(path, MODEL)
    assert identify(reader, old["ann"], SETTINGS)[0].name == "ann"
    shutil.rmtree(path)  # delete + build at the same path
    new = unit(np.random.default_rng(2).standard_normal((2, 128)))
    with Gallery.create(path, MODEL, dtype="int8") as writer:
        writer.append(new, ["zed", "yan"])
    started = time.monotonic()
    assert wait_for(lambda: (identify(reader, new[0], SETTINGS)[0] or None) is not None)
    assert time.monotonic() - started < 3
    assert identify(reader, new[0], SETTINGS)[0].name == "zed"
    assert identify(reader, old["ann"], SETTINGS) == [None]  # the deleted people are gone
    assert reader.identities() == {"yan": 1, "zed": 1} and reader.problem is None
    assert reader.dtype == "int8"
    reader.close()


def test_a_deleted_gallery_matches_nobody_and_says_why(tmp_path, caplog):
    path = tmp_path / "g"
    vectors = people(path)
    reader = Gallery.open(path, MODEL)
    shutil.rmtree(path)
    assert wait_for(lambda: reader.view().count == 0)
    assert identify(reader, vectors["ann"], SETTINGS) == [None]
    assert search(reader, vectors["ann"], k=3) == [[]]
    assert "deleted" in reader.problem
    with pytest.raises(GalleryError, match="deleted"):
        reader.identities()
    assert "deleted" in caplog.text
    # ... and it comes back when a gallery is there again
    people(path, seed=8)
    assert wait_for(lambda: reader.view().count == 5)
    assert reader.problem is None
    reader.close()


def test_a_path_replaced_by_something_unusable_matches_nobody(tmp_path):
    path = tmp_path / "g"
    vectors = people(path)
    reader = Gallery.open(path, MODEL)
    shutil.rmtree(path)
    with Gallery.create(path, "sha256:another-model"):
        pass
    assert wait_for(lambda: reader.view().count == 0 and reader.problem is not None)
    assert "another-model" in reader.problem
    assert identify(reader, vectors["ann"], SETTINGS) == [None]
    reader.close()


def test_a_writer_does_not_follow(tmp_path):
    path = tmp_path / "g"
    people(path)
    writer = Gallery.open(path, MODEL, writable=True)
    os.rename(path, tmp_path / "moved")
    time.sleep(store.FOLLOW_INTERVAL + 0.1)
    assert writer.view().count == 5 and writer.problem is None
    writer.close()


# --- erasing and file modes ----------------------------------------------------------------


def test_a_removed_name_leaves_no_bytes_in_the_database_or_its_log(tmp_path):
    path = tmp_path / "g"
    rng = np.random.default_rng(4)
    secret = "Zebulon Q. Secretname"
    writer = Gallery.create(path, MODEL)
    for _ in range(20):
        writer.append(unit(rng.standard_normal((1, 128))), [secret], sources=[f"/photos/{secret}.jpg"])
        writer.append(unit(rng.standard_normal((5, 128))), ["other"] * 5)
    reader = Gallery.open(path, MODEL)  # a door holding the database open keeps its log alive
    assert reader.identities()[secret] == 20
    assert writer._db.execute("PRAGMA secure_delete").fetchone() == (1,)
    writer.delete_identity(secret)
    writer.compact()
    assert reader.identities() == {"other": 100}
    for name in ("gallery.sqlite", "gallery.sqlite-wal"):
        data = (path / name).read_bytes() if (path / name).exists() else b""
        assert secret.encode() not in data, name
    writer.close()
    reader.close()


def test_secure_delete_whatever_the_system_default(tmp_path):
    """Every connection sets it, not SQLite's compile-time default."""
    from edge.gallery import metadata

    people(tmp_path / "g")
    db = metadata.connect(tmp_path / "g")
    assert db.execute("PRAGMA secure_delete").fetchone() == (1,)
    db.close()


def modes(path):
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [path, *path.iterdir()]}


def test_gallery_files_are_the_owners_only(tmp_path):
    path = tmp_path / "g"
    old_umask = os.umask(0o022)
    try:
        writer = Gallery.create(path, MODEL)
        writer.append(unit(np.ones((1, 128))), ["a"])
        reader = Gallery.open(path, MODEL)
        reader.view()
        found = modes(path)
        assert {"gallery.sqlite", "gallery.sqlite-wal", "gallery.sqlite-shm", "rows-0.bin", "writer.lock"} <= set(found)
        assert found == {name: 0o700 if name == "g" else 0o600 for name in found}
        reader.close()
        writer.close()
        # an older gallery's modes are tightened by its next writer
        for p in [path, *path.iterdir()]:
            p.chmod(0o755 if p == path else 0o644)
        Gallery.open(path, MODEL, writable=True).close()
        assert set(modes(path).values()) == {0o700, 0o600} and modes(path)["g"] == 0o700
    finally:
        os.umask(old_umask)


# --- damaged files through the command line: one line, no traceback -------------------------------


def damage_database_past_its_first_page(path):
    db = path / "gallery.sqlite"
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > 3 * page
    data[page:] = bytes((i * 7) & 0xFF for i in range(len(data) - page))
    db.write_bytes(bytes(data))


@pytest.fixture
def big_gallery(tmp_path):
    """A gallery made with the real model id, large enough for several database pages."""
    from edge.perception.modelset import embedding_model_id
    from edge.perception.settings import RecognitionSettings

    path = tmp_path / "g"
    rng = np.random.default_rng(6)
    with Gallery.create(path, embedding_model_id(RecognitionSettings())) as writer:
        writer.append(unit(rng.standard_normal((300, 128))), [f"person number {i}" for i in range(300)],
                      sources=[f"/photos/person number {i}.jpg" for i in range(300)])
    return path


@pytest.mark.parametrize("command", [["gallery", "list", "{g}"], ["gallery", "check", "{g}"],
                                     ["identify", "{photo}", "--gallery", "{g}"]])
def test_a_database_damaged_past_its_first_page_is_one_line(big_gallery, command, capsys):
    from edge.cli import main

    damage_database_past_its_first_page(big_gallery)
    argv = [a.format(g=big_gallery, photo=FACES / "obama.jpg") for a in command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge: ") and "gallery.sqlite" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_check_json_prints_json_when_the_gallery_cannot_open(big_gallery, tmp_path, capsys):
    from edge.cli import main

    damage_database_past_its_first_page(big_gallery)
    assert main(["gallery", "check", str(big_gallery), "--json"]) == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["ok"] is False and "gallery.sqlite" in answer["error"]
    assert main(["gallery", "check", str(tmp_path / "nothing"), "--json"]) == 2
    assert "not a gallery" in json.loads(capsys.readouterr().out)["error"]


def test_check_json_lists_the_damaged_rows(big_gallery, capsys):
    from edge.cli import main

    flip(big_gallery / "rows-0.bin", row_offset("float32", 7, 0) + 3, 6)
    assert main(["gallery", "check", str(big_gallery), "--json"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["ok"] is False and answer["excluded"] == [
        {"row": 7, "identity": "person number 7", "reason": "checksum mismatch"}]
    assert main(["gallery", "check", str(big_gallery)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "row 7 (person number 7): checksum mismatch" in out


def test_adding_to_a_gallery_without_its_rows_file_is_one_line(big_gallery, tmp_path, capsys):
    from edge.cli import main

    (big_gallery / "rows-0.bin").unlink()
    person = tmp_path / "obama"
    person.mkdir()
    shutil.copy(FACES / "obama.jpg", person / "obama.jpg")
    assert main(["gallery", "add", str(person), "--gallery", str(big_gallery)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge: ") and "rows-0.bin" in err and "Traceback" not in err
