"""The `edge` command: one entry point, one subcommand per job.

Exit status: 0 done; 1 done, but some input could not be used (a photo with
no face, an unreadable file); 2 bad usage, config or models.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edge.config import ConfigError, Config, load_config
from edge.imageio import ImageError
from edge.perception.runtime import DelegateError, ModelError

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        return args.handler(args, config)
    except (ConfigError, ModelError, DelegateError) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("edge: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Face recognition for the door.")
    parser.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, handler, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(handler=handler)
    return parser


# --- verify -----------------------------------------------------------------


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="two photos to compare")
    p.add_argument("--pairs", type=Path, help="CSV with path_a,path_b[,same] columns")
    p.add_argument("--root", type=Path, default=Path("."), help="folder the CSV paths are relative to")
    p.add_argument("--threshold", type=float, help="cosine similarity for 'same person' (default from config)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")


def _verify(args: argparse.Namespace, config: Config) -> int:
    from edge.verification import compare, embed_photos, read_pairs

    recognition = config.recognition
    threshold = recognition.match_threshold if args.threshold is None else args.threshold
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError("--threshold must be within -1..1")
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
    workers = 1 if len(unique) <= 2 else args.workers
    photos = dict(zip(unique, embed_photos(unique, recognition, workers)))
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
        return f"{result.path_a} {result.path_b}: not compared: {reasons}"
    verdict = "same person" if result.same else "different people"
    sign = ">=" if result.same else "<"
    return f"{result.path_a} {result.path_b}: {verdict} (similarity {result.similarity:.3f} {sign} {threshold:.3f})"


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


CommandSpec = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Config], int], str]

COMMANDS: dict[str, CommandSpec] = {
    "verify": (_verify_arguments, _verify, "compare the main faces of two photos (or a CSV of pairs)"),
}


if __name__ == "__main__":
    sys.exit(main())
