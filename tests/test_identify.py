"""`edge identify` on real photos against a gallery of one enrolled person."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FACES, side_by_side
from edge.cli import main
from edge.cli.common import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from edge.perception.settings import RecognitionSettings
from edge import demo
from edge.enrollment.dataset import build_gallery


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    work = tmp_path_factory.mktemp("identify")
    build_gallery(demo.write_dataset(work / "people"), work / "gallery", RecognitionSettings(), workers=1)  # obama only
    return work / "gallery"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    obama3, biden = cv2.imread(str(FACES / "obama3.jpg")), cv2.imread(str(FACES / "biden.jpg"))
    cv2.imwrite(str(folder / "a_obama.jpg"), obama3)
    cv2.imwrite(str(folder / "b_biden.jpg"), biden)
    cv2.imwrite(str(folder / "c_both.jpg"), side_by_side(obama3, biden))
    cv2.imwrite(str(folder / "d_nobody.png"), np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    (folder / "e_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_classic_lines_name_each_face(gallery, photos, capsys):
    code, out, _ = run(capsys, "identify", photos, "--gallery", gallery)
    assert code == EXIT_INPUT  # the broken file
    lines = out.splitlines()
    assert f"{photos / 'a_obama.jpg'},obama" in lines
    assert f"{photos / 'b_biden.jpg'},unknown_person" in lines
    both = sorted(line.split(",")[1] for line in lines if "c_both" in line)
    assert both == ["obama", "unknown_person"]
    assert f"{photos / 'd_nobody.png'},no_persons_found" in lines
    assert any(line.startswith(f"{photos / 'e_broken.jpg'},error:") for line in lines)


def test_json_gives_boxes_scores_and_the_nearest_person_regardless_of_threshold(gallery, photos, capsys):
    code, out, _ = run(capsys, "identify", photos / "b_biden.jpg", photos / "e_broken.jpg", "--gallery", gallery, "--json")
    assert code == EXIT_INPUT
    biden, broken = (json.loads(line) for line in out.splitlines())
    [face] = biden["faces"]
    assert face["name"] is None and face["nearest"] == "obama" and face["similarity"] < 0.36
    assert len(face["box"]) == 4 and 0.9 <= face["score"] <= 1.0
    assert "error" in broken and broken["path"].endswith("e_broken.jpg")


def test_threshold_and_vote(gallery, photos, capsys):
    code, out, _ = run(capsys, "identify", photos / "b_biden.jpg", "--gallery", gallery, "--threshold", "0")
    assert code == EXIT_OK and out.strip().endswith(",obama")  # biden is 0.11 like obama: a match at 0
    code, out, _ = run(capsys, "identify", photos / "a_obama.jpg", "--gallery", gallery, "--k", "2", "--json")
    assert code == EXIT_OK and json.loads(out)["faces"][0]["name"] == "obama"
    code, _, err = run(capsys, "identify", photos, "--gallery", gallery, "--k", "0")
    assert code == EXIT_USAGE and "--k" in err
    code, _, err = run(capsys, "identify", photos, "--gallery", photos)
    assert code == EXIT_USAGE and "not a gallery" in err


def test_find_lists_the_enrolled_photos_of_the_person_best_first(gallery, photos, tmp_path, capsys):
    code, out, _ = run(capsys, "find", photos / "a_obama.jpg", "--gallery", gallery, "--distances")
    assert code == EXIT_OK
    lines = [line.rsplit(",", 2) for line in out.splitlines()]
    assert [name for _, name, _ in lines] == ["obama", "obama"]
    assert {Path(source).name for source, _, _ in lines} == {"obama.jpg", "obama2.jpg"}
    similarities = [float(s) for _, _, s in lines]
    assert similarities == sorted(similarities, reverse=True) and similarities[-1] >= 0.36

    code, out, err = run(capsys, "find", photos / "b_biden.jpg", "--gallery", gallery)
    assert code == EXIT_OK and out == "" and "nobody in the gallery" in err
    code, out, _ = run(capsys, "find", photos / "b_biden.jpg", "--gallery", gallery, "--nearest", "--max", "1", "--json")
    result = json.loads(out)
    assert [(m["name"], m["match"]) for m in result["matches"]] == [("obama", False)]

    code, out, _ = run(capsys, "find", photos / "a_obama.jpg", "--gallery", gallery, "--copy-to", tmp_path / "out", "--json")
    copied = json.loads(out)["copied"]
    assert len(copied) == 2 and all(Path(p).is_file() for p in copied)

    code, _, err = run(capsys, "find", photos / "d_nobody.png", "--gallery", gallery)
    assert code == EXIT_INPUT and "no face" in err


def test_a_tight_face_crop_is_found_inside_a_border(gallery, tmp_path, engine, photo, capsys):
    from edge.perception.photos import find_faces

    image = photo("obama.jpg")
    [face] = engine.detect(image)
    b, margin = face.box, 0.2  # the crop cuts into the face on every side
    crop = image[round(b.y1 + margin * b.height):round(b.y2 - margin * b.height),
                 round(b.x1 + margin * b.width):round(b.x2 - margin * b.width)]
    assert engine.detect(crop) == []
    [found] = find_faces(engine, crop)
    x, y = found.landmarks[2]  # the nose, in the crop's own pixels
    assert 0 < x < crop.shape[1] and 0 < y < crop.shape[0]
    cv2.imwrite(str(tmp_path / "crop.png"), crop)
    code, out, _ = run(capsys, "identify", tmp_path / "crop.png", "--gallery", gallery)
    assert code == EXIT_OK and out.strip() == f"{tmp_path / 'crop.png'},obama"


def test_identify_with_liveness_adds_the_probability_of_live_to_each_face(gallery, photos, capsys):
    code, out, _ = run(capsys, "identify", photos / "c_both.jpg", "--gallery", gallery, "--json", "--liveness")
    assert code == EXIT_OK
    faces = json.loads(out)["faces"]
    assert len(faces) == 2 and all(0.0 <= f["liveness"] <= 1.0 and f["live"] == (f["liveness"] >= 0.5) for f in faces)
    assert all(0.9 <= f["score"] <= 1.0 for f in faces)  # still the detector's
    code, out, _ = run(capsys, "identify", photos / "a_obama.jpg", "--gallery", gallery, "--liveness")
    (line,) = out.splitlines()
    assert line.rsplit(",", 2)[1:] in (["obama", "live"], ["obama", "not_live"])
