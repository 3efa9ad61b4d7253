"""Top-k search speed: edge.gallery.topk.top_k against numpy and faiss, and against the memory.

For each gallery size (random 128-d unit rows in RAM) and query batch size:

- edge f32 / edge i8: edge.gallery.topk.top_k on the float32 matrix / on its int8
  encoding with per-row scales (the gallery's own encoding);
- numpy: matmul + argpartition + sorting the k found (OpenBLAS, all cores);
- faiss flat: faiss-cpu IndexFlatIP.search (all cores; skipped if faiss is
  not installed);
- read: a numba parallel sum over the same bytes (float32 view), the
  memory read bandwidth this machine gives such a stream, in the same run.
  Each search is reported as a share of it: bytes read / time / bandwidth.

Each method is timed ``--rounds`` times, in ``--passes`` passes of back-to-back
calls after a pause and a warm-up (see ``timed``: interleaving the methods
in several passes evens out a shared machine's slow spells); tables give
median and minimum, speed-ups and shares compare medians. ``--gallery`` also builds a real on-disk gallery at the
largest float32 size and times opening it and searching its mapped matrix.
``--agreement`` runs the int8-vs-float32 identity check on LFW embeddings
(see search_agreement.py).

    .venv/bin/python benchmarks/search.py
    .venv/bin/python benchmarks/search.py --sizes 1000000 --batches 1 8 --threads 2 --no-faiss   # int8 vs float32
    .venv/bin/python benchmarks/search.py --int8-sizes 10000000 --gallery --agreement --json search.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import environment, format_table, header, package_version  # noqa: E402

DIM = 128
K = 10


def unit_rows(n: int, seed: int, chunk: int = 1 << 20) -> np.ndarray:
    """(n, DIM) float32 random unit vectors, generated in chunks to bound the temporaries."""
    rng = np.random.default_rng(seed)
    rows = np.empty((n, DIM), np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        rows[start:start + block.shape[0]] = block
    return rows


def int8_rows(n: int, seed: int, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """The int8 encoding (codes, scales) of unit_rows(n, seed), without holding the float32 matrix."""
    from edge.gallery.fileformat import encode_rows

    rng = np.random.default_rng(seed)
    codes = np.empty((n, DIM), np.int8)
    scales = np.empty(n, np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        codes[start:start + block.shape[0]], scales[start:start + block.shape[0]] = encode_rows(block, "int8")
    return codes, scales


def queries_near(rows_or_codes: np.ndarray, scales: np.ndarray | None, count: int, seed: int) -> np.ndarray:
    """Queries close to random gallery rows (as at a door: the person is enrolled)."""
    rng = np.random.default_rng(seed)
    picked = rows_or_codes[rng.integers(0, rows_or_codes.shape[0], count)].astype(np.float32)
    if scales is not None:
        picked /= 127.0
    picked += rng.normal(0, 0.05, picked.shape).astype(np.float32)
    return picked / np.linalg.norm(picked, axis=1, keepdims=True)


def read_sum_kernel():
    """A numba parallel sum over a float32 array: the reference read stream."""
    from numba import njit, prange

    from edge.gallery.topk import FASTMATH

    @njit(parallel=True, fastmath=FASTMATH, cache=True)
    def read_sum(values, chunks):
        n, width = values.shape
        per_chunk = (n + chunks - 1) // chunks
        sums = np.zeros(chunks, np.float32)
        for c in prange(chunks):
            total = np.float32(0.0)
            for i in range(c * per_chunk, min(n, (c + 1) * per_chunk)):
                for j in range(width):
                    total += values[i, j]
            sums[c] = total
        return sums.sum()

    return read_sum


def as_float_words(array: np.ndarray) -> np.ndarray:
    """The bytes of ``array`` seen as rows of 64 float32 (256 bytes), for read_sum."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    usable = flat.size // 256 * 256
    return flat[:usable].view(np.float32).reshape(-1, 64)


def numpy_top_k(matrix: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ matrix.T
    part = np.argpartition(scores, -k, axis=1)[:, -k:]
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)


def timed(methods: dict, rounds: int, passes: int = 2, pause: float = 0.2, warm_up: float = 0.3) -> dict:
    """Milliseconds per call of each method: {name: [ms, ...]}.

    Each method runs its calls back to back, after a pause and at least
    ``warm_up`` seconds (and 3 calls) of untimed calls, in ``passes`` passes
    over the methods. numpy's, faiss's and numba's thread pools each
    spin-wait for a while after work, so alternating them call by call would
    time their contention; and freshly written gigabytes read slowly for a
    while (the kernel is still settling their pages), hence the warm-up.
    """
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(passes):
        for name, call in methods.items():
            time.sleep(pause)
            start, calls = time.perf_counter(), 0
            while calls < 3 or time.perf_counter() - start < warm_up:
                call()
                calls += 1
            for _ in range(max(1, rounds // passes)):
                start = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def run_size(n, batches, rounds, passes, with_float32, faiss, seed, read_sum, threads) -> list[dict]:
    """Every method at one gallery size; one result dict per (method, batch)."""
    results = []
    float_rows = unit_rows(n, seed) if with_float32 else None
    codes, scales = int8_rows(n, seed)
    index = None
    if faiss is not None and float_rows is not None:
        index = faiss.IndexFlatIP(DIM)
        index.add(float_rows)
    streams = {"i8": as_float_words(codes)}
    if float_rows is not None:
        streams["f32"] = as_float_words(float_rows)
    from edge.gallery.topk import top_k

    for batch in batches:
        queries = queries_near(codes, scales, batch, seed + batch)
        methods = {}
        if float_rows is not None:
            methods["edge f32"] = lambda: top_k(float_rows, queries, K)
        methods["edge i8"] = lambda: top_k(codes, queries, K, scales)
        if float_rows is not None:
            methods["numpy"] = lambda: numpy_top_k(float_rows, queries, K)
            if index is not None:
                methods["faiss flat"] = lambda: index.search(queries, K)
            methods["read f32 bytes"] = lambda: read_sum(streams["f32"], threads)
        methods["read i8 bytes"] = lambda: read_sum(streams["i8"], threads)
        times = timed(methods, rounds, passes)
        for name, values in times.items():
            stream = "i8" if name in ("edge i8", "read i8 bytes") else "f32"
            nbytes = codes.nbytes + scales.nbytes if name == "edge i8" else streams[stream].nbytes
            results.append({
                "rows": n, "batch": batch, "method": name, "bytes": int(nbytes), "stream": stream,
                "median_ms": statistics.median(values), "min_ms": min(values), "rounds": rounds,
            })
    return results


def add_ratios(results: list[dict]) -> None:
    """GB/s, share of the same-bytes read bandwidth, and speed-ups over numpy/faiss/edge f32."""
    by_key = {(r["rows"], r["batch"], r["method"]): r for r in results}
    for r in results:
        r["gb_per_s"] = r["bytes"] / r["median_ms"] / 1e6
    for r in results:
        key = (r["rows"], r["batch"])
        read = by_key.get((*key, f"read {r['stream']} bytes"))
        if read and not r["method"].startswith("read"):
            r["share_of_read_bw"] = r["gb_per_s"] / read["gb_per_s"]
        for base in ("numpy", "faiss flat", "edge f32"):
            other = by_key.get((*key, base))
            if other and r["method"].startswith("edge") and r["method"] != base:
                r[f"speedup_vs_{base.replace(' ', '_')}"] = other["median_ms"] / r["median_ms"]


def table(results: list[dict]) -> str:
    headers = ["rows", "Q", "method", "median ms", "min ms", "GB/s", "% read bw", "x numpy", "x faiss", "x f32"]
    rows = []
    for r in results:
        def ratio(key):
            return f"{r[key]:.2f}" if key in r else ""
        rows.append([
            f"{r['rows']:,}", str(r["batch"]), r["method"], f"{r['median_ms']:.3f}", f"{r['min_ms']:.3f}",
            f"{r['gb_per_s']:.1f}", f"{100 * r['share_of_read_bw']:.0f}" if "share_of_read_bw" in r else "",
            ratio("speedup_vs_numpy"), ratio("speedup_vs_faiss_flat"), ratio("speedup_vs_edge_f32"),
        ])
    return format_table(headers, rows)


def done_when(results: list[dict], agreement: dict | None) -> list[str]:
    """The issue's acceptance figures at 1M x 128: one query, and int8 also with 8."""
    by = {(r["rows"], r["batch"], r["method"]): r for r in results}
    f32 = by.get((1_000_000, 1, "edge f32"))
    lines = []

    def check(label, value, goal, fmt="{:.2f}"):
        mark = "ok" if value >= goal else "NOT MET"
        lines.append(f"{label}: {fmt.format(value)} (goal >= {fmt.format(goal)})  {mark}")

    if f32:
        check("1M f32 Q=1 speed-up over numpy", f32["speedup_vs_numpy"], 1.2)
        if "speedup_vs_faiss_flat" in f32:
            check("1M f32 Q=1 speed-up over faiss flat", f32["speedup_vs_faiss_flat"], 2.0)
        check("1M f32 Q=1 share of read bandwidth", f32["share_of_read_bw"], 0.8, "{:.0%}")
    for batch in (1, 8):  # int8 rows are a quarter of the bytes: the int8 kernel should show most of it
        i8 = by.get((1_000_000, batch, "edge i8"))
        if i8 and "speedup_vs_edge_f32" in i8:
            check(f"1M i8 Q={batch} speed-up over f32", i8["speedup_vs_edge_f32"], 3.0)
    if agreement:
        check("int8 top-1 identity equal to float32 (LFW, worst of Q=1, 8)", agreement["agreement"], 0.999, "{:.4%}")
    return lines


def gallery_timings(n: int, seed: int, rounds: int) -> list[dict]:
    """Build an on-disk gallery of n rows (float32 and int8), then time open and search."""
    from edge.gallery.store import Gallery
    from edge.gallery.topk import top_k

    out = []
    rows = unit_rows(n, seed)
    queries = queries_near(rows, None, 1, seed)
    directory = Path(tempfile.mkdtemp(prefix="edge-search-bench-"))
    try:
        for dtype in ("float32", "int8"):  # load the compiled kernels first: time the gallery, not numba
            with Gallery.create(directory / f"warm-{dtype}", "bench", dtype=dtype) as warm:
                warm.append(rows[:4], ["x"] * 4)
                top_k(warm.view().matrix, queries, 1, warm.view().scales)
        for dtype in ("float32", "int8"):
            path = directory / dtype
            start = time.perf_counter()
            with Gallery.create(path, "bench", dtype=dtype) as writer:
                for first in range(0, n, 1 << 18):
                    block = rows[first:first + (1 << 18)]
                    writer.append(block, [f"person {first + i}" for i in range(block.shape[0])])
            build = time.perf_counter() - start
            start = time.perf_counter()
            reader = Gallery.open(path, "bench")
            opened = (time.perf_counter() - start) * 1e3
            view = reader.view()
            start = time.perf_counter()
            top_k(view.matrix, queries, K, view.scales, view.valid)
            first_search = (time.perf_counter() - start) * 1e3
            times = timed({"search": lambda: top_k(view.matrix, queries, K, view.scales, view.valid)}, rounds)
            out.append({
                "rows": n, "dtype": dtype, "build_s": build, "open_ms": opened,
                "first_search_ms": first_search, "search_median_ms": statistics.median(times["search"]),
                "search_min_ms": min(times["search"]),
            })
            reader.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000],
                        help="gallery rows, float32 and int8 (default 1k 100k 1M)")
    parser.add_argument("--int8-sizes", type=int, nargs="*", default=[],
                        help="extra sizes in int8 only, e.g. 10000000")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="queries per call")
    parser.add_argument("--rounds", type=int, default=30, help="timed calls per method")
    parser.add_argument("--passes", type=int, default=5,
                        help="passes over the methods the rounds are split into (see timed)")
    parser.add_argument("--threads", type=int, help="numba (and faiss) threads (default: numba's, all cores)")
    parser.add_argument("--no-faiss", action="store_true", help="leave faiss out even if installed")
    parser.add_argument("--gallery", action="store_true", help="also time an on-disk gallery of the largest size")
    parser.add_argument("--agreement", action="store_true", help="int8 vs float32 top-1 identity on LFW")
    parser.add_argument("--distractors", type=int, default=1_000_000, help="random rows added for --agreement")
    parser.add_argument("--embedder", choices=["edge", "reference"], default="edge",
                        help="who embeds LFW for --agreement (reference: OpenCV YuNet + SFace)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import numba

    faiss = None
    if not args.no_faiss:
        try:
            import faiss
        except ImportError:
            print("faiss not installed: its rows are left out", file=sys.stderr)
    if args.threads:
        numba.set_num_threads(args.threads)
    threads = numba.get_num_threads()
    if faiss is not None:
        faiss.omp_set_num_threads(threads)
    env = environment()
    env["versions"]["faiss-cpu"] = package_version("faiss-cpu")
    env["numba_threads"] = threads
    env["numba_threading_layer"] = None
    read_sum = read_sum_kernel()

    results = []
    for n in args.sizes:
        results += run_size(n, args.batches, args.rounds, args.passes, True, faiss, args.seed, read_sum, threads)
    for n in args.int8_sizes:
        results += run_size(n, args.batches, args.rounds, args.passes, False, None, args.seed, read_sum, threads)
    env["numba_threading_layer"] = numba.threading_layer()
    add_ratios(results)

    galleries = gallery_timings(max(args.sizes), args.seed, args.rounds) if args.gallery else []
    agreement = None
    if args.agreement:
        from benchmarks.search_agreement import int8_agreement, lfw_embeddings

        names, embeddings = lfw_embeddings(embedder=args.embedder)
        agreement = int8_agreement(names, embeddings, args.distractors, args.seed)
        agreement["embedder"] = args.embedder

    print(header(env, f"top-{K} search, {DIM}-d, {threads} numba threads ({env['numba_threading_layer']}), "
                      f"faiss {env['versions']['faiss-cpu']}"))
    print()
    print(table(results))
    for g in galleries:
        print(f"\non-disk {g['dtype']} gallery, {g['rows']:,} rows: built in {g['build_s']:.1f} s, "
              f"opened in {g['open_ms']:.1f} ms, first search {g['first_search_ms']:.1f} ms, "
              f"then median {g['search_median_ms']:.2f} ms (min {g['search_min_ms']:.2f})")
    if agreement:
        each = ", ".join(f"Q={size}: {b['agree']}/{agreement['queries']} ({b['agreement']:.4%})"
                         for size, b in agreement["by_batch"].items())
        print(f"\nint8 vs float32 on LFW ({agreement['embedder']} embeddings): queries that agree, "
              f"int8 searched Q at a time: {each}; {agreement['lfw_faces']} faces + {agreement['distractors']:,} "
              f"random distractors; top-1 accuracy float32 {agreement['top1_accuracy_float32']:.4f}, "
              f"int8 {agreement['top1_accuracy_int8']:.4f}")
    print()
    print("\n".join(done_when(results, agreement)))
    if args.json:
        args.json.write_text(json.dumps(
            {"environment": env, "k": K, "dim": DIM, "results": results, "galleries": galleries,
             "agreement": agreement}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
