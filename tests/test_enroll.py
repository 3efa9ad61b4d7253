"""Enrollment from a frame source: good samples kept, bad ones rejected with a reason, nothing stored on failure."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from edge.cli import main
from edge.cli.common import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from edge.perception.modelset import embedding_model_id
from edge.perception.liveness import Liveness
from edge.perception.settings import RecognitionSettings
from edge import demo
from edge.enrollment.settings import EnrollSettings
from edge.enrollment.session import EnrollmentSession, turn
from edge.gallery.store import Gallery
from edge.faces import BBox, Face


def scene(folder, *shots):
    """One frame per shot: a bundled photo's name, 'blank' or 'two' (two faces)."""
    return demo.write_stills(folder, shots)


@pytest.fixture
def gallery(tmp_path):
    path = tmp_path / "g"
    Gallery.create(path, embedding_model_id(RecognitionSettings())).close()
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_enroll_keeps_good_different_samples_and_rejects_the_rest(tmp_path, gallery, capsys):
    # obama2.jpg pasted into a frame is, to the liveness models, a photo (probability of live about 0.04):
    # it is refused as one would be held up to the camera.
    frames = scene(tmp_path / "frames", "blank", "obama.jpg", "obama.jpg", "two", "biden.jpg", "obama2.jpg", "obama3.jpg")
    code, out, err = run(capsys, "enroll", "--name", "Barack", "--source", frames, "--gallery", gallery,
                         "--samples", "2", "--json")
    assert code == EXIT_OK, err
    assert json.loads(out) == {"name": "Barack", "outcome": "complete", "samples": 2, "wanted": 2,
                                "gallery": str(gallery)}
    reasons = [line.split(" ", 2)[2] for line in err.splitlines() if line[:1] in "+-"]
    assert reasons[:5] == ["no face", "sample taken", "too like a sample already taken: turn your head a little",
                           "2 faces: only the person enrolling may be in view", "a different person than the first sample"]
    assert re.fullmatch(r"not a live face \(liveness 0\.[0-4]\d\): a photo or a screen cannot enroll", reasons[5])
    assert reasons[6:] == ["sample taken"]
    g = Gallery.open(gallery)
    try:
        assert g.identities() == {"Barack": 2}
        assert {r.source for r in g.row_info()} == {"enroll:frames"}
    finally:
        g.close()


def test_too_few_good_samples_store_nothing(tmp_path, gallery, capsys):
    frames = scene(tmp_path / "frames", "obama.jpg", "blank", "biden.jpg")
    code, out, _ = run(capsys, "enroll", "--name", "Barack", "--source", frames, "--gallery", gallery, "--samples", "3")
    assert code == EXIT_INPUT and "not enrolled (source ended" in out and "nothing was stored" in out
    g = Gallery.open(gallery)
    try:
        assert g.identities() == {}
    finally:
        g.close()


def test_bad_name_and_missing_gallery(tmp_path, gallery, capsys):
    frames = scene(tmp_path / "frames", "obama.jpg")
    assert run(capsys, "enroll", "--name", "  ", "--source", frames, "--gallery", gallery)[0] == EXIT_USAGE
    code, _, err = run(capsys, "enroll", "--name", "x", "--source", frames, "--gallery", tmp_path / "none")
    assert code == EXIT_USAGE and "not a gallery" in err


def face_at(size, nose_x=0.5):
    box = BBox(0, 0, size, size)
    landmarks = ((0.3 * size, 0.4 * size), (0.7 * size, 0.4 * size), (nose_x * size, 0.6 * size),
                 (0.35 * size, 0.8 * size), (0.65 * size, 0.8 * size))
    return Face(box, 0.99, landmarks)


def test_session_rules_small_turned_blurred_and_timeout():
    settings = EnrollSettings(samples=2, timeout=10, min_face_size=80, min_sharpness=30, require_live=False)
    session = EnrollmentSession("x", settings, 0.36, started_at=0.0)
    sharp = np.zeros((112, 112, 3), np.uint8)
    sharp[::2] = 255  # stripes: a high Laplacian variance
    flat = np.full((112, 112, 3), 128, np.uint8)
    vector = np.eye(128, dtype=np.float32)[0]
    assert "too small" in session.offer([face_at(60)], sharp, vector, 1).reason
    assert "turned" in session.offer([face_at(100, nose_x=0.75)], sharp, vector, 2).reason
    assert "blurred" in session.offer([face_at(100)], flat, vector, 3).reason
    assert session.offer([face_at(100)], sharp, vector, 4).accepted
    assert session.offer([face_at(100)], sharp, vector, 11).reason == "timed_out"
    assert session.state == "timed_out" and abs(turn(face_at(100, nose_x=0.75))) > 0.35
    with pytest.raises(ValueError):
        EnrollSettings(samples=0)


def test_a_face_that_is_not_live_gives_no_sample_and_says_why():
    session = EnrollmentSession("x", EnrollSettings(samples=1, min_face_size=80, min_sharpness=30), 0.36, started_at=0.0)
    sharp = np.zeros((112, 112, 3), np.uint8)
    sharp[::2] = 255
    vector = np.eye(128, dtype=np.float32)[0]
    photo = session.offer([face_at(100)], sharp, vector, 1, Liveness(0.23, (0.3, 0.16), False))
    assert not photo.accepted and photo.reason == "not a live face (liveness 0.23): a photo or a screen cannot enroll"
    assert "liveness not checked" in session.offer([face_at(100)], sharp, vector, 2).reason
    assert session.offer([face_at(100)], sharp, vector, 3, Liveness(0.9, (0.9, 0.9), True)).accepted


def test_a_camera_that_fails_mid_enrollment_stores_nothing(tmp_path, gallery, capsys, monkeypatch):
    from edge.adapters import camera as sources

    frames = scene(tmp_path / "frames", "obama.jpg", "obama3.jpg")

    class FailingCamera(sources.FolderSource):
        """The two frames, then the camera is unplugged."""

        def read(self):
            frame = super().read()
            if frame is None:
                raise sources.SourceError("video source '0' stopped delivering frames")
            return frame

    monkeypatch.setattr(sources, "open_source", lambda settings: FailingCamera(frames))
    code, out, err = run(capsys, "enroll", "--name", "Barack", "--source", "0", "--gallery", gallery,
                         "--samples", "3", "--preview", "none", "--json")
    assert code == EXIT_INPUT, err
    assert json.loads(out) == {"name": "Barack", "outcome": "source_failed", "samples": 0, "wanted": 3,
                               "gallery": str(gallery), "error": "video source '0' stopped delivering frames"}
    assert err.count("sample taken") == 2
    g = Gallery.open(gallery)
    try:
        assert g.identities() == {}
    finally:
        g.close()
