"""`edge gallery build` and `edge gallery list` on a small generated dataset of real photos."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from conftest import FACES, side_by_side
from edge.cli import main
from edge.cli.common import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from edge.config import Config
from edge.perception.modelset import embedding_model_id
from edge.perception.settings import RecognitionSettings
from edge.gallery.fileformat import HEADER_SIZE
from edge.gallery.store import Gallery
from edge.perception.subject import clear_subject
from edge.faces import BBox, Face


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    (root / "obama").mkdir()
    (root / "biden").mkdir()
    shutil.copy(FACES / "obama.jpg", root / "obama" / "1.jpg")
    shutil.copy(FACES / "obama2.jpg", root / "obama" / "2.jpg")
    shutil.copy(FACES / "biden.jpg", root / "biden" / "1.jpg")
    (root / "biden" / "notes.txt").write_text("not a photo")
    (root / "biden" / "broken.jpg").write_bytes((FACES / "biden.jpg").read_bytes()[:3000])
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "biden" / "noise.png"), noise)
    obama = cv2.imread(str(FACES / "obama.jpg"))
    cv2.imwrite(str(root / "obama" / "twice.jpg"), side_by_side(obama, obama))  # two equal faces
    (root / "joe.jpg").write_bytes((FACES / "biden.jpg").read_bytes())  # classic flat layout: named after the person
    (root / "readme.md").write_text("not a photo")
    return root


def test_build_enrolls_usable_photos_and_says_why_others_were_skipped(dataset, tmp_path, capsys):
    gallery_path = tmp_path / "door.gallery"
    code, out, err = run(capsys, "gallery", "build", dataset, "--gallery", gallery_path, "--json", "--workers", "2")
    assert code == EXIT_INPUT  # built, but some files were skipped
    summary = json.loads(out)
    assert summary["enrolled"] == {"biden": 1, "joe": 1, "obama": 2}
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {"notes.txt", "broken.jpg", "noise.png", "twice.jpg", "readme.md"}
    assert "not an image" in reasons["notes.txt"]
    assert "truncated" in reasons["broken.jpg"] or "cannot" in reasons["broken.jpg"]
    assert reasons["noise.png"] == "no face found"
    assert "none is clearly the subject" in reasons["twice.jpg"]
    assert "not an image" in reasons["readme.md"]
    assert "photos" in err  # progress on stderr

    gallery = Gallery.open(gallery_path, model_id=embedding_model_id(RecognitionSettings()))
    try:
        rows = gallery.row_info()
        assert sorted(r.identity for r in rows) == ["biden", "joe", "obama", "obama"]
        assert all(r.source.startswith(str(dataset)) and 0.5 < r.quality <= 1.0 for r in rows)
    finally:
        gallery.close()

    code, out, _ = run(capsys, "gallery", "list", gallery_path)
    assert code == EXIT_OK
    assert "biden\t1" in out and "obama\t2" in out and "3 people, 4 samples" in out


def test_built_gallery_identifies_a_new_photo_of_an_enrolled_person(dataset, tmp_path, engine, photo):
    from edge.enrollment.dataset import build_gallery
    from edge.gallery.search import identify

    gallery_path = tmp_path / "g"
    build_gallery(dataset, gallery_path, RecognitionSettings(), workers=1)
    image = photo("obama3.jpg")
    query = engine.subject(image).embedding
    gallery = Gallery.open(gallery_path)
    try:
        [match] = identify(gallery, query[None], Config().search)
        assert match is not None and match.name == "obama"
    finally:
        gallery.close()


def test_build_refuses_an_existing_gallery_and_a_missing_dataset(dataset, tmp_path, capsys):
    existing = tmp_path / "exists"
    existing.mkdir()
    code, _, err = run(capsys, "gallery", "build", dataset, "--gallery", existing)
    assert code == EXIT_USAGE and "already exists" in err
    code, _, err = run(capsys, "gallery", "build", tmp_path / "nowhere", "--gallery", tmp_path / "new")
    assert code == EXIT_USAGE and "not a folder" in err
    assert not (tmp_path / "new").exists()
    code, _, err = run(capsys, "gallery", "build", dataset)
    assert code == EXIT_USAGE and "no gallery given" in err


def test_an_interrupted_build_leaves_no_gallery(dataset, tmp_path, monkeypatch):
    from edge.enrollment import dataset as enrollment

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(enrollment, "BATCH_ROWS", 1)
    monkeypatch.setattr(enrollment.Gallery, "append", fail)
    with pytest.raises(KeyboardInterrupt):
        enrollment.build_gallery(dataset, tmp_path / "g", RecognitionSettings(), workers=1)
    assert list(tmp_path.iterdir()) == []


def test_list_of_something_that_is_not_a_gallery(tmp_path, capsys):
    code, _, err = run(capsys, "gallery", "list", tmp_path)
    assert code == EXIT_USAGE and "not a gallery" in err


def test_clear_subject_needs_one_face_well_above_the_rest():
    def face(side):
        return Face(BBox(0, 0, side, side), 0.99, ((0.0, 0.0),) * 5)

    big, small, similar = face(150), face(60), face(120)
    assert clear_subject([big]) is big
    assert clear_subject([small, big]) is big
    assert clear_subject([big, similar]) is None
    assert clear_subject([]) is None


def test_remove_and_check(dataset, tmp_path, capsys):
    from edge.enrollment.dataset import build_gallery

    gallery_path = tmp_path / "g"
    build_gallery(dataset, gallery_path, RecognitionSettings(), workers=1)
    code, out, _ = run(capsys, "gallery", "check", gallery_path)
    assert code == EXIT_OK and "ok, 4 rows verified" in out
    code, out, _ = run(capsys, "gallery", "remove", "biden", "--gallery", gallery_path, "--compact")
    assert code == EXIT_OK and "removed biden: 1 sample" in out
    code, _, err = run(capsys, "gallery", "remove", "biden", "--gallery", gallery_path)
    assert code == EXIT_INPUT and "nobody named 'biden'" in err
    code, out, _ = run(capsys, "gallery", "list", gallery_path, "--json")
    assert json.loads(out)["people"] == {"joe": 1, "obama": 2}

    rows = sorted(gallery_path.glob("rows-*.bin"))[-1]
    data = bytearray(rows.read_bytes())
    data[HEADER_SIZE + 5] ^= 0xFF  # flip bits in the first row
    rows.write_bytes(bytes(data))
    code, out, _ = run(capsys, "gallery", "check", gallery_path, "--json")
    report = json.loads(out)
    assert code == EXIT_INPUT and report["ok"] is False and "checksum" in report["problem"]


def one_photo_of_obama(tmp_path, capsys):
    """A new gallery at tmp_path/g with one sample: obama.jpg as 'obama'."""
    gallery_path = tmp_path / "g"
    first = tmp_path / "first"
    (first / "obama").mkdir(parents=True)
    shutil.copy(FACES / "obama.jpg", first / "obama" / "1.jpg")
    assert run(capsys, "gallery", "build", first, "--gallery", gallery_path)[0] == EXIT_OK
    return gallery_path


def test_add_and_add_many_grow_an_existing_gallery(tmp_path, capsys):
    gallery_path = one_photo_of_obama(tmp_path, capsys)

    person = tmp_path / "somebody"
    person.mkdir()
    shutil.copy(FACES / "biden.jpg", person / "a.jpg")
    obama = cv2.imread(str(FACES / "obama.jpg"))
    cv2.imwrite(str(person / "group.jpg"), side_by_side(obama, cv2.resize(obama, None, fx=0.5, fy=0.5)))
    code, out, _ = run(capsys, "gallery", "add", person, "--name", " Joe Biden ", "--gallery", gallery_path, "--json")
    summary = json.loads(out)
    assert code == EXIT_INPUT and summary["enrolled"] == {"Joe Biden": 1}
    assert "2 faces; pass --largest" in summary["skipped"][0]["reason"]
    code, out, _ = run(capsys, "gallery", "add", person, "--name", "Joe Biden", "--largest", "--gallery", gallery_path, "--json")
    summary = json.loads(out)
    assert code == EXIT_INPUT and summary["enrolled"] == {"Joe Biden": 1}  # the group photo's largest face
    assert "already enrolled as Joe Biden from this photo" in summary["skipped"][0]["reason"]  # a.jpg again

    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(FACES / "obama2.jpg", flat / "barack.jpg")
    shutil.copy(FACES / "obama3.jpg", flat / ".hidden.jpg")
    (flat / "empty").mkdir()
    code, out, _ = run(capsys, "gallery", "add-many", flat, "--gallery", gallery_path, "--json")
    summary = json.loads(out)
    assert summary["enrolled"] == {"barack": 1}
    assert [s["reason"] for s in summary["skipped"]] == ["empty folder"]

    code, out, _ = run(capsys, "gallery", "list", gallery_path, "--json")
    assert json.loads(out)["people"] == {"Joe Biden": 2, "barack": 1, "obama": 1}  # nothing already there was lost

    code, _, err = run(capsys, "gallery", "add", person, "--name", "a/b", "--gallery", gallery_path)
    assert code == EXIT_USAGE and "'/'" in err
    code, _, err = run(capsys, "gallery", "add", tmp_path / "missing", "--gallery", gallery_path)
    assert code == EXIT_USAGE and "not a folder" in err
    code, _, err = run(capsys, "--config", _config(tmp_path, 'model_set = "int8"'), "gallery", "add", person,
                       "--gallery", gallery_path)
    assert code == EXIT_USAGE and "made with model" in err


def _config(tmp_path, recognition_line):
    path = tmp_path / "edge.toml"
    path.write_text(f"[recognition]\n{recognition_line}\n")
    return path


def test_rename(dataset, tmp_path, capsys):
    from edge.enrollment.dataset import build_gallery

    gallery_path = tmp_path / "g"
    build_gallery(dataset, gallery_path, RecognitionSettings(), workers=1)
    code, out, _ = run(capsys, "gallery", "rename", "joe", "Joe Biden", "--gallery", gallery_path)
    assert code == EXIT_OK and "renamed joe to Joe Biden: 1 sample" in out
    code, _, err = run(capsys, "gallery", "rename", "Joe Biden", "obama", "--gallery", gallery_path)
    assert code == EXIT_USAGE and "already enrolled" in err
    code, _, err = run(capsys, "gallery", "rename", "nobody", "x", "--gallery", gallery_path)
    assert code == EXIT_INPUT and "nobody named 'nobody'" in err
    code, out, _ = run(capsys, "gallery", "rename", "biden", "Biden", "--gallery", gallery_path, "--json")
    assert code == EXIT_OK and json.loads(out)["renamed"] == 1
    run(capsys, "gallery", "rename", "Biden", "biden", "--gallery", gallery_path)
    code, out, _ = run(capsys, "gallery", "list", gallery_path, "--json")
    assert json.loads(out)["people"] == {"Joe Biden": 1, "biden": 1, "obama": 2}


def test_export_and_import(dataset, tmp_path, capsys):
    from edge.enrollment.dataset import build_gallery

    source = tmp_path / "g"
    build_gallery(dataset, source, RecognitionSettings(), workers=1)
    run(capsys, "gallery", "remove", "biden", "--gallery", source)
    code, out, _ = run(capsys, "gallery", "export", tmp_path / "people.zip", "--gallery", source)
    assert code == EXIT_OK and "exported 3 samples" in out
    code, out, _ = run(capsys, "gallery", "import", tmp_path / "people.zip", "--gallery", tmp_path / "copy", "--json")
    assert code == EXIT_OK and json.loads(out)["imported"] == 3

    original, copy = Gallery.open(source), Gallery.open(tmp_path / "copy")
    try:
        live = [r for r in original.row_info() if not r.deleted]
        assert [(r.identity, r.source, r.added) for r in copy.row_info()] == [(r.identity, r.source, r.added) for r in live]
        view, copied = original.view(), copy.view()
        np.testing.assert_allclose(copied.matrix, view.matrix[[r.row for r in live]], atol=1e-6)
        assert copy.model_id == original.model_id
    finally:
        original.close()
        copy.close()

    (tmp_path / "junk.zip").write_bytes(b"PK not really")
    code, _, err = run(capsys, "gallery", "import", tmp_path / "junk.zip", "--gallery", tmp_path / "copy")
    assert code == EXIT_USAGE and "not a gallery export" in err
    other = tmp_path / "other"
    Gallery.create(other, "another-model").close()
    code, _, err = run(capsys, "gallery", "import", tmp_path / "people.zip", "--gallery", other)
    assert code == EXIT_USAGE and "exported from model" in err


def test_a_group_photo_enrolls_the_face_that_matches_the_persons_other_photos(tmp_path, capsys):
    root = tmp_path / "people"
    (root / "obama").mkdir(parents=True)
    (root / "biden").mkdir()
    shutil.copy(FACES / "obama.jpg", root / "obama" / "1.jpg")
    shutil.copy(FACES / "obama2.jpg", root / "obama" / "2.jpg")
    obama, biden = cv2.imread(str(FACES / "obama3.jpg")), cv2.imread(str(FACES / "biden.jpg"))  # faces of similar size
    cv2.imwrite(str(root / "obama" / "with_joe.jpg"), side_by_side(biden, obama))  # obama on the right
    cv2.imwrite(str(root / "biden" / "with_barack.jpg"), side_by_side(biden, obama))  # no clear biden photo
    gallery_path = tmp_path / "g"
    code, out, _ = run(capsys, "gallery", "build", root, "--gallery", gallery_path, "--json", "--workers", "1")
    summary = json.loads(out)
    assert code == EXIT_INPUT and summary["enrolled"] == {"obama": 3}
    [matched] = summary["matched"]
    width = cv2.imread(str(root / "obama" / "with_joe.jpg")).shape[1]
    assert matched["path"].endswith("with_joe.jpg") and matched["name"] == "obama"
    assert matched["box"][0] > width / 2 and matched["similarity"] >= Config().search.match_threshold
    [skipped] = summary["skipped"]
    assert skipped["path"].endswith("with_barack.jpg") and "no clear photo of this person" in skipped["reason"]

    gallery = Gallery.open(gallery_path)
    try:
        sources = sorted(r.source.rsplit("/", 1)[-1] for r in gallery.row_info())
        assert sources == ["1.jpg", "2.jpg", "with_joe.jpg"]
    finally:
        gallery.close()


def test_pick_by_reference_takes_exactly_one_matching_face():
    from edge.enrollment.dataset import pick_by_reference
    from edge.perception.photos import EmbeddedFace

    axes = np.eye(4, dtype=np.float32)
    person, stranger = axes[0], axes[1]
    like_person = (0.8 * axes[0] + 0.6 * axes[2]).astype(np.float32)

    def candidates(*vectors):
        return tuple(EmbeddedFace(BBox(0, 0, 10, 10), 0.99, v) for v in vectors)

    chosen, why = pick_by_reference(candidates(stranger, like_person), person + person, 0.36)
    assert chosen is not None and chosen[0].embedding is like_person and abs(chosen[1] - 0.8) < 1e-6 and why == ""
    assert pick_by_reference(candidates(stranger, axes[3]), person, 0.36) == (None, "none matches this person's other photos")
    assert pick_by_reference(candidates(person, like_person), person, 0.36) == (None, "2 match this person's other photos")
    assert pick_by_reference(candidates(person), None, 0.36)[0] is None


def test_names_worth_a_second_look_are_noted(tmp_path):
    from collections import Counter

    from edge.enrollment.dataset import name_notes, scan_dataset

    root = tmp_path / "people"
    (root / "alice").mkdir(parents=True)
    for path in (root / "alice" / "1.jpg", root / "alice.jpg", root / "Bob.jpg", root / "bob.png",
                 root / "Jose\u0301.jpg"):
        path.write_bytes(b"")  # scanning looks at names only
    photos, _ = scan_dataset(root)
    assert {p.identity for p in photos} == {"alice", "Bob", "bob", "Jos\u00e9"}  # NFC, as typed on a keyboard
    notes = name_notes(photos, Counter({"Jos\u00e9": 2, "ALICE": 1}))
    assert notes == [
        "Jos\u00e9 is already enrolled (2 samples): these photos add to them",
        f"alice: the photos in {root}, {root / 'alice'} are enrolled as one person",
        "ALICE and alice differ only in case and are different people; rename one (edge gallery rename) if they are the same",
        "Bob and bob differ only in case and are different people; rename one (edge gallery rename) if they are the same",
    ]
    assert name_notes(photos[:1]) == []


def test_adding_to_a_person_already_enrolled_says_so(tmp_path, capsys):
    gallery_path = one_photo_of_obama(tmp_path, capsys)
    more = tmp_path / "more" / "obama"
    more.mkdir(parents=True)
    shutil.copy(FACES / "obama2.jpg", more / "2.jpg")
    code, out, _ = run(capsys, "gallery", "add", more, "--gallery", gallery_path)
    assert code == EXIT_OK and "note: obama is already enrolled (1 sample): these photos add to them" in out


def test_candidates_of_a_group_photo_are_the_faces_of_similar_size_to_the_largest():
    from edge.perception.photos import similar_to_largest

    def face(side):
        return Face(BBox(0, 0, side, side), 0.99, ((0.0, 0.0),) * 5)

    big, similar, small = face(150), face(120), face(60)
    assert similar_to_largest([small, similar, big]) == [big, similar]
    assert similar_to_largest([face(100)] * 12) == [face(100)] * 8
