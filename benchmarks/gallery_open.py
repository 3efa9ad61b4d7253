"""What verifying gallery rows costs a reader: open, refresh, view, compaction and check.

Readers verify every row they map (checksum, int8 scale, length; see
edge.gallery.store) so that a damaged row can never name anyone. This
measures what that costs, for float32 and int8 galleries of random unit
rows, in one run:

- open: Gallery.open, which verifies every committed row (median of 3);
- refresh: the first view() after another process appends 100 rows (only
  those are verified; median of 5);
- idle view(): nothing changed (median of 1,000);
- after compaction: the first view() once a writer compacted (all rows again);
- check(): the full integrity check of `edge gallery check`.

    .venv/bin/python benchmarks/gallery_open.py [--rows 1000000] [--json out.json]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import environment, format_table, header  # noqa: E402
from benchmarks.search import unit_rows  # noqa: E402
from edge.gallery.store import Gallery  # noqa: E402

BLOCK = 1 << 18
"""Rows appended per transaction while building the test galleries."""


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(path: Path, rows, dtype: str) -> dict:
    with Gallery.create(path, "bench", dtype=dtype) as writer:
        for first in range(0, len(rows), BLOCK):
            block = rows[first:first + BLOCK]
            writer.append(block, [f"person {first + i}" for i in range(len(block))])
    opens = [timed(lambda: Gallery.open(path, "bench").close()) for _ in range(3)]
    with Gallery.open(path, "bench") as reader, Gallery.open(path, "bench", writable=True) as writer:
        refreshes = []
        for _ in range(5):
            writer.append(rows[:100], ["x"] * 100)
            refreshes.append(timed(reader.view))
        idle = [timed(reader.view) for _ in range(1000)]
        writer.delete([5])
        compaction = timed(writer.compact)
        after_compaction = timed(reader.view)
        check = timed(reader.check)
    return {
        "dtype": dtype, "rows": len(rows), "open_ms": statistics.median(opens) * 1e3,
        "refresh_after_100_rows_ms": statistics.median(refreshes) * 1e3, "idle_view_us": statistics.median(idle) * 1e6,
        "compaction_s": compaction, "first_view_after_compaction_ms": after_compaction * 1e3, "check_s": check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = environment()
    rows = unit_rows(args.rows, 0)
    work = Path(tempfile.mkdtemp(prefix="edge-gallery-open-"))
    try:
        results = [measure(work / dtype, rows, dtype) for dtype in ("float32", "int8")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(header(env, "Gallery rows verified by readers"))
    print()
    print(format_table(
        ["dtype", "rows", "open ms", "refresh +100 rows ms", "idle view us", "compaction s", "view after compaction ms",
         "check s"],
        [[r["dtype"], f"{r['rows']:,}", f"{r['open_ms']:.0f}", f"{r['refresh_after_100_rows_ms']:.2f}",
          f"{r['idle_view_us']:.1f}", f"{r['compaction_s']:.1f}", f"{r['first_view_after_compaction_ms']:.0f}",
          f"{r['check_s']:.2f}"] for r in results],
    ))
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": results}, indent=2))


if __name__ == "__main__":
    main()
