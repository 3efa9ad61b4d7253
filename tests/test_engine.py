"""The recognition core on real photos with the real models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import side_by_side
from edge.perception.engine import FaceEngine, main_face
from edge.perception.modelset import MODEL_SETS
from edge.perception.settings import EmbedderSettings, RecognitionSettings, RuntimeSettings
from edge.faces import BBox, Face


def test_finds_the_one_face_in_a_portrait(engine, photo):
    image = photo("obama.jpg")
    faces = engine.detect(image)
    assert len(faces) == 1
    face = faces[0]
    height, width = image.shape[:2]
    assert face.score > 0.9
    assert 0 <= face.box.x1 < face.box.x2 <= width and 0 <= face.box.y1 < face.box.y2 <= height
    assert face.box.width > 0.2 * width
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lex < nx < rex and mlx < mrx  # left/right as seen in the image
    assert max(ley, rey) < ny < min(mly, mry)  # eyes above nose above mouth
    for x, y in face.landmarks:
        assert face.box.x1 <= x <= face.box.x2 and face.box.y1 <= y <= face.box.y2


def test_finds_both_faces_and_picks_the_central_one(engine, photo):
    image = side_by_side(photo("obama.jpg"), photo("biden.jpg"))
    faces = engine.detect(image)
    assert len(faces) == 2
    xs = sorted(f.box.center[0] for f in faces)
    assert xs[0] < image.shape[1] / 2 < xs[1]
    # Pad the right side so Biden's face sits in the middle: he becomes the subject.
    padded = cv2.copyMakeBorder(image, 0, 0, 0, image.shape[1] // 2, cv2.BORDER_CONSTANT)
    subject = main_face(engine.detect(padded), padded.shape[1], padded.shape[0])
    assert subject.box.center[0] == max(f.box.center[0] for f in engine.detect(padded))


def test_main_face_prefers_a_big_face_over_a_small_central_one():
    big_edge = Face(BBox(0, 100, 300, 400), 0.99, ((0, 0),) * 5)
    small_centre = Face(BBox(480, 330, 520, 370), 0.99, ((0, 0),) * 5)
    assert main_face([small_centre, big_edge], 1000, 700) is big_edge
    assert main_face([], 100, 100) is None


def test_no_face_is_an_empty_list(engine):
    y, x = np.mgrid[0:480, 0:640]
    gradient = np.stack([x % 256, y % 256, (x * y) % 256], -1).astype(np.uint8)
    assert engine.detect(gradient) == []
    assert engine.subject(gradient) is None
    assert engine.embed(gradient, []).shape == (0, 128)


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 8, 3), (11, 400, 3)])
def test_tiny_images_have_no_faces(engine, shape):
    assert engine.detect(np.full(shape, 127, np.uint8)) == []


def test_huge_image_is_searched_downscaled_but_cropped_at_full_resolution(engine, photo):
    image = photo("obama.jpg")
    huge = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)  # 3640 x 4548
    small_faces, huge_faces = engine.detect(image), engine.detect(huge)
    assert len(huge_faces) == 1
    assert huge_faces[0].box.scaled(0.25).iou(small_faces[0].box) > 0.8
    # The embedding of the full-resolution crop matches the original photo's.
    a = engine.embed(image, small_faces)[0]
    b = engine.embed(huge, huge_faces)[0]
    assert float(a @ b) > 0.9


def test_rejects_non_images(engine):
    with pytest.raises(ValueError, match="uint8"):
        engine.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ValueError, match="BGR"):
        engine.detect(np.zeros((100, 100), np.uint8))


def test_embeddings_are_unit_vectors_that_separate_people(engine, photo):
    vectors = {}
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"):
        subject = engine.subject(photo(name))
        assert subject is not None, name
        vectors[name] = subject.embedding
    for v in vectors.values():
        assert v.shape == (128,) and v.dtype == np.float32
        assert abs(np.linalg.norm(v) - 1.0) < 1e-4
    same = [vectors["obama.jpg"] @ vectors[n] for n in ("obama2.jpg", "obama3.jpg")]
    different = [vectors["biden.jpg"] @ vectors[n] for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    assert min(same) > max(different) + 0.2


@pytest.mark.parametrize(
    "change",
    [
        lambda i: i[:, ::-1].copy(),  # mirrored
        lambda i: cv2.convertScaleAbs(i, alpha=0.6, beta=0),  # darker
        lambda i: cv2.convertScaleAbs(i, alpha=1.2, beta=30),  # brighter
        lambda i: cv2.GaussianBlur(i, (0, 0), 2.0),  # softer focus
    ],
    ids=["flip", "dark", "bright", "blur"],
)
def test_same_face_changed_stays_closer_than_another_person(engine, photo, change):
    original = engine.subject(photo("obama.jpg")).embedding
    changed = engine.subject(change(photo("obama.jpg")))
    other = engine.subject(photo("biden.jpg")).embedding
    assert changed is not None
    assert float(original @ changed.embedding) > float(original @ other) + 0.3
    assert float(original @ changed.embedding) > 0.7


@pytest.mark.parametrize("model_set", sorted(MODEL_SETS))
@pytest.mark.parametrize("flip_average", [False, True])
def test_crops_embedded_together_get_the_vectors_each_gets_alone(model_set, flip_average):
    settings = RecognitionSettings(model_set=model_set, runtime=RuntimeSettings(num_threads=1),
                                   embedder=EmbedderSettings(flip_average=flip_average))
    crops = np.random.default_rng(6).integers(0, 256, (19, 112, 112, 3), dtype=np.uint8)  # more than a chunk
    with FaceEngine.open(settings) as engine:
        together = engine.embedder.embed(crops)
        alone = np.concatenate([engine.embedder.embed(crops[i : i + 1]) for i in range(len(crops))])
    assert together.shape == (19, engine.embedder.dimension)
    assert np.array_equal(together, alone)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
