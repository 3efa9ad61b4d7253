"""Inputs found by the hostile-input corpus (tests/hostile) that once gave tracebacks or ran away.

Each is one line and exit status 2 (or a per-file error), nothing more.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from edge.cli import main
from edge.config import ConfigError, load_config
from edge.gallery.errors import CorruptGalleryError
from edge.gallery.portable import read_export
from edge.imageio import ImageError, load_image


def test_a_path_with_a_nul_byte_is_a_per_file_error():
    with pytest.raises(ImageError, match="not a usable file name"):
        load_image("photo\0.jpg")


def test_device_and_fifo_files_are_refused_not_read(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in ("/dev/zero", fifo):
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config(path)
        with pytest.raises(ImageError, match="not a regular file"):
            load_image(path)
        with pytest.raises(CorruptGalleryError, match="not a regular file"):
            read_export(path)


def test_a_config_of_dotted_keys_nested_too_deeply_is_refused(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a" + ".a" * 3000 + " = 1\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_a_huge_config_is_refused(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


def export_zip(path, rows, vectors_bytes, compress=zipfile.ZIP_DEFLATED):
    meta = {"format": "edge-gallery-export", "version": 1, "model_id": "m", "dim": 128, "rows": rows}
    with zipfile.ZipFile(path, "w", compress) as archive:
        archive.writestr("gallery.json", json.dumps(meta))
        archive.writestr("embeddings.npy", vectors_bytes)
    return path


def test_embeddings_larger_than_the_metadata_says_are_not_inflated(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((300_000, 128), np.float32))  # 150 MB of zeros, a few hundred KB zipped
    path = export_zip(tmp_path / "bomb.zip", [{"identity": "a", "added": 0.0}], buffer.getvalue())
    with pytest.raises(CorruptGalleryError, match="inflates past|bytes; at most"):
        read_export(path)


def test_a_damaged_deflate_stream_is_one_error(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.eye(1, 128, dtype=np.float32))
    path = export_zip(tmp_path / "g.zip", [{"identity": "a", "added": 0.0}], buffer.getvalue())
    data = bytearray(path.read_bytes())
    start = data.index(b"embeddings.npy") + len("embeddings.npy")  # inside the member's compressed bytes
    for offset in range(start + 4, start + 40):
        data[offset] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptGalleryError):
        read_export(path)


def test_a_rows_file_replaced_by_a_directory_is_a_gallery_error(tmp_path, capsys):
    from edge.gallery.store import Gallery

    Gallery.create(tmp_path / "g", "m").close()
    rows = tmp_path / "g" / "rows-0.bin"
    rows.unlink()
    rows.mkdir()
    assert main(["gallery", "list", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "rows-0.bin" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_run_to_the_end_with_a_camera_that_is_not_there_ends_in_one_line(tmp_path, capsys):
    """With --exit-at-end a missing camera ends the run; without it the door retries (the service's way)."""
    from edge.gallery.store import Gallery
    from edge.perception.modelset import embedding_model_id
    from edge.perception.settings import RecognitionSettings

    Gallery.create(tmp_path / "g", embedding_model_id(RecognitionSettings())).close()
    assert main(["run", "--source", "99", "--gallery", str(tmp_path / "g"), "--exit-at-end"]) == 2
    assert capsys.readouterr().err.strip() == "edge: cannot open video source '99'"


def test_check_repair_removes_what_a_killed_build_left(tmp_path, capsys):
    from edge.gallery.store import Gallery

    Gallery.create(tmp_path / "g", "m").close()
    leftover = tmp_path / ".g.building-999999999-abcd1234"  # no such process
    Gallery.create(leftover, "m").close()
    assert main(["gallery", "check", str(tmp_path / "g"), "--repair", "--json"]) == 0
    captured = capsys.readouterr()
    assert not leftover.exists() and "removed" in captured.err and "left by a killed build" in captured.err
    assert json.loads(captured.out)["ok"] is True
