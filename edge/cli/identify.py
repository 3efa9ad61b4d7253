"""`edge identify PATH... --gallery G`: who is in each photo, face by face.

Output like the classic face_recognition CLI, one `path,name` line per face
(`unknown_person` below the threshold, `no_persons_found` for a photo with
no face, `error: ...` for a file that could not be used), as CSV (a field
with a comma, quote or newline is quoted), or with --json one line per photo:
{"path", "faces": [{"box", "score", "name", "similarity", "nearest"}]}, and
{"path", "error"} for a file that could not be used. With --liveness each face
also gets ``liveness`` (probability live, 0..1; ``score`` is already the
detector's) and ``live``, and a CSV line a third field, ``live`` or ``not_live``. Undecodable bytes of
a file name are shown as \\xNN. A bad file never stops the run. The photos
are spread over the cores (edge.perception.photos.batch_plan, --workers);
the output keeps their order.

Exit status 1 when some photo could not be used or has no face (README:
"some photo unreadable or without a usable face").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.similarity import is_match
from edge.cli.common import (EXIT_INPUT, EXIT_OK, add_workers_option, csv_line, gallery_path, liveness_settings,
                             photo_paths, search_settings)
from edge.config import Config
from edge.imageio import shown


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="photos, or folders of photos")
    p.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    p.add_argument("--threshold", type=float, help="cosine similarity to accept a match (default: [search] match_threshold)")
    p.add_argument("--k", type=int, help="decide by a majority vote of the K nearest samples (default: [search] vote)")
    add_workers_option(p)
    p.add_argument("--liveness", action="store_true",
                   help="also score each face: live, or a photo or a screen (edge liveness)")
    p.add_argument("--json", action="store_true", help="one JSON line per photo")


def run(args: argparse.Namespace, config: Config) -> int:
    import numba
    import numpy as np

    from edge.gallery.search import identify, search
    from edge.gallery.store import Gallery
    from edge.perception.modelset import embedding_model_id
    from edge.perception.photos import embed_photos

    settings = search_settings(config, args.threshold, args.k)
    recognition = liveness_settings(config) if args.liveness else config.recognition
    gallery = Gallery.open(gallery_path(args.gallery, config), model_id=embedding_model_id(config.recognition))
    entries = list(photo_paths(args.paths))
    photos = [str(path) for path, problem in entries if not problem]
    unused = 0  # photos unreadable or without a face
    # The photos take every core; a search beside them on more threads would only
    # take cores from them (and its threads would spin between searches).
    numba.set_num_threads(1)
    try:
        results = embed_photos(photos, recognition, args.workers, rule="every", liveness=args.liveness)
        for path, problem in entries:
            result = None if problem else next(results)
            if problem or result.error:
                unused += 1
                _print_error(args.json, path, problem or result.error)
                continue
            faces = []
            if result.faces:
                vectors = np.stack([face.embedding for face in result.faces])
                nearest = search(gallery, vectors, k=1)
                if settings.vote is None:  # the nearest already found answer it
                    chosen = [n[0] if n and is_match(n[0].similarity, settings.match_threshold) else None
                              for n in nearest]
                else:
                    chosen = identify(gallery, vectors, settings)
                for face, near, match in zip(result.faces, nearest, chosen):
                    faces.append({
                        "box": face.box.as_list(),
                        "score": round(face.score, 4),
                        "name": match.name if match else None,
                        "similarity": round(near[0].similarity, 4) if near else None,
                        "nearest": near[0].name if near else None,
                        **(liveness_fields(face.liveness) if args.liveness else {}),
                    })
            else:
                unused += 1
            _print_result(args.json, path, faces, args.liveness)
    finally:
        gallery.close()
    return EXIT_OK if unused == 0 else EXIT_INPUT


def liveness_fields(liveness) -> dict:
    """A face's liveness as the commands print it: ``liveness`` (probability live, 0..1) and ``live``."""
    return {"liveness": round(liveness.score, 4), "live": liveness.live}


def _print_result(as_json: bool, path: Path, faces: list[dict], liveness: bool) -> None:
    if as_json:
        print(json.dumps({"path": shown(path), "faces": faces}), flush=True)
    elif not faces:
        csv_line(path, "no_persons_found")
    else:
        for face in faces:
            live = ["live" if face["live"] else "not_live"] if liveness else []
            csv_line(path, face["name"] or "unknown_person", *live)


def _print_error(as_json: bool, path: Path, error: str) -> None:
    if as_json:
        print(json.dumps({"path": shown(path), "error": error}), flush=True)
    else:
        csv_line(path, f"error: {error}")
