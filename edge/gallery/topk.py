"""Exact top-k cosine search: one pass over the gallery matrix for all queries.

    scores, rows = top_k(matrix, queries, k)            # float32 matrix
    scores, rows = top_k(codes, queries, k, scales)     # int8 matrix, row = codes[i] * scales[i]

``matrix`` is (N, D), C-contiguous, float32 or int8 (an np.memmap or an
array over an mmap is fine: it is read, never copied); its rows are L2-unit
vectors (int8 rows after multiplying by their scale), so the dot product with
a unit query is the cosine similarity, -1..1. ``queries`` is (Q, D) or (D,)
float32, unit length. The result is ``scores`` (Q, k) float32 and ``rows``
(Q, k) int64, best first; equal scores are ordered by row number, so the
answer is the exact top k of the total order (score descending, row
ascending), up to float rounding. When fewer than k rows are allowed (see
``valid``) the missing places hold row -1 and score -inf.

The kernel splits the rows into one contiguous chunk per thread. Each thread
walks its chunk in blocks small enough to stay in the core's cache, scores the
block against every query (so the matrix is read from memory once per call,
whatever Q is), and keeps a k-element min-heap per query whose root is the
score to beat; only rows that beat it touch the heap or the ``valid`` mask.
The per-thread heaps are merged at the end.

Numba compiles the kernels on first use and caches them on disk. numba picks
the cache directory at import: NUMBA_CACHE_DIR if set, else __pycache__
beside this file if writable, else the user's cache directory
($XDG_CACHE_HOME/numba, default ~/.cache/numba), so a read-only install
still caches. If none of those is writable numba refuses cache=True; then
the kernels are compiled in each process instead of failing the import.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

FASTMATH = {"reassoc", "contract", "nsz", "arcp", "afn"}
"""fastmath without 'nnan'/'ninf': sums may be reordered (that is what lets the
dot products vectorise), but infinities keep their meaning, since an empty
heap slot holds -inf."""

BLOCK_STEPS = 16
"""Steps (of four rows) scored against all queries before moving on, when there
are several: 64 float32 rows of 128-d are 32 KiB, which stay in the core's
cache while each query passes over them."""

_EMPTY = np.iinfo(np.int64).max
"""Row number of an empty heap slot while scanning (sorts after every real row)."""


def _compiled(**options):
    """numba.njit with an on-disk cache when numba finds a writable cache
    directory (see the module docstring), without one otherwise."""

    def decorate(function):
        try:
            return njit(cache=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(cache=False, **options)(function)

    return decorate


def top_k(
    matrix: np.ndarray,
    queries: np.ndarray,
    k: int,
    scales: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of ``matrix`` most similar to each query, best first.

    matrix: (N, D) float32, or int8 with ``scales`` (N,) float32 so that row i
    is matrix[i] * scales[i]. queries: (Q, D) or (D,) float32 unit vectors.
    valid: optional (N,) bool; rows where it is False (deleted) are never
    returned. Returns (scores, rows), each (Q, k): float32 cosine similarity
    and int64 row number; -inf and -1 where fewer than k rows are valid. A
    (D,) query gives (k,) results.
    """
    matrix = _check_matrix(matrix)
    n, dim = matrix.shape
    single = np.ndim(queries) == 1
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries must be (Q, {dim}) or ({dim},), got {np.shape(queries)}")
    if not np.isfinite(queries).all():
        raise ValueError("queries contain NaN or infinity")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scales = _check_scales(matrix, scales)
    valid = _check_valid(n, valid)
    if n == 0:
        scores = np.full((queries.shape[0], k), -np.inf, np.float32)
        rows = np.full((queries.shape[0], k), -1, np.int64)
    else:
        chunks = numba.get_num_threads() if n * dim >= 1 << 16 else 1
        arrays = [_read_only(a) for a in (matrix, queries, scales, valid)]
        scores, rows = _scan(*arrays, k, chunks)
        empty = rows == _EMPTY
        scores[empty] = -np.inf
        rows[empty] = -1
    return (scores[0], rows[0]) if single else (scores, rows)


def warm_up(dtype: str, dim: int) -> None:
    """Compile the search kernels for ``dtype`` rows of ``dim`` now, as the first search would
    (seconds on a fresh install; a cache lookup once numba's cache holds them)."""
    matrix = np.zeros((1, dim), np.dtype(dtype))
    top_k(matrix, np.zeros((1, dim), np.float32), 1, None if matrix.dtype == np.float32 else np.ones(1, np.float32))


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view: numba compiles read-only and writable arrays separately, and
    gallery matrices are read-only mappings, so everything goes in read-only (one
    compilation per matrix dtype)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _check_matrix(matrix: np.ndarray) -> np.ndarray:
    array = np.asarray(matrix)
    if array.ndim != 2:
        raise ValueError(f"matrix must be (N, D), got shape {array.shape}")
    if array.dtype not in (np.float32, np.int8):
        raise ValueError(f"matrix must be float32 or int8, got {array.dtype}")
    if not array.flags.c_contiguous:
        raise ValueError("matrix must be C-contiguous (row after row)")
    return array


def _check_scales(matrix: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    if matrix.dtype == np.float32:
        if scales is not None:
            raise ValueError("scales are for int8 matrices only")
        return np.empty(0, np.float32)
    if scales is None:
        raise ValueError("an int8 matrix needs its per-row scales")
    scales = np.ascontiguousarray(scales, dtype=np.float32)
    if scales.shape != (matrix.shape[0],):
        raise ValueError(f"scales must be ({matrix.shape[0]},), got {scales.shape}")
    return scales


def _check_valid(n: int, valid: np.ndarray | None) -> np.ndarray:
    if valid is None:
        return np.empty(0, np.bool_)
    valid = np.ascontiguousarray(valid, dtype=np.bool_)
    if valid.shape != (n,):
        raise ValueError(f"valid must be ({n},), got {valid.shape}")
    return valid


@_compiled(parallel=True, fastmath=FASTMATH)
def _scan(matrix, queries, scales, valid, k, chunks):
    """Per-chunk top k of every query (in parallel), merged: (Q, k) scores and rows.

    Each chunk is read as four streams, its four quarters, one row of each
    per step: four independent sums per pass over the query, and four
    sequential streams for the hardware prefetchers. A core streaming from
    memory is limited by how many reads it keeps in flight, not by the
    arithmetic; one stream leaves it waiting (measured: about 70% of the
    read bandwidth with one stream, about 90% with four).
    """
    n, dim = matrix.shape
    n_queries = queries.shape[0]
    scaled = scales.shape[0] > 0
    masked = valid.shape[0] > 0
    part_scores = np.empty((chunks, n_queries, k), np.float32)
    part_rows = np.empty((chunks, n_queries, k), np.int64)
    per_chunk = (n + chunks - 1) // chunks
    for c in prange(chunks):
        part_scores[c] = -np.inf
        part_rows[c] = _EMPTY
        floors = np.full(n_queries, -np.inf, np.float32)
        first = c * per_chunk
        stop = min(n, first + per_chunk)
        quarter = max(0, stop - first) // 4  # rows per stream; the last size % 4 rows come after
        step = BLOCK_STEPS if n_queries > 1 else max(1, quarter)  # one query: no block needed
        for block in range(0, quarter, step):
            block_stop = min(quarter, block + step)
            for q in range(n_queries):
                query = queries[q]
                heap_scores = part_scores[c, q]
                heap_rows = part_rows[c, q]
                floor = floors[q]
                for t in range(block, block_stop):
                    r0 = first + t
                    r1 = r0 + quarter
                    r2 = r1 + quarter
                    r3 = r2 + quarter
                    s0 = np.float32(0.0)
                    s1 = np.float32(0.0)
                    s2 = np.float32(0.0)
                    s3 = np.float32(0.0)
                    for j in range(dim):
                        s0 += query[j] * np.float32(matrix[r0, j])
                        s1 += query[j] * np.float32(matrix[r1, j])
                        s2 += query[j] * np.float32(matrix[r2, j])
                        s3 += query[j] * np.float32(matrix[r3, j])
                    if scaled:
                        s0 *= scales[r0]
                        s1 *= scales[r1]
                        s2 *= scales[r2]
                        s3 *= scales[r3]
                    floor = _offer(heap_scores, heap_rows, s0, r0, floor, masked, valid)
                    floor = _offer(heap_scores, heap_rows, s1, r1, floor, masked, valid)
                    floor = _offer(heap_scores, heap_rows, s2, r2, floor, masked, valid)
                    floor = _offer(heap_scores, heap_rows, s3, r3, floor, masked, valid)
                floors[q] = floor
        for row in range(first + 4 * quarter, stop):
            for q in range(n_queries):
                score = np.float32(0.0)
                for j in range(dim):
                    score += queries[q, j] * np.float32(matrix[row, j])
                if scaled:
                    score *= scales[row]
                floors[q] = _offer(part_scores[c, q], part_rows[c, q], score, row, floors[q], masked, valid)
    return _merge(part_scores, part_rows, k)


@njit(inline="always")
def _offer(heap_scores, heap_rows, score, row, floor, masked, valid):
    """Keep (score, row) if it outranks the heap's worst entry (score ``floor``) and
    the row is valid; returns the new floor."""
    if not score >= floor:  # (also when score is NaN)
        return floor
    if score == floor and row > heap_rows[0]:
        return floor
    if masked and not valid[row]:
        return floor
    _replace_root(heap_scores, heap_rows, score, row)
    return heap_scores[0]


@njit(inline="always")
def _worse(score_a, row_a, score_b, row_b):
    """Whether (score_a, row_a) ranks below (score_b, row_b): lower score, or equal and later row."""
    return score_a < score_b or (score_a == score_b and row_a > row_b)


@njit(inline="always")
def _replace_root(heap_scores, heap_rows, score, row):
    """Put (score, row) in place of the worst entry of a min-heap and restore the heap."""
    k = heap_scores.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        right = child + 1
        if right < k and _worse(heap_scores[right], heap_rows[right], heap_scores[child], heap_rows[child]):
            child = right
        if not _worse(heap_scores[child], heap_rows[child], score, row):
            break
        heap_scores[pos] = heap_scores[child]
        heap_rows[pos] = heap_rows[child]
        pos = child
    heap_scores[pos] = score
    heap_rows[pos] = row


@njit
def _merge(part_scores, part_rows, k):
    """The best k of all chunks' candidates per query, sorted best first."""
    chunks, n_queries, _ = part_scores.shape
    scores = np.empty((n_queries, k), np.float32)
    rows = np.empty((n_queries, k), np.int64)
    for q in range(n_queries):
        cand_scores = part_scores[:, q, :].copy().ravel()
        cand_rows = part_rows[:, q, :].copy().ravel()
        by_row = np.argsort(cand_rows, kind="mergesort")
        order = by_row[np.argsort(-cand_scores[by_row], kind="mergesort")]
        for r in range(k):
            scores[q, r] = cand_scores[order[r]]
            rows[q, r] = cand_rows[order[r]]
    return scores, rows
