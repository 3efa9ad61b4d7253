"""`edge find IMAGE --gallery G`: the enrolled photos of the person in IMAGE, best first.

The person is the photo's main face (large and central). A sample matches
when its cosine similarity reaches the threshold; --nearest lists the
nearest samples even when none does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from edge.similarity import is_match
from edge.cli.common import EXIT_INPUT, EXIT_OK, csv_line, gallery_path, search_settings
from edge.config import Config, ConfigError
from edge.imageio import shown


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", type=Path, metavar="IMAGE")
    p.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    p.add_argument("--threshold", type=float, help="cosine similarity to count as a match (default: [search] match_threshold)")
    p.add_argument("--max", type=int, default=20, help="at most this many results (default: %(default)s)")
    p.add_argument("--nearest", action="store_true", help="list the nearest samples even below the threshold")
    p.add_argument("--distances", action="store_true", help="show the similarity of each result")
    p.add_argument("--copy-to", type=Path, metavar="DIR", help="copy the matching source photos into DIR")
    p.add_argument("--json", action="store_true", help="one JSON object")


def run(args: argparse.Namespace, config: Config) -> int:
    from edge.gallery.search import nearest_samples
    from edge.gallery.store import Gallery
    from edge.perception.engine import FaceEngine
    from edge.perception.modelset import embedding_model_id
    from edge.perception.photos import photo_result

    threshold = search_settings(config, args.threshold).match_threshold
    if not 1 <= args.max <= 10_000:
        raise ConfigError("--max must be 1..10000")
    gallery = Gallery.open(gallery_path(args.gallery, config), model_id=embedding_model_id(config.recognition))
    try:
        subject = photo_result(FaceEngine.open(config.recognition), str(args.image),
                               max_pixels=config.recognition.max_image_pixels)
        if subject.embedding is None:
            print(json.dumps({"path": shown(args.image), "error": subject.error}) if args.json else f"edge: {subject.error}",
                  file=sys.stdout if args.json else sys.stderr)
            return EXIT_INPUT
        found = nearest_samples(gallery, subject.embedding, args.max)
    finally:
        gallery.close()
    if not args.nearest:
        found = [m for m in found if is_match(m.similarity, threshold)]
    copied = _copy(found, args.copy_to) if args.copy_to else []
    if args.json:
        print(json.dumps({
            "path": shown(args.image), "box": subject.box.as_list(), "threshold": threshold,
            "matches": [{"name": m.name, "source": m.source, "similarity": round(m.similarity, 4),
                         "match": is_match(m.similarity, threshold)} for m in found],
            "copied": copied,
        }))
    else:
        for m in found:
            source = m.source or f"(row {m.row}, no source)"
            csv_line(source, m.name, *([f"{m.similarity:.4f}"] if args.distances else []))
        if not found:
            print(f"{shown(args.image)}: nobody in the gallery within {threshold:.3f}", file=sys.stderr)
    return EXIT_OK


def _copy(found, folder: Path) -> list[str]:
    """Copy each match's source photo into ``folder`` (numbered by rank so names never clash)."""
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for rank, match in enumerate(found, start=1):
        if match.source and Path(match.source).is_file():
            target = folder / f"{rank:03d}_{match.name}_{Path(match.source).name}"
            shutil.copy2(match.source, target)
            copied.append(str(target))
    return copied
