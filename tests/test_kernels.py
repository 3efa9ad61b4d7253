"""The numba kernels against plain-numpy references."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.perception.kernels import PNET_CELL, PNET_STRIDE, decode_pnet, nms


def reference_nms(boxes, scores, threshold, use_min):
    order = list(np.argsort(-scores, kind="stable"))
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = max(iw, 0) * max(ih, 0)
            denom = min(areas[i], areas[j]) if use_min else areas[i] + areas[j] - inter
            if not (inter > 0 and denom > 0 and inter / denom > threshold):
                rest.append(j)
        order = rest
    return np.array(keep, dtype=np.int64)


def random_boxes(rng, n):
    xy = rng.uniform(0, 100, size=(n, 2)).astype(np.float32)
    wh = rng.uniform(1, 40, size=(n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.permutation(n).astype(np.float32) / max(n, 1)  # distinct: no ties
    return boxes, scores


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(0, 2**31 - 1), st.floats(0.05, 0.95), st.booleans())
def test_nms_matches_reference(n, seed, threshold, use_min):
    boxes, scores = random_boxes(np.random.default_rng(seed), n)
    got = nms(boxes, scores, threshold, use_min)
    np.testing.assert_array_equal(got, reference_nms(boxes, scores, threshold, use_min))


def test_nms_drops_overlapping_and_keeps_separate():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert list(nms(boxes, scores, 0.5, False)) == [0, 2]
    # A small box inside a big one: IoU is low, overlap-over-min is 1.
    nested = np.array([[0, 0, 40, 40], [5, 5, 15, 15]], np.float32)
    assert list(nms(nested, np.array([0.9, 0.8], np.float32), 0.7, False)) == [0, 1]
    assert list(nms(nested, np.array([0.9, 0.8], np.float32), 0.7, True)) == [0]


def reference_decode(prob, reg, scale, threshold):
    ys, xs = np.nonzero(prob >= threshold)
    rows = []
    for y, x in zip(ys, xs):
        box = [PNET_STRIDE * x / scale, PNET_STRIDE * y / scale,
               (PNET_STRIDE * x + PNET_CELL) / scale, (PNET_STRIDE * y + PNET_CELL) / scale]
        rows.append(box + [prob[y, x]] + list(reg[y, x]))
    return np.array(rows, np.float32).reshape(-1, 9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1))
def test_decode_pnet_matches_reference(h, w, scale, seed):
    rng = np.random.default_rng(seed)
    prob = rng.uniform(0, 1, (h, w)).astype(np.float32)
    reg = rng.normal(0, 0.2, (h, w, 4)).astype(np.float32)
    got = decode_pnet(prob, reg, scale, 0.6)
    np.testing.assert_allclose(got, reference_decode(prob, reg, scale, 0.6), rtol=1e-6, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 30), st.integers(1, 30), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1))
def test_decoding_rows_of_a_map_gives_those_rows_of_the_whole(h, w, scale, seed):
    rng = np.random.default_rng(seed)
    prob = rng.uniform(0, 1, (h, w)).astype(np.float32)
    reg = rng.normal(0, 0.2, (h, w, 4)).astype(np.float32)
    cut = int(rng.integers(1, h))
    parts = [decode_pnet(prob[:cut], reg[:cut], scale, 0.6, 0), decode_pnet(prob[cut:], reg[cut:], scale, 0.6, cut)]
    np.testing.assert_array_equal(np.concatenate(parts), decode_pnet(prob, reg, scale, 0.6))
