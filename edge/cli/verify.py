"""`edge verify`: is the main subject of photo A the same person as that of photo B?"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edge.cli.common import EXIT_INPUT, EXIT_OK, add_workers_option, search_settings
from edge.config import Config, ConfigError
from edge.imageio import shown


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="two photos to compare")
    p.add_argument("--pairs", type=Path, help="CSV with path_a,path_b[,same] columns")
    p.add_argument("--root", type=Path, default=Path("."), help="folder the CSV paths are relative to")
    p.add_argument("--threshold", type=float, help="cosine similarity for 'same person' (default from config)")
    add_workers_option(p)
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")


def run(args: argparse.Namespace, config: Config) -> int:
    from edge.perception.photos import embed_photos
    from edge.verification import compare, read_pairs

    recognition = config.recognition
    threshold = search_settings(config, args.threshold).match_threshold
    if args.pairs is None:
        if len(args.images) != 2:
            raise ConfigError("verify takes two images, or --pairs CSV")
        pairs = [(str(args.images[0]), str(args.images[1]), None)]
    else:
        if args.images:
            raise ConfigError("give either two images or --pairs, not both")
        try:
            pairs = [(str(args.root / a), str(args.root / b), same) for a, b, same in read_pairs(args.pairs)]
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read pairs: {exc}") from None

    started = time.perf_counter()
    unique = list(dict.fromkeys(p for a, b, _ in pairs for p in (a, b)))
    photos = dict(zip(unique, embed_photos(unique, recognition, args.workers)))
    results = [(compare(photos[a], photos[b], threshold), same) for a, b, same in pairs]

    for result, _ in results:
        if args.json:
            print(json.dumps(result.to_dict()))
        else:
            print(_verify_text(result, threshold))
    summary = _verify_summary(results, threshold, time.perf_counter() - started, len(unique))
    if args.json and args.pairs is not None:
        print(json.dumps({"summary": summary}))
    elif args.pairs is not None:
        print(", ".join(f"{k}={v}" for k, v in summary.items()))
    return EXIT_OK if summary["unscored"] == 0 else EXIT_INPUT


def _verify_text(result, threshold: float) -> str:
    if result.similarity is None:
        reasons = "; ".join(e for e in (result.a.error, result.b.error) if e)
        return f"{shown(result.path_a)} {shown(result.path_b)}: not compared: {reasons}"
    verdict = "same person" if result.same else "different people"
    sign = ">=" if result.same else "<"
    return f"{shown(result.path_a)} {shown(result.path_b)}: {verdict} (similarity {result.similarity:.3f} {sign} {threshold:.3f})"


def _verify_summary(results, threshold: float, seconds: float, photos: int) -> dict:
    scored = [(r, same) for r, same in results if r.similarity is not None]
    summary = {
        "pairs": len(results),
        "scored": len(scored),
        "unscored": len(results) - len(scored),
        "photos": photos,
        "threshold": threshold,
        "seconds": round(seconds, 2),
    }
    labelled = [(r, same) for r, same in results if same is not None]
    if labelled:
        # An unscored pair counts as a wrong answer.
        correct = sum(1 for r, same in labelled if r.same is not None and r.same == same)
        summary["accuracy"] = round(correct / len(labelled), 5)
    return summary
