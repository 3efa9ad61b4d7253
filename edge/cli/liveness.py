"""`edge liveness PATH...`: is each face in the photos a live face, or a photo or a screen?

Every face of each photo is scored by the liveness models (edge.perception.liveness,
[recognition.liveness]): ``score`` is the probability that it is live (0..1), and
``live`` whether that is at or above the threshold (--threshold, else the config's).
Output as CSV, one `path,x1,y1,x2,y2,score,live` line per face (`path,no_persons_found`
for a photo with no face, `path,error: ...` for a file that could not be used), or
with --json one line per photo: {"path", "faces": [{"box", "score", "live"}]}, and
{"path", "error"}. The same photos, folders and errors as `edge identify`: a bad file
never stops the run, and the exit status is 1 when some photo could not be used or has
no face.

A photo handed to this command is, of course, a photo: what it tells is whether the
face in it *looks* live to the models, as a camera frame of that scene would.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cli.common import (EXIT_INPUT, EXIT_OK, add_workers_option, csv_line, liveness_settings, photo_paths)
from edge.config import Config
from edge.imageio import shown


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="photos, or folders of photos")
    p.add_argument("--threshold", type=float,
                   help="probability of live (0..1) at or above which a face is live "
                        "(default: [recognition.liveness] threshold)")
    add_workers_option(p)
    p.add_argument("--json", action="store_true", help="one JSON line per photo")


def run(args: argparse.Namespace, config: Config) -> int:
    from edge.perception.photos import embed_photos

    recognition = liveness_settings(config, args.threshold)
    entries = list(photo_paths(args.paths))
    photos = [str(path) for path, problem in entries if not problem]
    unused = 0  # photos unreadable or without a face
    results = embed_photos(photos, recognition, args.workers, rule="every", liveness=True)
    for path, problem in entries:
        result = None if problem else next(results)
        if problem or result.error:
            unused += 1
            _print(args.json, path, error=problem or result.error)
            continue
        faces = [{"box": face.box.as_list(), "score": round(face.liveness.score, 4), "live": face.liveness.live}
                 for face in result.faces]
        unused += not faces
        _print(args.json, path, faces=faces)
    return EXIT_OK if unused == 0 else EXIT_INPUT


def _print(as_json: bool, path: Path, faces: list[dict] | None = None, error: str | None = None) -> None:
    if as_json:
        found = {"error": error} if error is not None else {"faces": faces}
        print(json.dumps({"path": shown(path), **found}), flush=True)
    elif error is not None:
        csv_line(path, f"error: {error}")
    elif not faces:
        csv_line(path, "no_persons_found")
    else:
        for face in faces:
            csv_line(path, *face["box"], face["score"], "true" if face["live"] else "false")
