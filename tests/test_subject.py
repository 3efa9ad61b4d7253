"""The main-subject rules (edge.perception.subject) and `gallery build` taking a photo's main subject by position."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FACES
from edge.cli import main
from edge.cli.common import EXIT_INPUT, EXIT_OK
from edge.faces import BBox, Face
from edge.gallery.store import Gallery
from edge.perception.subject import (
    CENTRE_MARGIN,
    centre_offset,
    clear_cut_main_face,
    main_face,
    relative_size,
)

W, H = 1000, 600  # a synthetic image; its centre is (500, 300)


def face(cx: float, cy: float, side: float = 100.0) -> Face:
    """A square face of ``side`` pixels centred on (cx, cy)."""
    half = side / 2
    return Face(BBox(cx - half, cy - half, cx + half, cy + half), 0.99, ((cx, cy),) * 5)


def test_geometry_is_in_image_diagonals():
    diagonal = (W**2 + H**2) ** 0.5
    assert centre_offset(face(500, 300), W, H) == 0.0
    assert centre_offset(face(800, 700), W, H) == pytest.approx(500 / diagonal)
    assert centre_offset(face(0, 0, 10), W, H) == pytest.approx(0.5)
    assert relative_size(face(500, 300, 200), W, H) == pytest.approx(200 / diagonal)


def test_a_centred_face_beats_a_similar_one_at_the_edge():
    centred, edge = face(510, 300), face(900, 300, 120)  # the edge face is even a little larger
    assert clear_cut_main_face([edge, centred], W, H) is centred
    assert main_face([edge, centred], W, H) is centred  # the rule verify uses agrees


def test_two_faces_equally_near_the_centre_give_none():
    left, right = face(400, 300), face(600, 300)
    assert clear_cut_main_face([left, right], W, H) is None
    assert clear_cut_main_face([face(500, 300), face(500, 300)], W, H) is None  # two boxes on one face
    assert main_face([left, right], W, H) is not None  # verify still picks one


def test_a_single_face_or_one_clearly_largest_is_the_subject():
    alone = face(100, 100)
    assert clear_cut_main_face([alone], W, H) is alone
    big_edge, small_centre = face(150, 300, 300), face(500, 300, 80)  # not of similar size: only one contender
    assert clear_cut_main_face([big_edge, small_centre], W, H) is big_edge
    assert clear_cut_main_face([], W, H) is None


def test_a_face_that_is_not_among_the_largest_is_never_the_clear_cut_subject():
    # main_face takes the small face at the centre over a big one in the corner, but
    # the small one is not of similar size to the largest: size and position disagree.
    big_corner, small_centre = face(120, 120, 200), face(500, 300, 120)
    assert main_face([big_corner, small_centre], W, H) is small_centre
    assert clear_cut_main_face([big_corner, small_centre], W, H) is None


def test_the_margin_at_its_boundary():
    other = face(900, 300)  # 400 px from the centre
    at_margin = face(500 + CENTRE_MARGIN * 400, 300)  # exactly CENTRE_MARGIN of its distance
    just_over = face(500 + CENTRE_MARGIN * 400 + 2, 300)
    assert clear_cut_main_face([other, at_margin], W, H) is at_margin
    assert clear_cut_main_face([other, just_over], W, H) is None
    # Every other contender must be at least that much farther, not only the next one.
    assert clear_cut_main_face([other, at_margin, face(100, 300)], W, H) is at_margin
    assert clear_cut_main_face([other, at_margin, face(500, 30)], W, H) is None  # 270 px: too near


# End to end: `edge gallery build` on photos made from the bundled portraits.


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def portrait(engine, name: str, side: int = 240) -> np.ndarray:
    """The bundled photo cut to a square around its face (2.5 face sizes), scaled to ``side``."""
    image = cv2.imread(str(FACES / name))
    [face] = engine.detect(image)
    (cx, cy), half = face.box.center, round(1.25 * face.box.size)
    framed = cv2.copyMakeBorder(image, half, half, half, half, cv2.BORDER_REPLICATE)
    x, y = round(cx), round(cy)  # the face's centre, in the framed copy: (x + half, y + half)
    return cv2.resize(framed[y : y + 2 * half, x : x + 2 * half], (side, side), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def people(tmp_path_factory, engine):
    """biden: one photo, obama's face and his of the same size, his in the middle;
    joe: the same two side by side, as far from the middle (no main subject); obama: a clear photo."""
    root = tmp_path_factory.mktemp("people")
    obama, biden = portrait(engine, "obama3.jpg"), portrait(engine, "biden.jpg")
    for name in ("biden", "joe", "obama"):
        (root / name).mkdir()
    cv2.imwrite(str(root / "biden" / "with_barack.jpg"), np.hstack([obama, biden, np.zeros_like(biden)]))
    cv2.imwrite(str(root / "joe" / "side_by_side.jpg"), np.hstack([obama, biden]))
    shutil.copy(FACES / "obama.jpg", root / "obama" / "1.jpg")
    return root


def test_build_enrolls_a_clear_cut_main_subject_for_review(people, tmp_path, capsys):
    gallery_path = tmp_path / "g"
    code, out, _ = run(capsys, "gallery", "build", people, "--gallery", gallery_path, "--json", "--workers", "1")
    summary = json.loads(out)
    assert code == EXIT_INPUT and summary["enrolled"] == {"biden": 1, "obama": 1}
    assert summary["matched"] == []
    [review] = summary["review"]
    assert review["path"].endswith("with_barack.jpg") and review["name"] == "biden"
    assert review["why"] == "main subject by position; no clear photo of them to compare with"
    width = cv2.imread(review["path"]).shape[1]
    assert abs((review["box"][0] + review["box"][2]) / 2 - width / 2) < width / 10  # the face in the middle
    [skipped] = summary["skipped"]  # side by side around the centre: not clear-cut
    assert skipped["path"].endswith("side_by_side.jpg")
    assert skipped["reason"] == ("2 faces of similar size; none is clearly the subject "
                                 "(no clear photo of this person to compare with)")

    gallery = Gallery.open(gallery_path)
    try:
        assert sorted((r.identity, r.source.rsplit("/", 1)[-1]) for r in gallery.row_info()) == [
            ("biden", "with_barack.jpg"), ("obama", "1.jpg")]
    finally:
        gallery.close()

    # The taken face is biden: it matches his own portrait, not obama's.
    code, out, _ = run(capsys, "identify", FACES / "biden.jpg", FACES / "obama2.jpg", "--gallery", gallery_path)
    assert code == EXIT_OK and out.split() == [f"{FACES / 'biden.jpg'},biden", f"{FACES / 'obama2.jpg'},obama"]


def test_build_prints_what_to_review(people, tmp_path, capsys):
    code, out, _ = run(capsys, "gallery", "build", people, "--gallery", tmp_path / "g", "--workers", "1")
    [line] = [line for line in out.splitlines() if line.startswith("review ")]
    assert line.startswith(f"review biden in {people / 'biden' / 'with_barack.jpg'}: the face at [")
    assert line.endswith("] (main subject by position; no clear photo of them to compare with)")


def test_strict_build_refuses_it_as_before(people, tmp_path, capsys):
    code, out, _ = run(capsys, "gallery", "build", people, "--gallery", tmp_path / "g", "--json", "--workers", "1",
                       "--strict")
    summary = json.loads(out)
    assert code == EXIT_INPUT and summary["enrolled"] == {"obama": 1} and summary["review"] == []
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in summary["skipped"]}
    assert reasons == dict.fromkeys(
        ["with_barack.jpg", "side_by_side.jpg"],
        "2 faces of similar size; none is clearly the subject (no clear photo of this person to compare with)",
    )


def test_order_of_preference_for_a_photo_with_several_faces(tmp_path, monkeypatch):
    """pick_by_reference first; the main subject by position when no face or no clear photo matches, never
    when several match; nothing by position with strict. Photos stubbed: only the decision is under test."""
    from edge.enrollment import dataset
    from edge.perception.photos import EmbeddedFace, PhotoResult
    from edge.perception.settings import RecognitionSettings

    axes = np.eye(128, dtype=np.float32)
    alice, bob, carol, dave = axes[0], axes[1], axes[2], axes[3]

    def candidate(vector, x):
        return EmbeddedFace(BBox(x, 0, x + 50, 50), 0.99, vector)

    def group(path, *vectors, central=None):
        candidates = tuple(candidate(v, 100 * i) for i, v in enumerate(vectors))
        return PhotoResult(str(path), faces_found=len(vectors), error=f"{path}: {len(vectors)} faces of similar size",
                           candidates=candidates, by_position=None if central is None else candidates[central])

    root = tmp_path / "people"
    photos = {  # path under root: what the worker makes of it
        "alice/clear.jpg": lambda p: PhotoResult(str(p), BBox(0, 0, 50, 50), alice, 1, 0.99),
        "alice/with_bob.jpg": lambda p: group(p, bob, alice, central=0),  # matches alice: not by position
        "alice/strangers.jpg": lambda p: group(p, carol, dave, central=1),  # none matches alice: skipped
        "alice/twins.jpg": lambda p: group(p, alice, alice, central=0),  # two match: skipped
        "bob/only.jpg": lambda p: group(p, carol, bob, central=1),  # no clear photo: by position
        "carol/only.jpg": lambda p: group(p, carol, dave),  # no clear-cut subject: skipped
    }
    for name in photos:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")

    def stub(paths, settings, workers=None, rule="main"):
        assert rule == "clear"
        return [photos[str(Path(p).relative_to(root))](p) for p in paths]

    monkeypatch.setattr(dataset, "embed_photos", stub)
    report = dataset.build_gallery(root, tmp_path / "g", RecognitionSettings(), workers=1)
    assert [(Path(m.path).name, m.box.x1) for m in report.matched] == [("with_bob.jpg", 100)]
    assert [(Path(r.path).name, r.identity, r.box.x1, r.why) for r in report.review] == [
        ("only.jpg", "bob", 100, "main subject by position; no clear photo of them to compare with"),
    ]
    assert {str(Path(s.path).relative_to(root)): s.reason.split("(")[-1] for s in report.skipped} == {
        "alice/twins.jpg": "2 match this person's other photos)",
        "alice/strangers.jpg": "none matches this person's other photos)",
        "carol/only.jpg": "no clear photo of this person to compare with)",
    }
    assert report.enrolled == {"alice": 2, "bob": 1}
    assert report.to_dict()["review"][0] == {
        "path": str(root / "bob" / "only.jpg"), "name": "bob", "box": [100.0, 0.0, 150.0, 50.0],
        "why": "main subject by position; no clear photo of them to compare with"}

    strict = dataset.build_gallery(root, tmp_path / "strict", RecognitionSettings(), workers=1, strict=True)
    assert strict.review == [] and strict.matched == report.matched and strict.enrolled == {"alice": 2}
    assert len(strict.skipped) == 4
