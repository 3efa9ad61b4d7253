"""Alignment maths: the similarity fit and the crop it produces."""

import math

import numpy as np
import pytest

from edge.perception.align import TEMPLATE_112, align_face, similarity_transform
from edge.faces import BBox, Face


def apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def similarity(angle, scale, tx, ty):
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


@pytest.mark.parametrize("angle,scale,tx,ty", [(0, 1, 0, 0), (0.3, 2.5, 10, -4), (-1.2, 0.4, 200, 90)])
def test_recovers_an_exact_similarity(angle, scale, tx, ty):
    truth = similarity(angle, scale, tx, ty)
    source = TEMPLATE_112.astype(np.float64)
    target = apply(truth, source)
    np.testing.assert_allclose(similarity_transform(source, target), truth, atol=1e-9)


def test_fit_is_least_squares_and_never_shears():
    rng = np.random.default_rng(0)
    source = TEMPLATE_112 + rng.normal(0, 2, TEMPLATE_112.shape)
    matrix = similarity_transform(source, TEMPLATE_112)
    a, b = matrix[0, :2], matrix[1, :2]
    assert np.isclose(np.dot(a, b), 0, atol=1e-9)  # orthogonal rows
    assert np.isclose(np.linalg.norm(a), np.linalg.norm(b))  # uniform scale
    assert np.linalg.det(matrix[:, :2]) > 0  # no mirror
    # Perturbing the fit makes the squared error worse.
    error = lambda m: ((apply(m, source) - TEMPLATE_112) ** 2).sum()
    for delta in (1e-3, -1e-3):
        worse = matrix.copy()
        worse[0, 2] += delta
        assert error(worse) > error(matrix)


def test_degenerate_landmarks_are_refused():
    with pytest.raises(ValueError):
        similarity_transform(np.ones((5, 2)), TEMPLATE_112)


def test_aligned_crop_puts_landmarks_on_the_template():
    # Draw five dots at known places in a rotated, scaled frame and align them.
    truth = similarity(0.4, 2.0, 150, 60)
    points = apply(truth, TEMPLATE_112.astype(np.float64))
    image = np.zeros((400, 400, 3), np.uint8)
    for x, y in points:
        image[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2] = 255
    face = Face(BBox(0, 0, 400, 400), 1.0, tuple(map(tuple, points)))
    crop = align_face(image, face)
    assert crop.shape == (112, 112, 3)
    for x, y in TEMPLATE_112:
        assert crop[int(round(y)), int(round(x))].max() > 100
