"""Numba kernels for the detector's hot loops: P-Net map decoding and NMS.

Boxes are float32 (n, 4) arrays of (x1, y1, x2, y2) in the project's pixel
convention (see edge.faces). Compiled on first use and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PNET_STRIDE = 2
PNET_CELL = 12


@njit(cache=True, nogil=True)
def decode_pnet(faces: np.ndarray, offsets: np.ndarray, logits: bool, scale: float, threshold: float,
                first_row: int = 0) -> np.ndarray:
    """Candidate boxes from one pyramid level of P-Net output, or from rows of it.

    faces: (h, w, 2) not-face and face scores, logits when ``logits`` (their
    softmax is the face probability), else the probabilities themselves;
    offsets: (h, w, 4) box offsets as fractions of the 12-pixel cell; scale:
    the level's resize factor (level = image * scale); threshold: the face
    probability a cell needs; first_row: the level's output row that the
    maps' first row is (for a band).
    Returns (n, 9) float32 rows: x1, y1, x2, y2, face probability, dx1, dy1,
    dx2, dy2, with the box in original-image pixels and the offsets still to
    be applied, in row-major order.
    """
    h, w = faces.shape[:2]
    # From logits, p >= threshold exactly when the face logit leads by at least
    # log(t / (1 - t)); cells well below that (nearly all) skip the exp.
    skip_below = -np.inf
    if logits and 0.0 < threshold < 1.0:
        skip_below = np.log(threshold / (1.0 - threshold)) - 0.01
    prob = np.full((h, w), -1.0, dtype=np.float32)  # -1: skipped, below any threshold
    count = 0
    for y in range(h):
        for x in range(w):
            if logits:
                if np.float64(faces[y, x, 1]) - np.float64(faces[y, x, 0]) < skip_below:
                    continue
                p = _face_softmax(faces[y, x, 0], faces[y, x, 1])
            else:
                p = faces[y, x, 1]
            prob[y, x] = p
            if p >= threshold:
                count += 1
    out = np.empty((count, 9), dtype=np.float32)
    i = 0
    for y in range(h):
        for x in range(w):
            if prob[y, x] >= threshold:
                out[i, 0] = (PNET_STRIDE * x) / scale
                out[i, 1] = (PNET_STRIDE * (y + first_row)) / scale
                out[i, 2] = (PNET_STRIDE * x + PNET_CELL) / scale
                out[i, 3] = (PNET_STRIDE * (y + first_row) + PNET_CELL) / scale
                out[i, 4] = prob[y, x]
                for k in range(4):
                    out[i, 5 + k] = offsets[y, x, k]
                i += 1
    return out


@njit(cache=True, nogil=True)
def _face_softmax(not_face: np.float32, face: np.float32) -> np.float32:
    """Softmax's face probability, step by step in float32 as TFLite's softmax takes them
    (exp of each logit less the larger, their sum, times the sum's reciprocal), so that it
    saturates to 1.0 where TFLite's does and ties between candidates stay ties."""
    top = max(not_face, face)
    e_not = np.float32(np.exp(np.float64(not_face - top)))
    e_face = np.float32(np.exp(np.float64(face - top)))
    return e_face * (np.float32(1.0) / (e_not + e_face))


@njit(cache=True, nogil=True)
def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, use_min: bool) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first.

    A box is dropped when its overlap with a better kept box exceeds
    ``threshold``; overlap is intersection over union, or intersection over
    the smaller box's area when ``use_min`` (used for the final stage, where a
    box nested inside a larger one is a duplicate).
    """
    n = boxes.shape[0]
    order = np.argsort(-scores, kind="mergesort")
    areas = np.empty(n, dtype=np.float32)
    for i in range(n):
        areas[i] = max(boxes[i, 2] - boxes[i, 0], 0.0) * max(boxes[i, 3] - boxes[i, 1], 0.0)
    suppressed = np.zeros(n, dtype=np.bool_)
    keep = np.empty(n, dtype=np.int64)
    kept = 0
    for a in range(n):
        i = order[a]
        if suppressed[i]:
            continue
        keep[kept] = i
        kept += 1
        for b in range(a + 1, n):
            j = order[b]
            if suppressed[j]:
                continue
            iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            if iw <= 0.0 or ih <= 0.0:
                continue
            inter = iw * ih
            if use_min:
                denom = min(areas[i], areas[j])
            else:
                denom = areas[i] + areas[j] - inter
            if denom > 0.0 and inter / denom > threshold:
                suppressed[j] = True
    return keep[:kept]
