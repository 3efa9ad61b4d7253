"""Hostile and odd inputs (issue 10): decompression bombs, non-UTF-8 file names, CSV
quoting, malformed export files, leftovers of killed builds, BOMs, short rows.

Every bomb is a header made here from a tiny real image (never a large file in
the repository); the claimed sizes are kept moderate (<= 100 megapixels) so that
even code without the limits would not take the machine's memory.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import sqlite3
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FACES
from edge.cli import main
from edge.cli.common import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from edge.config import ConfigError, load_config
from edge.enrollment import dataset as dataset_module
from edge.enrollment.dataset import build_gallery
from edge.gallery import portable
from edge.gallery.store import Gallery
from edge.imageio import ImageError, decode_image, image_size, load_image
from edge.perception.modelset import embedding_model_id
from edge.perception.settings import RecognitionSettings

# --- making hostile files ----------------------------------------------------


def bomb_jpeg(width: int, height: int) -> bytes:
    """A valid little JPEG whose frame header claims width x height pixels."""
    ok, data = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    data = bytearray(data.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bomb_png(width: int, height: int) -> bytes:
    """A little PNG whose IHDR (checksum fixed) claims width x height pixels."""
    ok, data = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(data.tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def wide_png(width: int = 65000, height: int = 4) -> bytes:
    """A real, small PNG wider than OpenCV's geometry functions take."""
    ok, data = cv2.imencode(".png", np.zeros((height, width, 3), np.uint8))
    return data.tobytes()


def run(capsys, *argv):
    code = main([os.fsdecode(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> bool:
    """One line of error (after any progress lines), no traceback."""
    lines = err.strip().splitlines()
    return "Traceback" not in err and lines[-1].startswith("edge: ") and all(
        not line.startswith("edge: ") for line in lines[:-1])


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A gallery of one person whose name holds a comma and a quote, from a folder of that name."""
    work = tmp_path_factory.mktemp("hostile")
    person = work / "people" / 'Doe, "Jo"'
    person.mkdir(parents=True)
    for name in ("obama.jpg", "obama2.jpg"):
        shutil.copy(FACES / name, person / name)
    build_gallery(work / "people", work / "gallery", RecognitionSettings(), workers=1)
    return work / "gallery"


# --- image limits --------------------------------------------------------------


@pytest.mark.parametrize("make", [bomb_jpeg, bomb_png], ids=["jpeg", "png"])
def test_a_bomb_is_refused_from_its_header(make):
    with pytest.raises(ImageError, match=r"9000 x 9000 pixels is over the limit of 40000000"):
        decode_image(make(9000, 9000), "bomb")


def test_the_limit_is_a_parameter(tmp_path):
    (tmp_path / "a.png").write_bytes(wide_png(3000, 2000))
    assert load_image(tmp_path / "a.png").shape == (2000, 3000, 3)
    with pytest.raises(ImageError, match="over the limit of 5000000"):
        load_image(tmp_path / "a.png", max_pixels=5_000_000)


def test_a_very_wide_image_is_refused_by_its_side(tmp_path):
    (tmp_path / "wide.png").write_bytes(wide_png())
    with pytest.raises(ImageError, match=r"65000 x 4 pixels; a side over"):
        load_image(tmp_path / "wide.png")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tiff", ".ppm", ".pgm"])
@pytest.mark.parametrize("lossless", [True, False])
def test_header_sizes_of_every_format_opencv_writes(ext, lossless):
    array = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_WEBP_QUALITY, 101 if lossless else 80] if ext == ".webp" else []
    ok, data = cv2.imencode(ext, array[:, :, 0] if ext == ".pgm" else array, params)
    assert image_size(data.tobytes()) == (53, 37)


def test_header_sizes_of_gif_bmp_core_vp8x_and_pnm_comments():
    assert image_size(b"GIF89a" + struct.pack("<HH", 300, 200) + b"\x00" * 20) == (300, 200)
    core = b"BM" + b"\x00" * 12 + struct.pack("<IHH", 12, 640, 480) + b"\x00" * 8
    assert image_size(core) == (640, 480)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (99999).to_bytes(3, "little") + (4).to_bytes(3, "little")
    assert image_size(vp8x) == (100000, 5)
    assert image_size(b"P6\n# made by hand\n 40 30\n255\n" + b"\x00" * 3600) == (40, 30)


def test_unknown_formats_and_broken_headers_are_refused():
    with pytest.raises(ImageError, match="unknown format"):
        decode_image(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 100, "j2k")  # JPEG 2000: not parsed here
    with pytest.raises(ImageError, match="corrupt header"):
        decode_image(b"\x89PNG\r\n\x1a\n\x00\x00IEND\xaeB`\x82", "short.png")  # no IHDR
    with pytest.raises(ImageError):
        decode_image(b"\xff\xd8\xff\xda\x00\x02\xff\xd9", "no-frame.jpg")


# --- identify: a bad file never stops the run -------------------------------------


def test_identify_goes_on_after_bombs_and_a_wide_image(gallery, tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(bomb_jpeg(9000, 9000))
    (tmp_path / "b.png").write_bytes(bomb_png(9000, 9000))
    (tmp_path / "c.png").write_bytes(wide_png())
    shutil.copy(FACES / "obama3.jpg", tmp_path / "d.jpg")
    code, out, err = run(capsys, "identify", tmp_path, "--gallery", gallery)
    rows = list(csv.reader(io.StringIO(out)))
    assert code == EXIT_INPUT and "Traceback" not in err
    assert [Path(r[0]).name for r in rows] == ["a.jpg", "b.png", "c.png", "d.jpg"]
    assert all(r[1].startswith("error: ") for r in rows[:3])
    assert rows[3][1] == 'Doe, "Jo"'


def test_identify_writes_real_csv(gallery, tmp_path, capsys):
    odd = tmp_path / 'x, "y"\nz.jpg'
    shutil.copy(FACES / "obama3.jpg", odd)
    code, out, _ = run(capsys, "identify", odd, "--gallery", gallery)
    assert code == EXIT_OK
    assert list(csv.reader(io.StringIO(out))) == [[str(odd), 'Doe, "Jo"']]


def test_identify_exits_1_for_a_photo_without_a_face(gallery, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 300, 3), 90, np.uint8))
    shutil.copy(FACES / "obama3.jpg", tmp_path / "obama.jpg")
    code, out, _ = run(capsys, "identify", tmp_path / "blank.png", tmp_path / "obama.jpg", "--gallery", gallery)
    assert code == EXIT_INPUT
    assert out.splitlines() == [f"{tmp_path / 'blank.png'},no_persons_found", f'{tmp_path / "obama.jpg"},"Doe, ""Jo"""']


def test_identify_shows_a_non_utf8_file_name_escaped(gallery, tmp_path, capsys):
    folder = os.fsencode(tmp_path)
    with open(folder + b"/caf\xe9.jpg", "wb") as f:
        f.write((FACES / "obama3.jpg").read_bytes())
    code, out, _ = run(capsys, "identify", tmp_path, "--gallery", gallery)
    assert code == EXIT_OK and out == f'{tmp_path}/caf\\xe9.jpg,"Doe, ""Jo"""\n'


# --- non-UTF-8 file names in build and add -------------------------------------------


def non_utf8_dataset(root: Path) -> Path:
    raw = os.fsencode(root)
    os.makedirs(raw + b"/obama")
    os.makedirs(raw + b"/bi\xffden")
    shutil.copy(FACES / "obama.jpg", root / "obama" / "1.jpg")
    shutil.copy(FACES / "obama2.jpg", raw + b"/obama/2\xfe.jpg")
    shutil.copy(FACES / "biden.jpg", raw + b"/bi\xffden/1.jpg")
    return root


def test_build_skips_non_utf8_names_and_keeps_the_rest(tmp_path, capsys):
    dataset = non_utf8_dataset(tmp_path / "people")
    code, out, err = run(capsys, "gallery", "build", dataset, "--gallery", tmp_path / "G", "--workers", "1")
    assert code == EXIT_INPUT and "Traceback" not in err
    assert "enrolled obama: 1 sample" in out
    assert f"skipped {tmp_path}/people/obama/2\\xfe.jpg: " in out and "not valid UTF-8" in out
    assert f"skipped {tmp_path}/people/bi\\xffden/1.jpg: " in out
    assert (tmp_path / "G").is_dir()


def test_add_skips_non_utf8_names_and_adds_the_good_photos(tmp_path, capsys):
    dataset = non_utf8_dataset(tmp_path / "people")
    Gallery.create(tmp_path / "G", embedding_model_id(RecognitionSettings())).close()
    code, out, err = run(capsys, "gallery", "add", dataset / "obama", "--gallery", tmp_path / "G", "--workers", "1",
                         "--json")
    assert code == EXIT_INPUT and "Traceback" not in err
    summary = json.loads(out)
    assert summary["enrolled"] == {"obama": 1}
    assert summary["skipped"][0]["path"] == f"{tmp_path}/people/obama/2\\xfe.jpg"
    code, out, err = run(capsys, "gallery", "add", os.fsencode(dataset) + b"/bi\xffden", "--gallery", tmp_path / "G",
                         "--workers", "1")
    assert code == EXIT_INPUT and "Traceback" not in err and "not valid UTF-8" in out


# --- builds: leftovers, a path taken meanwhile, a full disk ------------------------------


def small_dataset(root: Path) -> Path:
    (root / "obama").mkdir(parents=True)
    shutil.copy(FACES / "obama.jpg", root / "obama" / "1.jpg")
    return root


def test_a_build_removes_what_killed_builds_of_its_path_left(tmp_path):
    dataset = small_dataset(tmp_path / "people")
    dead = tmp_path / ".G.building-99999999-abcd1234"  # no such process
    old = tmp_path / ".G.building-abcd1234"  # named before the process id was
    creating = tmp_path / "..G.building-99999999-abcd1234.creating-12345678"  # killed inside Gallery.create
    other = tmp_path / ".H.building-99999999-abcd1234"  # another gallery's
    for folder in (dead, old, creating, other):
        folder.mkdir()
        (folder / "metadata.sqlite").write_text("names, embeddings, photo paths")
    build_gallery(dataset, tmp_path / "G", RecognitionSettings(), workers=1)
    assert not dead.exists() and not old.exists() and not creating.exists()
    assert other.exists() and (tmp_path / "G").is_dir()


def test_a_second_build_of_a_path_being_built_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    dataset = small_dataset(tmp_path / "people")
    running = tmp_path / f".G.building-{os.getpid()}-abcd1234"  # a build still running (this process)
    running.mkdir()
    monkeypatch.setattr(dataset_module, "scan_dataset", lambda *a: pytest.fail("scanned"))
    code, _, err = run(capsys, "gallery", "build", dataset, "--gallery", tmp_path / "G")
    assert code == EXIT_USAGE and one_line_error(err)
    assert f"is being built by process {os.getpid()}" in err and running.exists()


def test_a_path_taken_while_building_fails_cleanly_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    dataset = small_dataset(tmp_path / "people")
    target = tmp_path / "G"
    enroll = dataset_module._enroll

    def enroll_then_someone_builds(*args, **kwargs):
        enroll(*args, **kwargs)
        target.mkdir()
        (target / "rows").write_text("another build's gallery")

    monkeypatch.setattr(dataset_module, "_enroll", enroll_then_someone_builds)
    code, out, err = run(capsys, "gallery", "build", dataset, "--gallery", target, "--workers", "1")
    assert code == EXIT_USAGE and one_line_error(err) and "appeared while building" in err
    assert (target / "rows").read_text() == "another build's gallery"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_existing_path_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    dataset = small_dataset(tmp_path / "people")
    (tmp_path / "G").mkdir()
    monkeypatch.setattr(dataset_module, "scan_dataset", lambda *a: pytest.fail("scanned"))
    code, _, err = run(capsys, "gallery", "build", dataset, "--gallery", tmp_path / "G")
    assert code == EXIT_USAGE and one_line_error(err) and "already exists" in err


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device"),
    sqlite3.OperationalError("database or disk is full"),
], ids=["enospc", "sqlite-full"])
def test_a_full_disk_during_build_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, failure):
    dataset = small_dataset(tmp_path / "people")

    def full(*args, **kwargs):
        raise failure

    monkeypatch.setattr(Gallery, "append", full)
    code, _, err = run(capsys, "gallery", "build", dataset, "--gallery", tmp_path / "G", "--workers", "1")
    assert code == EXIT_USAGE and one_line_error(err) and "nothing was built" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people"]


@pytest.mark.parametrize("step", ["delete_identity", "compact"])
def test_a_full_disk_during_remove_compact_is_one_line(tmp_path, monkeypatch, capsys, step):
    build_gallery(small_dataset(tmp_path / "people"), tmp_path / "G", RecognitionSettings(), workers=1)

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Gallery, step, full)
    code, _, err = run(capsys, "gallery", "remove", "obama", "--compact", "--gallery", tmp_path / "G")
    assert code == EXIT_USAGE and one_line_error(err) and "disk is full" in err


# --- gallery import of malformed files -------------------------------------------------


def export_file(path: Path, meta: dict | None = None, vectors: np.ndarray | None = None, **members: bytes) -> Path:
    model = embedding_model_id(RecognitionSettings())
    vectors = np.eye(2, 128, dtype=np.float32) if vectors is None else vectors
    meta = meta if meta is not None else {
        "format": "edge-gallery-export", "version": 1, "model_id": model, "dim": 128,
        "rows": [{"identity": f"p{i}", "source": None, "added": 1.0, "quality": 0.99} for i in range(len(vectors))],
    }
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    contents = {"gallery.json": json.dumps(meta).encode(), "embeddings.npy": buffer.getvalue(), **members}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            if data is not None:
                archive.writestr(name, data)
    return path


def good_meta(**changes) -> dict:
    meta = {"format": "edge-gallery-export", "version": 1, "model_id": embedding_model_id(RecognitionSettings()),
            "dim": 128, "rows": [{"identity": f"p{i}", "source": None, "added": 1.0, "quality": 0.9} for i in range(2)]}
    return {**meta, **changes}


def renamed_rows(name: str) -> dict:
    return good_meta(rows=[{"identity": name, "source": None, "added": 1.0, "quality": 0.9}] * 2)


def nan_vectors() -> np.ndarray:
    vectors = np.eye(2, 128, dtype=np.float32)
    vectors[1, 5] = np.nan
    return vectors


MALFORMED = {
    "not-a-zip": lambda p: (p.write_bytes(b"PK\x03\x04 but no zip"), p)[1],
    "zip-not-ours": lambda p: export_file(p, meta={"hello": "world"}),
    "json-is-a-list": lambda p: export_file(p, meta=[1, 2]),
    "no-embeddings": lambda p: export_file(p, **{"embeddings.npy": None}),
    "no-metadata": lambda p: export_file(p, **{"gallery.json": None}),
    "bad-json": lambda p: export_file(p, **{"gallery.json": b"{not json"}),
    "pickle": lambda p: export_file(p, **{"embeddings.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }" + b" " * 50 + b"\n"}),
    "wrong-shape": lambda p: export_file(p, vectors=np.eye(3, 128, dtype=np.float32)[:2, :64].copy()),
    "wrong-dtype": lambda p: export_file(p, vectors=np.eye(2, 128, dtype=np.float64)),
    "nan": lambda p: export_file(p, vectors=nan_vectors()),
    "not-unit": lambda p: export_file(p, vectors=2 * np.eye(2, 128, dtype=np.float32)),
    "rows-not-a-list": lambda p: export_file(p, meta=good_meta(rows={"identity": "x"})),
    "row-without-identity": lambda p: export_file(p, meta=good_meta(rows=[{"source": None}, {"source": None}])),
    "bad-dim": lambda p: export_file(p, meta=good_meta(dim="128")),
    "newline-in-name": lambda p: export_file(p, meta=renamed_rows("eve\nadmin")),
    "dotdot-name": lambda p: export_file(p, meta=renamed_rows("../etc")),
    "bad-added": lambda p: export_file(p, meta=good_meta(rows=[{"identity": "a", "added": "yesterday"}] * 2)),
}


@pytest.mark.parametrize("make", MALFORMED.values(), ids=MALFORMED.keys())
def test_import_of_a_malformed_file_is_one_line_and_creates_nothing(tmp_path, capsys, make):
    source = make(tmp_path / "people.zip")
    code, out, err = run(capsys, "gallery", "import", source, "--gallery", tmp_path / "G")
    assert code == EXIT_USAGE and one_line_error(err), err
    assert not (tmp_path / "G").exists()


def test_import_refuses_a_member_that_inflates_too_far(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(portable, "MAX_JSON_BYTES", 10_000)
    source = export_file(tmp_path / "bomb.zip", **{"gallery.json": b" " * 1_000_000})  # 1 MB of spaces, ~1 KB zipped
    code, _, err = run(capsys, "gallery", "import", source, "--gallery", tmp_path / "G")
    assert code == EXIT_USAGE and one_line_error(err) and "gallery.json is 1000000 bytes" in err


def test_import_of_a_good_file_still_works(tmp_path, capsys):
    code, out, err = run(capsys, "gallery", "import", export_file(tmp_path / "ok.zip"), "--gallery", tmp_path / "G")
    assert code == EXIT_OK and "imported 2 samples" in out


# --- pairs files and configs -------------------------------------------------------------


def test_a_short_row_in_a_pairs_file_is_one_line_naming_the_line(tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("path_a,path_b,same\nobama.jpg,obama2.jpg,1\nobama.jpg\n")
    code, _, err = run(capsys, "verify", "--pairs", pairs, "--root", FACES)
    assert code == EXIT_USAGE and one_line_error(err) and f"{pairs}:3: no path_b" in err


def test_a_pairs_file_with_a_bom_is_read(tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes("path_a,path_b,same\nobama.jpg,obama2.jpg,1\n".encode("utf-8-sig"))
    code, out, err = run(capsys, "verify", "--pairs", pairs, "--root", FACES, "--workers", "1")
    assert code == EXIT_OK and "same person" in out


def test_a_config_with_a_bom_is_read(tmp_path):
    config = tmp_path / "edge.toml"
    config.write_bytes("[search]\nmatch_threshold = 0.5\n\n[recognition]\nmax_image_pixels = 12000000\n"
                       .encode("utf-8-sig"))
    loaded = load_config(config)
    assert loaded.search.match_threshold == 0.5 and loaded.recognition.max_image_pixels == 12_000_000


def test_the_pixel_limit_setting_has_bounds(tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("[recognition]\nmax_image_pixels = 10\n")
    with pytest.raises(ConfigError, match="max_image_pixels"):
        load_config(config)


def test_the_pixel_limit_setting_reaches_the_photo_commands(tmp_path, capsys):
    config = tmp_path / "edge.toml"
    config.write_text("[recognition]\nmax_image_pixels = 1000000\n")
    shutil.copy(FACES / "obama.jpg", tmp_path / "a.jpg")
    (tmp_path / "b.png").write_bytes(wide_png(2000, 1000))
    code, out, _ = run(capsys, "verify", tmp_path / "a.jpg", tmp_path / "b.png", "--config", config, "--json")
    assert code == EXIT_INPUT and "over the limit of 1000000" in json.loads(out)["error"]
