"""Gallery build throughput: `edge gallery build` on LFW (13,233 photos, a folder per person).

Reports photos per second (wall time, model loading included), what was
enrolled and skipped, and peak RSS of the main process and of the largest
worker process. For the photos with several faces enrolled by matching the
person's other photos (``matched``) or by their main subject's position
(``review``; not with --strict), it checks the face taken against LFW's
labelling: the images are centred on the named person, so the right face is
the one whose box centre lies within CENTRE_TOLERANCE pixels of the image centre.

    .venv/bin/python benchmarks/build.py [--lfw ../shared/data/lfw] [--workers N] [--strict] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import environment, header  # noqa: E402

CENTRE_TOLERANCE = 30.0
"""Pixels from the centre of a 250x250 LFW image within which a face is the labelled person's."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--strict", action="store_true", help="as `edge gallery build --strict`")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from edge.config import Config
    from edge.enrollment.dataset import build_gallery

    env = environment()
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        config = Config()
        report = build_gallery(args.lfw, Path(work) / "lfw.gallery", config.recognition,
                               dtype=config.gallery.dtype, workers=args.workers, strict=args.strict,
                               match_threshold=config.search.match_threshold)
        seconds = time.perf_counter() - started
        size_mib = sum(f.stat().st_size for f in (Path(work) / "lfw.gallery").iterdir()) / 2**20
    photos = sum(report.enrolled.values()) + len(report.skipped)
    reasons = Counter(s.reason.split(":")[0] for s in report.skipped)
    off_centre = [m for m in report.matched if _off_centre(m.box)]
    result = {
        "photos": photos, "enrolled": sum(report.enrolled.values()), "identities": len(report.enrolled),
        "skipped": dict(reasons),
        "matched_by_person": len(report.matched),
        "matched_off_centre": [{"path": m.path, "box": m.box.as_list(), "similarity": round(m.similarity, 3)}
                               for m in off_centre],
        "review_by_position": len(report.review),
        "review_off_centre": [{"path": r.path, "box": r.box.as_list()} for r in report.review if _off_centre(r.box)],
        "seconds": round(seconds, 1), "photos_per_second": round(photos / seconds, 1),
        "workers": args.workers, "gallery_mib": round(size_mib, 1),
        "peak_rss_main_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_worker_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    print(header(env, "Gallery build throughput (LFW)"))
    print(f"data:     {args.lfw}; default config (model set float16); {args.workers} worker process(es)\n")
    for key, value in result.items():
        print(f"{key:20s} {value}")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "result": result}, indent=2))
    return 0


def _off_centre(box) -> bool:
    """Whether the box's centre is more than CENTRE_TOLERANCE px from a 250x250 LFW image's centre (either axis)."""
    return max(abs(c - 125.0) for c in box.center) > CENTRE_TOLERANCE


if __name__ == "__main__":
    sys.exit(main())
