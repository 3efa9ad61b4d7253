"""Alignment: map a face's five landmarks onto the standard 112x112 template.

The template is the one ArcFace-family recognizers (SFace included) were
trained with; the similarity transform (rotation, uniform scale, translation)
is the least-squares fit of Umeyama (1991), so the face is never sheared.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.faces import Face

CROP_SIZE = 112
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],  # left eye (image left)
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float32,
)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the similarity transform that best maps ``source`` onto ``target``.

    Both are (n, 2) point arrays, n >= 2. Least squares over all points.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    reflection = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflection[1, 1] = -1.0
    rotation = u @ reflection @ vt
    src_variance = (src_c**2).sum() / len(src)
    if src_variance <= 0:
        raise ValueError("landmarks are all at one point; cannot align")
    scale = float((singular * np.diag(reflection)).sum() / src_variance)
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(image: np.ndarray, face: Face, size: int = CROP_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` aligned crop of ``face`` from ``image`` (same channel order).

    Outside the image is black, as in the crops the recognizer was trained on.
    """
    target = TEMPLATE_112 * (size / CROP_SIZE)
    matrix = similarity_transform(face.landmarks_array(), target)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
