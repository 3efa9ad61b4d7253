"""`edge liveness`: every face of each photo with its probability of being live, as CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import json

import cv2
import numpy as np
import pytest

from conftest import FACES
from edge.cli import main
from edge.cli.common import EXIT_INPUT, EXIT_OK, EXIT_USAGE


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "a_obama.jpg"), cv2.imread(str(FACES / "obama.jpg")))
    cv2.imwrite(str(folder / "b_nobody.png"), np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return folder


def test_csv_lines_give_each_face_its_box_score_and_verdict(photos, capsys):
    code, out, err = run(capsys, "liveness", photos)
    assert code == EXIT_INPUT and "Traceback" not in err  # a photo without a face, a broken file
    rows = list(csv.reader(io.StringIO(out)))
    assert [row[0] for row in rows] == [str(photos / n) for n in ("a_obama.jpg", "b_nobody.png", "c_broken.jpg")]
    obama, nobody, broken = rows
    assert len(obama) == 7 and obama[6] in ("true", "false")
    x1, y1, x2, y2, score = map(float, obama[1:6])
    assert 0 <= x1 < x2 and 0 <= y1 < y2 and 0.0 <= score <= 1.0 and (obama[6] == "true") == (score >= 0.5)
    assert nobody[1:] == ["no_persons_found"] and broken[1].startswith("error: ")


def test_json_and_the_threshold(photos, capsys):
    code, out, _ = run(capsys, "liveness", photos / "a_obama.jpg", "--json")
    assert code == EXIT_OK
    (face,) = json.loads(out)["faces"]
    assert set(face) == {"box", "score", "live"} and len(face["box"]) == 4
    _, out, _ = run(capsys, "liveness", photos / "a_obama.jpg", "--json", "--threshold", "1.0")
    assert json.loads(out)["faces"][0]["live"] == (face["score"] >= 1.0)
    _, out, _ = run(capsys, "liveness", photos / "c_broken.jpg", "--json")
    assert set(json.loads(out)) == {"path", "error"}
    code, _, err = run(capsys, "liveness", photos / "a_obama.jpg", "--threshold", "1.5")
    assert code == EXIT_USAGE and err.startswith("edge: --threshold 1.5") and len(err.splitlines()) == 1


def test_the_samples_real_faces_live_and_the_poster_and_tablet_not(spoof_samples, capsys):
    # two worker processes: the checker is opened in each
    code, out, _ = run(capsys, "liveness", spoof_samples / "real", spoof_samples / "spoof", "--json", "--workers", "2")
    assert code == EXIT_OK
    verdicts = {}
    for line in out.splitlines():
        result = json.loads(line)
        (face,) = result["faces"]
        verdicts[result["path"]] = face["live"]
    assert verdicts == {path: "/real/" in path for path in verdicts} and len(verdicts) == 4
