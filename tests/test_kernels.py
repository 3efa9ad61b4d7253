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


def softmax_face(logits):
    """The face probability of (.., 2) float32 logits in TFLite's float32 steps: exp of each
    less the larger (rounded to float32), times the reciprocal of their sum."""
    exp = np.exp((logits - logits.max(axis=-1, keepdims=True)).astype(np.float64)).astype(np.float32)
    return exp[..., 1] * (np.float32(1) / (exp[..., 0] + exp[..., 1]))


def test_the_float32_steps_are_the_softmax():
    logits = np.random.default_rng(1).normal(0, 6, (10_000, 2)).astype(np.float32)
    exact = np.exp(logits[:, 1].astype(np.float64)) / np.exp(logits.astype(np.float64)).sum(axis=1)
    # Within float32's rounding of the logits' difference (as in TFLite).
    np.testing.assert_allclose(softmax_face(logits), exact, rtol=1e-5, atol=1e-7)


def reference_decode(prob, offsets, scale, threshold):
    ys, xs = np.nonzero(prob >= threshold)
    rows = []
    for y, x in zip(ys, xs):
        box = [PNET_STRIDE * x / scale, PNET_STRIDE * y / scale,
               (PNET_STRIDE * x + PNET_CELL) / scale, (PNET_STRIDE * y + PNET_CELL) / scale]
        rows.append(box + [prob[y, x]] + list(offsets[y, x]))
    return np.array(rows, np.float32).reshape(-1, 9)


def random_maps(rng, h, w):
    """P-Net-like output: logits whose face probability spreads over 0..1, small box offsets."""
    return rng.normal(0, 2.5, (h, w, 2)).astype(np.float32), rng.normal(0, 0.2, (h, w, 4)).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1),
       st.sampled_from([0.0, 0.3, 0.6, 0.95, 1.0]))
def test_decode_pnet_matches_reference(h, w, scale, seed, threshold):
    logits, offsets = random_maps(np.random.default_rng(seed), h, w)
    expected = reference_decode(softmax_face(logits), offsets, scale, threshold)
    np.testing.assert_array_equal(decode_pnet(logits, offsets, True, scale, threshold)[:, 4], expected[:, 4])
    np.testing.assert_allclose(decode_pnet(logits, offsets, True, scale, threshold), expected, rtol=1e-6, atol=1e-4)
    # The same cells from the probabilities themselves (as the int8 P-Net gives them).
    prob = np.stack([1 - softmax_face(logits), softmax_face(logits)], axis=-1)
    np.testing.assert_allclose(decode_pnet(prob, offsets, False, scale, threshold), expected, rtol=1e-6, atol=1e-4)


def test_decode_pnet_keeps_a_cell_exactly_at_the_threshold():
    # The face logit leading by log 1.5 is probability 0.6 (up to float32 rounding): cells just
    # on both sides of it, and one just inside the margin of the skip, decode as the reference.
    lead = np.float32(np.log(1.5))
    logits = np.zeros((1, 3, 2), np.float32)
    logits[0, :, 1] = [np.nextafter(lead, np.float32(-1)), lead, lead - 0.009]
    offsets = np.zeros((1, 3, 4), np.float32)
    got = decode_pnet(logits, offsets, True, 1.0, 0.6)
    np.testing.assert_array_equal(got, reference_decode(softmax_face(logits), offsets, 1.0, 0.6))


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 30), st.integers(1, 30), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1))
def test_decoding_rows_of_a_map_gives_those_rows_of_the_whole(h, w, scale, seed):
    rng = np.random.default_rng(seed)
    logits, offsets = random_maps(rng, h, w)
    cut = int(rng.integers(1, h))
    parts = [decode_pnet(logits[:cut], offsets[:cut], True, scale, 0.6, 0),
             decode_pnet(logits[cut:], offsets[cut:], True, scale, 0.6, cut)]
    np.testing.assert_array_equal(np.concatenate(parts), decode_pnet(logits, offsets, True, scale, 0.6))
