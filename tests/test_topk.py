"""edge.gallery.topk.top_k against exact numpy search."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.gallery import topk
from edge.gallery.topk import _quantise, _read_only, _scan, _scan_codes, top_k


def unit_rows(rng, n, dim):
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def quantise(rows):
    scales = (np.abs(rows).max(axis=1) / 127).astype(np.float32)
    codes = np.clip(np.rint(rows / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def dequantised(codes, scales):
    return codes.astype(np.float64) * scales.astype(np.float64)[:, None]


def numpy_top_k(rows, queries, k, valid=None):
    """Exact reference in float64: (all scores, top scores, top rows) under (score desc, row asc)."""
    scores = queries.astype(np.float64) @ rows.astype(np.float64).T
    if valid is not None:
        scores[:, ~valid] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(rows.shape[0]), scores.shape), -scores), axis=-1)[:, :k]
    top = np.take_along_axis(scores, order, axis=1)
    padding = k - top.shape[1]
    top = np.pad(top, ((0, 0), (0, padding)), constant_values=-np.inf)
    order = np.pad(order, ((0, 0), (0, padding)), constant_values=-1)
    return scores, top, order


def assert_same_top_k(got_scores, got_rows, all_scores, ref_scores, ref_rows, tolerance):
    """Same scores within tolerance, sorted; the same rows except among (near) ties."""
    finite = np.isfinite(ref_scores)
    np.testing.assert_array_equal(got_rows[~finite], -1)
    np.testing.assert_array_equal(np.isneginf(got_scores), ~finite)
    np.testing.assert_allclose(got_scores[finite], ref_scores[finite], atol=tolerance)
    assert (got_scores[:, :-1] >= got_scores[:, 1:]).all(), "not sorted best first"
    for q, j in zip(*np.nonzero(finite & (got_rows != ref_rows))):
        # Another row in this place is right only if its true score ties with the reference's.
        true_score = all_scores[q, got_rows[q, j]]
        assert abs(true_score - ref_scores[q, j]) <= 2 * tolerance, (
            f"query {q} place {j}: row {got_rows[q, j]} ({true_score}) instead of {ref_rows[q, j]}"
        )
    for q in range(got_rows.shape[0]):
        real = got_rows[q][got_rows[q] >= 0]
        assert len(set(real.tolist())) == real.size, "a row returned twice"


sizes = st.tuples(st.integers(0, 300), st.integers(1, 70), st.integers(1, 6), st.integers(1, 20))


@settings(max_examples=60, deadline=None)
@given(sizes, st.integers(0, 2**32 - 1), st.booleans())
def test_float32_matches_numpy(shape, seed, with_mask):
    n, dim, n_queries, k = shape
    rng = np.random.default_rng(seed)
    rows = unit_rows(rng, n, dim)
    queries = unit_rows(rng, n_queries, dim)
    valid = rng.random(n) < 0.7 if with_mask else None
    scores, found = top_k(rows, queries, k, valid=valid)
    assert scores.shape == found.shape == (n_queries, k)
    assert scores.dtype == np.float32 and found.dtype == np.int64
    assert_same_top_k(scores, found, *numpy_top_k(rows, queries, k, valid), tolerance=1e-5)


@settings(max_examples=60, deadline=None)
@given(sizes, st.integers(0, 2**32 - 1), st.booleans())
def test_int8_matches_numpy_on_dequantised_rows(shape, seed, with_mask):
    n, dim, n_queries, k = shape
    rng = np.random.default_rng(seed)
    codes, scales = quantise(unit_rows(rng, n, dim))
    queries = unit_rows(rng, n_queries, dim)
    valid = rng.random(n) < 0.7 if with_mask else None
    scores, found = top_k(codes, queries, k, scales, valid)
    assert_same_top_k(scores, found, *numpy_top_k(dequantised(codes, scales), queries, k, valid), tolerance=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 120), st.integers(1, 4), st.integers(1, 7), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_any_split_into_chunks_gives_the_same_answer(n, n_queries, chunks, k, seed):
    """The kernel itself, with chunk counts top_k would only use on big matrices."""
    rng = np.random.default_rng(seed)
    rows = unit_rows(rng, n, 12)
    rows[rng.integers(0, n, n // 3)] = rows[0]  # exact ties across chunks
    queries = np.concatenate([rows[:1], unit_rows(rng, n_queries - 1, 12)])
    arrays = [_read_only(a) for a in (rows, queries, np.empty(0, np.bool_))]
    scores, found = _scan(*arrays, k, chunks)
    found = np.where(found == np.iinfo(np.int64).max, -1, found)
    scores = np.where(found < 0, -np.inf, scores)
    assert_same_top_k(scores, found, *numpy_top_k(rows, queries, k), tolerance=1e-5)

    codes, scales = quantise(rows)
    arrays = [_read_only(a) for a in (codes, scales, queries, *_quantise(queries), np.empty(0, np.bool_))]
    scores, found = _scan_codes(*arrays, k, chunks)
    found = np.where(found == np.iinfo(np.int64).max, -1, found)
    scores = np.where(found < 0, -np.inf, scores)
    assert_same_top_k(scores, found, *numpy_top_k(dequantised(codes, scales), queries, k), tolerance=1e-5)


@pytest.mark.parametrize("n", [20_000, 20_003, 65_537])
def test_large_matrix_uses_all_threads_and_agrees(n):
    """Big enough for the parallel path (several chunks), with the best rows at chunk edges."""
    rng = np.random.default_rng(n)
    rows = unit_rows(rng, n, 128)
    targets = [0, n // 4, n // 2 - 1, n // 2, n // 2 + 1, n - 2, n - 1]  # chunk and stream edges
    queries = rows[targets] * 0.9 + unit_rows(rng, len(targets), 128) * 0.1
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores, found = top_k(rows, queries, 10)
    assert_same_top_k(scores, found, *numpy_top_k(rows, queries, 10), tolerance=1e-5)
    assert list(found[:, 0]) == targets
    codes, scales = quantise(rows)
    for batch in (queries[:1], queries):  # one query reads the rows in place, several through a copy
        scores, found = top_k(codes, batch, 10, scales)
        assert_same_top_k(scores, found, *numpy_top_k(dequantised(codes, scales), batch, 10), tolerance=1e-5)
        assert list(found[:, 0]) == targets[:len(batch)]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("n_queries", [1, 3])
def test_exact_ties_are_ordered_by_row(dtype, n_queries):
    row = unit_rows(np.random.default_rng(1), 1, 32)
    rows = np.repeat(row, 50_000, axis=0)  # identical rows in every chunk
    codes, scales = quantise(rows)
    queries = np.repeat(row, n_queries, axis=0)
    scores, found = top_k(rows, queries, 5) if dtype == "float32" else top_k(codes, queries, 5, scales)
    assert (found == [0, 1, 2, 3, 4]).all()
    assert np.all(scores == scores[0, 0])


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_fewer_valid_rows_than_k_pad_with_minus_one(dtype):
    rows = unit_rows(np.random.default_rng(2), 4, 8)
    codes, scales = quantise(rows)

    def search(queries, k, valid):
        return top_k(rows, queries, k, valid=valid) if dtype == "float32" else top_k(codes, queries, k, scales, valid)

    scores, found = search(rows[1], 6, np.array([False, True, False, True]))
    assert list(found[:2]) == [1, 3]
    assert list(found[2:]) == [-1] * 4 and np.all(np.isneginf(scores[2:]))
    scores, found = search(rows[:3], 2, np.zeros(4, bool))
    assert (found == -1).all() and np.isneginf(scores).all()
    empty = np.empty((0, 8), np.float32 if dtype == "float32" else np.int8)
    scores, found = top_k(empty, rows[:2], 3, None if dtype == "float32" else np.empty(0, np.float32))
    assert found.shape == (2, 3) and (found == -1).all()


@pytest.mark.parametrize("dim", [128, 40])
@pytest.mark.parametrize("n_queries", [1, 5])
@pytest.mark.parametrize("factor", [1.0, 1e-30, 1e30])
def test_int8_near_ties_duplicates_and_extreme_scales(dim, n_queries, factor):
    """Rows one code step apart (their integer estimates against the rounded query can
    rank them wrongly: the exact scores must decide), exact duplicates, the best rows
    in every stream and chunk, per-row scales spread over 100x and scaled by ``factor``."""
    rng = np.random.default_rng(dim + n_queries)
    n = 20_011
    codes, scales = quantise(unit_rows(rng, n, dim))
    base = codes[rng.integers(0, n, 6)]
    near = rng.integers(0, n, 600)
    codes[near] = base[rng.integers(0, 6, near.size)]
    codes[near, rng.integers(0, dim, near.size)] += rng.choice(np.array([-1, 1], np.int8), near.size)
    codes[rng.integers(0, n, 60)] = base[0]  # exact duplicates
    scales = (scales * np.exp(rng.uniform(-2.3, 2.3, n)) * factor).astype(np.float32)
    scales[near] = scales[near[0]]
    queries = base[:n_queries].astype(np.float32) + rng.normal(0, 2, (n_queries, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for k in (1, 7, 40):
        scores, found = top_k(codes, queries, k, scales)
        all_scores, ref_scores, ref_rows = numpy_top_k(dequantised(codes, scales) / factor, queries, k)
        assert_same_top_k(scores / np.float32(factor), found, all_scores, ref_scores, ref_rows, tolerance=1e-5 * 10)


@pytest.mark.parametrize("query", ["one-hot", "zero", "spread"])
def test_int8_queries_exactly_representable_or_zero(query):
    rng = np.random.default_rng(5)
    codes, scales = quantise(unit_rows(rng, 3000, 64))
    queries = {"one-hot": np.eye(64, dtype=np.float32)[[3, 60]], "zero": np.zeros((2, 64), np.float32),
               "spread": np.full((2, 64), 0.125, np.float32)}[query]
    for batch in (queries[:1], queries):
        scores, found = top_k(codes, batch, 9, scales)
        assert_same_top_k(scores, found, *numpy_top_k(dequantised(codes, scales), batch, 9), tolerance=1e-5)


MACHINE_FORMS = {  # _candidates' forms, whatever this machine is: (pair products, byte products)
    "x86 bytes": (True, True),  # compiled only where the CPU has VNNI (numba compiles for this CPU)
    "x86": (True, False),
    "other": (False, False),
}


def machine_form(monkeypatch, form):
    pairs, byte_products = MACHINE_FORMS[form]
    if byte_products and not topk._has_byte_products(_Context(), "x86_64"):
        pytest.skip("this CPU has no byte dot products (VNNI)")
    monkeypatch.setattr(topk, "_pair_products", lambda triple: pairs)
    if not byte_products:
        monkeypatch.setattr(topk, "_has_byte_products", lambda context, triple: False)


class _Context:
    """Enough of numba's target context for topk._has_byte_products."""

    @staticmethod
    def codegen():
        from numba.core.registry import cpu_target

        return cpu_target.target_context.codegen()


@pytest.mark.parametrize("picks", [4, 8])
@pytest.mark.parametrize("form", list(MACHINE_FORMS))
@pytest.mark.parametrize("row_type", [np.int8, np.int16, np.uint8])
def test_candidates_never_drops_a_row_that_reaches_the_floor(monkeypatch, picks, form, row_type):
    """The integer filter itself, four or eight rows at a time, in each of its machine
    forms (x86's byte products or paired products, the plain sums other machines get)
    and row forms (int8 codes, widened to int16, or unsigned bytes code + 128), with
    floors just below, at and just above each row's exact float32 score, and far
    above it."""
    from numba import njit

    machine_form(monkeypatch, form)

    @njit
    def candidates(rows, query_code, query_sum, scales, step, margin, floors):
        """Bit r of out[g, f]: row picks * g + r at floor floors[g, f]."""
        out = np.empty(floors.shape, np.int64)
        for g in range(floors.shape[0]):
            b = picks * g
            for f in range(floors.shape[1]):
                if picks == 4:
                    group = (b, b + 1, b + 2, b + 3)
                    out[g, f] = topk._candidates(rows, group, query_code, query_sum, scales, step, margin,
                                                 floors[g, f])
                else:
                    group8 = (b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7)
                    out[g, f] = topk._candidates(rows, group8, query_code, query_sum, scales, step, margin,
                                                 floors[g, f])
        return out

    rng = np.random.default_rng(picks + len(form) + 2 * np.dtype(row_type).itemsize)
    dim, n = 96, 400
    codes, scales = quantise(unit_rows(rng, n, dim))
    scales = (scales * np.exp(rng.uniform(-3, 3, n))).astype(np.float32)
    queries = unit_rows(rng, 1, dim)
    query_code, query_sum, step, margin = _quantise(queries)
    # Rows whose codes line up with the query's rounding error, where the integer
    # estimate is off by nearly the whole margin: any other slip shows.
    error = queries[0].astype(np.float64) - query_code[0, :dim] * np.float64(step[0])
    codes[::5] = np.where(error > 0, 127, -128)
    codes[1::5] = np.where(error > 0, 127, 0)
    exact = (codes.astype(np.float64) @ queries[0].astype(np.float64)) * scales
    exact32 = exact.astype(np.float32)
    kinds = [np.nextafter(exact32, -np.inf), exact32, np.nextafter(exact32, np.inf),
             (exact + 3 * margin[0] * scales).astype(np.float32)]
    floors = np.stack(kinds, axis=1).reshape(n // picks, picks * len(kinds))  # [group, row r's floor kinds]
    rows = (codes.astype(np.int16) + 128).astype(np.uint8) if row_type == np.uint8 else codes.astype(row_type)
    masks = candidates(_read_only(rows), query_code[0], query_sum[0], _read_only(scales), step[0],
                       margin[0], floors).reshape(n // picks, picks, len(kinds))
    for r in range(picks):
        flagged = (masks[:, r, :] >> r) & 1
        assert flagged[:, :2].all(), "a row at or above the floor was passed over"
        assert not flagged[:, 3].any(), "a row far below the floor was kept"


@pytest.mark.parametrize("form", list(MACHINE_FORMS))
def test_int8_kernel_in_each_machine_form(monkeypatch, form):
    """_scan_codes compiled afresh for each form of _candidates (this machine runs
    one), so that another machine's paths (ARM's sums, widened blocks for several
    queries without byte products) are run here too."""
    from numba import njit

    machine_form(monkeypatch, form)
    kernel = njit(parallel=True, fastmath=topk.FASTMATH)(topk._scan_codes.py_func)
    rng = np.random.default_rng(len(form))
    for n, dim, n_queries, chunks in [(20_011, 128, 1, 2), (20_011, 128, 5, 2), (3_001, 40, 1, 1), (999, 64, 3, 3)]:
        codes, scales = quantise(unit_rows(rng, n, dim))
        queries = unit_rows(rng, n_queries, dim)
        valid = rng.random(n) < 0.9
        arrays = [_read_only(a) for a in (codes, scales, queries, *_quantise(queries), valid)]
        scores, found = kernel(*arrays, 10, chunks)
        assert_same_top_k(scores, found, *numpy_top_k(dequantised(codes, scales), queries, 10, valid), tolerance=1e-5)


def test_memmap_matrix(tmp_path):
    rows = unit_rows(np.random.default_rng(3), 1000, 32)
    path = tmp_path / "rows.f32"
    rows.tofile(path)
    mapped = np.memmap(path, np.float32, mode="r", shape=rows.shape)
    scores, found = top_k(mapped, rows[:3], 2)
    assert list(found[:, 0]) == [0, 1, 2]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r, c, s: top_k(r, r[0], 0), "k must be"),
        (lambda r, c, s: top_k(r, np.ones(5, np.float32), 1), "queries must be"),
        (lambda r, c, s: top_k(r.astype(np.float64), r[0], 1), "float32 or int8"),
        (lambda r, c, s: top_k(r[:, ::2], r[0, ::2], 1), "C-contiguous"),
        (lambda r, c, s: top_k(c, r[0], 1), "needs its per-row scales"),
        (lambda r, c, s: top_k(c, r[0], 1, s[:-1]), "scales must be"),
        (lambda r, c, s: top_k(r, r[0], 1, s), "int8 matrices only"),
        (lambda r, c, s: top_k(r, np.full(8, np.nan, np.float32), 1), "NaN"),
        (lambda r, c, s: top_k(r, r[0], 1, valid=np.ones(3, bool)), "valid must be"),
    ],
)
def test_bad_arguments(call, message):
    rows = unit_rows(np.random.default_rng(4), 10, 8)
    codes, scales = quantise(rows)
    with pytest.raises(ValueError, match=message):
        call(rows, codes, scales)
