"""`edge identify PATH... --gallery G`: who is in each photo, face by face.

Output like the classic face_recognition CLI, one `path,name` line per face
(`unknown_person` below the threshold, `no_persons_found` for a photo with
no face), or with --json one line per photo:
{"path", "faces": [{"box", "score", "name", "similarity", "nearest"}]}, and
{"path", "error"} for a file that could not be read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.similarity import is_match
from edge.cli.common import EXIT_INPUT, EXIT_OK, gallery_path, search_settings
from edge.config import Config
from edge.imageio import IMAGE_SUFFIXES, ImageError, load_image


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="photos, or folders of photos")
    p.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    p.add_argument("--threshold", type=float, help="cosine similarity to accept a match (default: [search] match_threshold)")
    p.add_argument("--k", type=int, help="decide by a majority vote of the K nearest samples (default: [search] vote)")
    p.add_argument("--json", action="store_true", help="one JSON line per photo")


def run(args: argparse.Namespace, config: Config) -> int:
    from edge.gallery.search import identify, search
    from edge.gallery.store import Gallery
    from edge.perception.engine import FaceEngine
    from edge.perception.modelset import embedding_model_id
    from edge.perception.photos import find_faces

    settings = search_settings(config, args.threshold, args.k)
    gallery = Gallery.open(gallery_path(args.gallery, config), model_id=embedding_model_id(config.recognition))
    engine = FaceEngine.open(config.recognition)
    failures = 0
    try:
        for path in _photos(args.paths):
            try:
                image = load_image(path)
            except ImageError as exc:
                failures += 1
                _print_error(args.json, path, str(exc))
                continue
            faces = find_faces(engine, image)
            results = []
            if faces:
                vectors = engine.embed(image, faces)
                nearest = search(gallery, vectors, k=1)
                if settings.vote is None:  # the nearest already found answer it
                    chosen = [n[0] if n and is_match(n[0].similarity, settings.match_threshold) else None
                              for n in nearest]
                else:
                    chosen = identify(gallery, vectors, settings)
                for face, near, match in zip(faces, nearest, chosen):
                    results.append({
                        "box": face.box.as_list(),
                        "score": round(face.score, 4),
                        "name": match.name if match else None,
                        "similarity": round(near[0].similarity, 4) if near else None,
                        "nearest": near[0].name if near else None,
                    })
            _print_result(args.json, path, results)
    finally:
        gallery.close()
    return EXIT_OK if failures == 0 else EXIT_INPUT


def _photos(paths: list[Path]):
    """Each photo path in order; folders give their images in name order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def _print_result(as_json: bool, path: Path, faces: list[dict]) -> None:
    if as_json:
        print(json.dumps({"path": str(path), "faces": faces}), flush=True)
    elif not faces:
        print(f"{path},no_persons_found", flush=True)
    else:
        for face in faces:
            print(f"{path},{face['name'] or 'unknown_person'}", flush=True)


def _print_error(as_json: bool, path: Path, error: str) -> None:
    if as_json:
        print(json.dumps({"path": str(path), "error": error}), flush=True)
    else:
        print(f"{path},error: {error}", flush=True)
