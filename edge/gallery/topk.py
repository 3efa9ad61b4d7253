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

int8 rows are scored in integers first: the query rounded to int8 codes
times the row's codes, 16 or 32 products per vector instruction, a quarter of
the bytes of float32 rows to read. That estimate is off by at most a known margin,
so only rows whose estimate plus margin reaches the heap's root are scored
exactly (codes[i] * scales[i] . query, in float32) and offered: the answer is
the same as scoring every row exactly (_scan_codes, _quantise, _candidates).

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
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

FASTMATH = {"reassoc", "contract", "nsz", "arcp", "afn"}
"""fastmath without 'nnan'/'ninf': sums may be reordered (that is what lets the
dot products vectorise), but infinities keep their meaning, since an empty
heap slot holds -inf."""

BLOCK_STEPS = 16
"""Steps (of four rows) scored against all queries before moving on, when there
are several: 64 float32 rows of 128-d are 32 KiB, which stay in the core's
cache while each query passes over them."""

CODE_BLOCK_STEPS = 32
"""BLOCK_STEPS for int8 rows: 128 rows of 128 values are 16 KiB, 32 KiB where the
block is widened to int16 (see _scan_codes)."""

_LANES = 16
"""Values per vector in _candidates, widened to int16 or int32 for the products."""

_STEP = 32
"""Values of a row per loop step in _candidates (two vectors); int8 rows are read in
place when their length is a multiple of it, else through a padded copy."""

_TINY = np.float32(np.finfo(np.float32).tiny)
"""Added to every int8 bound: below the smallest normal float32 (subnormal scores, from
absurdly small scales) rounding errors are no longer relative to the value."""

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
        if matrix.dtype == np.float32:
            scores, rows = _scan(*map(_read_only, (matrix, queries, valid)), k, chunks)
        else:
            codes, sums, steps, margins = _quantise(queries)
            arrays = map(_read_only, (matrix, scales, queries, codes, sums, steps, margins, valid))
            scores, rows = _scan_codes(*arrays, k, chunks)
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


def _quantise(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The queries as int8 codes for _scan_codes: (codes (Q, D') int8, their sums (Q,) int64,
    steps (Q,), margins (Q,) float32), D' being D rounded up to a multiple of _STEP (the
    codes after D are zeros).

    query ~= codes * step, to within half a step per value. For an int8 row c
    (values -128..127, scale s) the integer estimate of its score,
    s * step * (codes . c), is off by |s * (query - codes * step) . c|, at most
    |s| * 128 * (the rounding error's L1 norm). margin is that, plus D + 8
    float32 roundings (2^-24 each) of the largest sum possible, 128 * (|query|_1
    + that error): those of the exact float32 score and of the bound itself, so
    that a row whose bound is below the heap's floor really scores below it.
    Codes of up to 127 levels, so that they are bytes for the machines' byte
    dot products (fewer past 66,000 values, so that no int32 sum can overflow);
    the margin is then about 0.01-0.03 of a cosine, few rows come that close
    to the top and need scoring exactly.
    """
    n_queries, dim = queries.shape
    levels = min(np.iinfo(np.int8).max, (2**31 - 1) // (255 * dim))  # bytes; no int32 sum can overflow
    if levels < 1:
        raise ValueError(f"int8 rows of {dim} values are too long for int32 sums")
    values = queries.astype(np.float64)
    largest = np.abs(values).max(axis=1)
    steps = np.where(largest > 0, largest / levels, 1.0).astype(np.float32)
    codes = np.clip(np.rint(values / steps[:, None]), -levels, levels)
    error = np.abs(values - codes * steps[:, None].astype(np.float64)).sum(axis=1)
    rounding = (dim + 8) * np.finfo(np.float32).eps / 2 * (np.abs(values).sum(axis=1) + error)
    margins = np.nextafter((128 * (error + rounding)).astype(np.float32), np.float32(np.inf))
    padded = np.zeros((n_queries, -(-dim // _STEP) * _STEP), np.int8)  # zeros: see _scan_codes
    padded[:, :dim] = codes
    return padded, codes.sum(axis=1).astype(np.int64), steps, margins


def _check_matrix(matrix: np.ndarray) -> np.ndarray:
    array = np.asarray(matrix)
    if array.ndim != 2:
        raise ValueError(f"matrix must be (N, D), got shape {array.shape}")
    if array.dtype not in (np.float32, np.int8):
        raise ValueError(f"matrix must be float32 or int8, got {array.dtype}")
    if not array.flags.c_contiguous:
        raise ValueError("matrix must be C-contiguous (row after row)")
    return array


def _check_scales(matrix: np.ndarray, scales: np.ndarray | None) -> np.ndarray | None:
    if matrix.dtype == np.float32:
        if scales is not None:
            raise ValueError("scales are for int8 matrices only")
        return None
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
def _scan(matrix, queries, valid, k, chunks):
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
                        s0 += query[j] * matrix[r0, j]
                        s1 += query[j] * matrix[r1, j]
                        s2 += query[j] * matrix[r2, j]
                        s3 += query[j] * matrix[r3, j]
                    floor = _offer(heap_scores, heap_rows, s0, r0, floor, masked, valid)
                    floor = _offer(heap_scores, heap_rows, s1, r1, floor, masked, valid)
                    floor = _offer(heap_scores, heap_rows, s2, r2, floor, masked, valid)
                    floor = _offer(heap_scores, heap_rows, s3, r3, floor, masked, valid)
                floors[q] = floor
        for row in range(first + 4 * quarter, stop):
            for q in range(n_queries):
                score = np.float32(0.0)
                for j in range(dim):
                    score += queries[q, j] * matrix[row, j]
                floors[q] = _offer(part_scores[c, q], part_rows[c, q], score, row, floors[q], masked, valid)
    return _merge(part_scores, part_rows, k)


@_compiled(parallel=True, fastmath=FASTMATH)
def _scan_codes(codes, scales, queries, query_codes, query_sums, steps, margins, valid, k, chunks):
    """_scan for int8 rows: the same chunks, streams, blocks and heaps, and the same
    answer, the top k of the float32 scores scales[i] * (codes[i] . query).

    Rows are first scored in integers, eight at a time, against the query's
    int8 codes (_quantise, _candidates). That estimate is within the query's
    margin of the true score, so a row whose estimate plus margin is below the
    heap's floor cannot enter the heap and is passed over; the few others
    (while the heap fills; rows near the top) are scored exactly in float32.

    One query reads the rows where they are, four streams at a time (steps t
    and t + 1 of each), so that the arithmetic overlaps the reading. Several
    queries go block by block (_scan_blocks): each block is copied once into a
    small buffer in the form _candidates multiplies fastest, so that no query
    redoes that work, and scored against every query while the next block is
    fetched. With byte dot products (_byte_products) the form is unsigned
    bytes, code + 128 (the sign flip vpdpbusd wants); without, int16 values.
    The buffer is padded with zeros, so rows of any length go through it.
    """
    n, dim = codes.shape
    n_queries = queries.shape[0]
    width = query_codes.shape[1]  # dim rounded up to a multiple of _STEP
    masked = valid.shape[0] > 0
    part_scores = np.empty((chunks, n_queries, k), np.float32)
    part_rows = np.empty((chunks, n_queries, k), np.int64)
    per_chunk = (n + chunks - 1) // chunks
    for c in prange(chunks):
        # This thread's heaps: views of an array only it uses are cheaper to make
        # (reference counts that no other core touches).
        heaps_scores = np.full((n_queries, k), -np.inf, np.float32)
        heaps_rows = np.full((n_queries, k), _EMPTY, np.int64)
        floors = np.full(n_queries, -np.inf, np.float32)
        first = c * per_chunk
        stop = min(n, first + per_chunk)
        quarter = max(0, stop - first) // 4
        if width == dim and n_queries == 1:
            query, query_code, floor = queries[0], query_codes[0], floors[0]
            for t in range(0, quarter, 2):  # steps t and t + 1 of the four streams
                r = first + t
                if t + 1 < quarter:
                    picks = (r, r + 1, r + quarter, r + quarter + 1,  # scales read in pairs
                             r + 2 * quarter, r + 2 * quarter + 1, r + 3 * quarter, r + 3 * quarter + 1)
                    could = _candidates(codes, picks, query_code, query_sums[0], scales, steps[0], margins[0], floor)
                    if could:
                        floor = _offer_some(heaps_scores[0], heaps_rows[0], floor, could, picks, codes, scales, query,
                                            masked, valid)
                else:
                    picks4 = (r, r + quarter, r + 2 * quarter, r + 3 * quarter)
                    could = _candidates(codes, picks4, query_code, query_sums[0], scales, steps[0], margins[0], floor)
                    if could:
                        floor = _offer_some(heaps_scores[0], heaps_rows[0], floor, could, picks4, codes, scales, query,
                                            masked, valid)
            floors[0] = floor
        elif _byte_products():
            block_bytes = np.zeros((4 * CODE_BLOCK_STEPS, width), np.uint8)
            _scan_blocks(block_bytes, 128, codes, scales, queries, query_codes, query_sums, steps, margins,
                         valid, masked, heaps_scores, heaps_rows, floors, first, quarter)
        else:
            block_values = np.zeros((4 * CODE_BLOCK_STEPS, width), np.int16)
            _scan_blocks(block_values, 0, codes, scales, queries, query_codes, query_sums, steps, margins,
                         valid, masked, heaps_scores, heaps_rows, floors, first, quarter)
        for row in range(first + 4 * quarter, stop):
            for q in range(n_queries):
                score = scales[row] * _float_dot(queries[q], codes, row)
                floors[q] = _offer(heaps_scores[q], heaps_rows[q], score, row, floors[q], masked, valid)
        part_scores[c] = heaps_scores
        part_rows[c] = heaps_rows
    return _merge(part_scores, part_rows, k)


@njit(inline="always")
def _scan_blocks(block_codes, offset, codes, scales, queries, query_codes, query_sums, steps, margins, valid, masked,
                 heaps_scores, heaps_rows, floors, first, quarter):
    """_scan_codes's four streams of a chunk, a block at a time: each block copied once
    into ``block_codes`` (codes + ``offset``, padded) with its scales and row numbers
    beside it, then scored against every query while the next block is fetched."""
    n_queries, dim = queries.shape
    block_scales = np.empty(4 * CODE_BLOCK_STEPS, np.float32)
    block_rows = np.empty(4 * CODE_BLOCK_STEPS, np.int64)
    for block in range(0, quarter, CODE_BLOCK_STEPS):
        size = 4 * min(quarter - block, CODE_BLOCK_STEPS)
        for i in range(size):  # the four streams in turn, a step at a time
            row = first + (i % 4) * quarter + block + i // 4
            block_rows[i] = row
            block_scales[i] = scales[row]
            for j in range(dim):
                block_codes[i, j] = codes[row, j] + offset
        for q in range(n_queries):
            query = queries[q]
            query_code = query_codes[q]
            step = steps[q]
            margin = margins[q]
            heap_scores = heaps_scores[q]
            heap_rows = heaps_rows[q]
            floor = floors[q]
            for i in range(0, size, 8):
                _prefetch_rows(codes, first, quarter, block + CODE_BLOCK_STEPS + i // 4, q, n_queries)
                if i + 8 <= size:
                    picks = (i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6, i + 7)
                    could = _candidates(block_codes, picks, query_code, query_sums[q], block_scales, step,
                                        margin, floor)
                else:  # the last four of a block of an odd number of steps
                    picks4 = (i, i + 1, i + 2, i + 3)
                    could = _candidates(block_codes, picks4, query_code, query_sums[q], block_scales,
                                        step, margin, floor)
                if could:
                    floor = _offer_some(heap_scores, heap_rows, floor, could, block_rows[i:i + 8], codes,
                                        scales, query, masked, valid)
            floors[q] = floor


@njit(inline="always")
def _offer_some(heap_scores, heap_rows, floor, could, rows, codes, scales, query, masked, valid):
    """_offer the rows[i] whose bit i is set in ``could``, scored exactly; returns the new floor."""
    for i in range(len(rows)):
        if could >> i & 1:
            row = rows[i]
            score = scales[row] * _float_dot(query, codes, row)
            floor = _offer(heap_scores, heap_rows, score, row, floor, masked, valid)
    return floor


@njit(inline="always")
def _float_dot(query, codes, row):
    """codes[row] . query in float32."""
    total = np.float32(0.0)
    for j in range(codes.shape[1]):
        total += query[j] * np.float32(codes[row, j])
    return total


@njit(inline="always")
def _prefetch_rows(codes, first, quarter, ahead, q, n_queries):
    """Have steps ahead and ahead + 1 of some of the chunk's four streams (those of query
    q: q, q + Q, ...) brought into the cache, without waiting for them. While a block is
    scored its queries ask so for the next block's rows: a few reads in flight at a time."""
    stream = q
    while stream < 4:  # (a range with a step would divide, at every call)
        for t in range(ahead, min(ahead + 2, quarter)):
            for offset in range(0, codes.shape[1], 64):  # one per 64-byte cache line
                _prefetch(codes, first + stream * quarter + t, offset)
        stream += n_queries


@intrinsic
def _prefetch(typingctx, array, row, offset):
    """Prefetch the cache line of array[row, offset] (llvm.prefetch: read, keep in all levels)."""
    signature = types.none(array, row, offset)

    def codegen(context, builder, signature, args):
        matrix = context.make_array(signature.args[0])(context, builder, args[0])
        width = builder.extract_value(matrix.shape, 1)
        address = builder.gep(matrix.data, [builder.add(builder.mul(args[1], width), args[2])])
        pointer = builder.bitcast(address, ir.IntType(8).as_pointer())
        int32 = ir.IntType(32)
        suffix = "p0" if str(pointer.type) == "ptr" else "p0i8"  # opaque pointers (LLVM 15+) or not
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, int32, int32, int32]),
            f"llvm.prefetch.{suffix}")
        builder.call(prefetch, [pointer, int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return signature, codegen


def _has_byte_products(context, triple: str) -> bool:
    """Whether _candidates multiplies int8 rows by the query as bytes, with vpdpbusd:
    on x86 with AVX-VNNI, or AVX512-VNNI and AVX512-VL, in numba's target features
    (NUMBA_CPU_FEATURES, else the host's; numba's cache is kept per CPU and features)."""
    if not _pair_products(triple):
        return False
    features = set(getattr(context.codegen(), "_get_host_cpu_features", lambda: "")().split(","))
    return "+avxvnni" in features or {"+avx512vnni", "+avx512vl"} <= features


@intrinsic
def _byte_products(typingctx):
    """_has_byte_products, as a constant of the compiled code."""

    def codegen(context, builder, signature, args):
        return ir.Constant(ir.IntType(1), _has_byte_products(context, builder.module.triple))

    return types.boolean(), codegen


def _pair_products(triple: str) -> bool:
    """Whether _candidates adds neighbouring products (2i, 2i + 1) before summing them:
    on x86, where multiply, pair and add is one vpmaddwd (vpdpwssd with VNNI) per 16
    products; elsewhere (ARM) pairing would cost shuffles, and plain sums compile to
    widening multiply-adds (smlal)."""
    arch = triple.split("-")[0]
    return arch == "x86_64" or arch.endswith("86")


@intrinsic
def _candidates(typingctx, rows, picks, query_code, query_sum, scales, step, margin, floor):
    """Which of the rows ``picks`` (a tuple of 4 or 8 row numbers) of ``rows`` could
    score at least ``floor``: bit i of the int64 result for row picks[i].

    rows (N, W) int8, int16, or uint8 holding code + 128, and query_code (W,)
    int8, C-contiguous, W a
    multiple of _STEP; query_sum the sum of query_code; scales[r] the scale of
    row r; step and margin the query's (_quantise). Row r could if its bound,
    scales[r] * step * (rows[r] . query_code) + |scales[r]| * margin (+ _TINY),
    is not below the floor (or is NaN).

    Written as LLVM vector code because the loop vectoriser does not find the
    best forms: int8 rows times the query as bytes where the machine has
    byte dot products (_has_byte_products), else 16 values at a time widened
    to int32 and multiplied, summed into int32 lanes (see _pair_products for
    x86 and the others); then the sums of all the rows reduced together and
    their bounds computed at once.
    """
    signature = types.int64(rows, picks, query_code, query_sum, scales, step, margin, floor)

    def codegen(context, builder, signature, args):
        matrix = context.make_array(signature.args[0])(context, builder, args[0])
        query = context.make_array(signature.args[2])(context, builder, args[2])
        scale_data = context.make_array(signature.args[4])(context, builder, args[4]).data
        count = signature.args[1].count
        picked = [builder.extract_value(args[1], i) for i in range(count)]
        index = picked[0].type
        pairs = _pair_products(builder.module.triple)
        int32, float32 = ir.IntType(32), ir.FloatType()
        width = builder.extract_value(matrix.shape, 1)
        starts = [builder.gep(matrix.data, [builder.mul(row, width)]) for row in picked]
        wide = ir.VectorType(int32, _LANES)
        lanes = ir.VectorType(int32, _LANES // 2)
        zero = ir.Constant(lanes, None)
        # Each row's sum is split in ``parts`` (one per vector of a loop step), added up
        # after the loop: eight chains of multiply-adds in all, each waiting for the one
        # before, keep the units busy, and fit the registers.
        parts = _STEP // _LANES if count == 4 else 1
        row_type = signature.args[0].dtype
        byte_products = row_type.bitwidth == 8 and _has_byte_products(context, builder.module.triple)
        flipped = row_type == types.uint8  # code + 128 already
        if byte_products:
            parts = 1
            octets = ir.VectorType(ir.IntType(8), _STEP)
            sign_bits = ir.Constant(octets, [-128] * _STEP)
            dot_bytes = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(lanes, [lanes, lanes, lanes]), "llvm.x86.avx512.vpdpbusd.256")

        def halve(vectors, groups):
            """Each of ``groups`` runs of lanes in one or two vectors summed with itself
            folded in half: the vectors' lanes, half as many, in the same order."""
            size = vectors[0].type.count // groups
            first, second = [], []
            for v in range(len(vectors)):
                for g in range(groups):
                    start = v * vectors[0].type.count + g * size
                    first += range(start, start + size // 2)
                    second += range(start + size // 2, start + size)
            shape = ir.VectorType(int32, len(first))
            a, b = vectors[0], vectors[-1]
            return builder.add(builder.shuffle_vector(a, b, ir.Constant(shape, first)),
                               builder.shuffle_vector(a, b, ir.Constant(shape, second)))

        def splat(value, lanes):
            vector = builder.insert_element(ir.Constant(ir.VectorType(value.type, lanes), None), value, int32(0))
            return builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(int32, lanes), None))

        entry = builder.basic_block
        loop = builder.append_basic_block("candidates.loop")
        done = builder.append_basic_block("candidates.done")
        builder.branch(loop)  # width >= _STEP, a multiple of a loop step: at least one step

        builder.position_at_end(loop)
        j = builder.phi(index)
        sums = [[builder.phi(lanes) for _ in range(parts)] for _ in starts]
        following = [list(row_sums) for row_sums in sums]
        if byte_products:
            # _STEP values of each row as unsigned bytes (code + 128: the sign bit
            # flipped) times the query's codes as signed bytes, four products summed
            # into each int32 lane: one vpdpbusd. The 128 * sum(query codes) this
            # adds is taken off after the loop.
            query_bytes = builder.load(builder.bitcast(builder.gep(query.data, [j]), lanes.as_pointer()), align=1)
            for start, row_sums in zip(starts, following):
                row_at = builder.bitcast(builder.gep(start, [j]), octets.as_pointer())
                row_bytes = builder.load(row_at, align=1)
                unsigned = builder.bitcast(row_bytes if flipped else builder.xor(row_bytes, sign_bits), lanes)
                row_sums[0] = builder.call(dot_bytes, [row_sums[0], unsigned, query_bytes])
        for vector in range(0 if byte_products else parts):
            at = builder.add(j, ir.Constant(index, vector * _LANES))
            query_at = builder.bitcast(builder.gep(query.data, [at]), ir.VectorType(ir.IntType(8), _LANES).as_pointer())
            query_values = builder.sext(builder.load(query_at, align=1), wide)
            for start, row_sums in zip(starts, following):
                row_type = ir.VectorType(ir.IntType(signature.args[0].dtype.bitwidth), _LANES)
                row_at = builder.bitcast(builder.gep(start, [at]), row_type.as_pointer())
                values = builder.load(row_at, align=1)
                values = builder.zext(values, wide) if flipped else builder.sext(values, wide)
                products = builder.mul(values, query_values)
                # Eight lanes per sum: on x86 neighbours (2i, 2i + 1) added (runs of two
                # lanes, halved), elsewhere the second half to the first.
                products = halve([products], _LANES // 2 if pairs else 1)
                row_sums[vector] = builder.add(row_sums[vector], products)
        next_j = builder.add(j, ir.Constant(index, _STEP if byte_products else parts * _LANES))
        builder.cbranch(builder.icmp_signed("<", next_j, width), loop, done)
        j.add_incoming(ir.Constant(index, 0), entry)
        j.add_incoming(next_j, loop)
        for row_sums, row_following in zip(sums, following):
            for total, after in zip(row_sums, row_following):
                total.add_incoming(zero, entry)
                total.add_incoming(after, loop)

        builder.position_at_end(done)
        totals = []
        for row_following in following:
            total = row_following[0]
            for after in row_following[1:]:
                total = builder.add(total, after)
            totals.append(total)
        # All the rows' sums at once: the rows' lanes halved and packed pairwise into
        # fewer vectors, then halved down to one lane per row (fewer shuffles than a
        # reduction per row).
        groups = 1
        while len(totals) > 1:
            totals = [halve(totals[i:i + 2], groups) for i in range(0, len(totals), 2)]
            groups *= 2
        packed = totals[0]
        while packed.type.count > count:
            packed = halve([packed], count)
        if byte_products or flipped:
            excess = builder.mul(builder.trunc(args[3], int32), int32(128))
            packed = builder.sub(packed, splat(excess, count))
        # The bounds at once, in IEEE float32 (no fast-math flags: _quantise's
        # margin counts these roundings).
        scales = ir.Constant(ir.VectorType(float32, count), None)
        for i, row in enumerate(picked):
            scales = builder.insert_element(scales, builder.load(builder.gep(scale_data, [row])), int32(i))
        fabs = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(scales.type, [scales.type]), f"llvm.fabs.v{count}f32")
        estimate = builder.fmul(builder.fmul(builder.sitofp(packed, scales.type), splat(args[5], count)), scales)
        slack = builder.fadd(builder.fmul(builder.call(fabs, [scales]), splat(args[6], count)),
                             splat(float32(float(_TINY)), count))
        could = builder.fcmp_unordered(">=", builder.fadd(estimate, slack), splat(args[7], count))
        return builder.zext(builder.bitcast(could, ir.IntType(count)), ir.IntType(64))

    return signature, codegen


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
