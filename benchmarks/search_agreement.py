"""Does int8 storage change who is recognised? A check on real face embeddings.

    .venv/bin/python benchmarks/search_agreement.py [--embedder reference] [--distractors N]

Every LFW photo with a face is embedded once (cached under ~/.cache/edge,
keyed by the embedder and its model file's sha256; LFW itself is never
copied). The
gallery holds all of those embeddings plus random unit vectors as
distractors; each photo of a person with at least two photos is a query,
its own row excluded, so its mates are hidden among everyone else and the
distractors. For each query the top-1 identity is found in the float32
gallery and in the same gallery stored as int8 (edge.gallery.fileformat's
encoding), and the two are compared; the int8 search is run one query per
call and 8 per call (--batches).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LFW = REPO.parent / "shared" / "data" / "lfw"
CACHE = Path.home() / ".cache" / "edge"


def embedder_sha256() -> str:
    """The manifest's sha256 of the default model set's embedder: the cache key."""
    from edge.perception.modelset import MODEL_SETS, default_models_dir
    from edge.perception.settings import RecognitionSettings

    config = RecognitionSettings()
    models_dir = config.models_dir or default_models_dir()
    manifest = json.loads((models_dir / "manifest.json").read_text())["models"]
    return manifest[f"sface_{MODEL_SETS[config.model_set]['embed']}.tflite"]["sha256"]


def lfw_embeddings(lfw: Path = LFW, embedder: str = "edge", workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(names (n,), embeddings (n, 128) float32) of every LFW photo where a face was found.

    embedder "edge": edge.perception.photos.embed_photos (MTCNN + SFace, this
    repository's models); "reference": benchmarks/reference.py (OpenCV's
    YuNet + the same SFace weights), for when the edge models are not usable.
    """
    paths = sorted(str(p) for p in lfw.glob("*/*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no LFW photos under {lfw}")
    if embedder == "edge":
        from edge.perception.photos import embed_photos
        from edge.perception.settings import RecognitionSettings

        key = embedder_sha256()
        results = ((r.path, r.embedding) for r in embed_photos(paths, RecognitionSettings(), workers=workers))
    elif embedder == "reference":
        from benchmarks import reference

        models = reference.reference_models()
        key = models.describe()["sface_sha256"]
        results = ((path, vector) for path, vector, _, _ in
                   reference.embed_photos(paths, models, workers or os.cpu_count() or 1))
    else:
        raise ValueError(f"embedder must be 'edge' or 'reference', not {embedder!r}")
    cache = CACHE / f"lfw_embeddings_{embedder}_{key[:16]}.npz"
    if cache.is_file():
        saved = np.load(cache)
        return saved["names"], saved["embeddings"]
    names, vectors = [], []
    for done, (path, vector) in enumerate(results, start=1):
        if vector is not None:
            names.append(Path(path).parent.name)
            vectors.append(vector)
        if done % 1000 == 0:
            print(f"  embedded {done}/{len(paths)} LFW photos", file=sys.stderr, flush=True)
    names, vectors = np.array(names), np.stack(vectors).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, names=names, embeddings=vectors)
    return names, vectors


def int8_agreement(names: np.ndarray, embeddings: np.ndarray, distractors: int, seed: int = 0,
                   batches: tuple[int, ...] = (1, 8)) -> dict:
    """Top-1 identity of each query in float32 and int8 galleries: how often they agree.

    The int8 search is run with each of ``batches`` queries per call (its kernel
    takes another path for one query than for several); the float32 answers,
    the same whatever the batch, are found 256 at a time. ``agree`` and
    ``agreement`` are the worst batch size's; ``by_batch`` has each.
    """
    from edge.gallery.fileformat import encode_rows
    from edge.gallery.topk import top_k

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((distractors, embeddings.shape[1]), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    rows = np.concatenate([embeddings, noise])
    labels = np.concatenate([names.astype(object), [f"distractor {i}" for i in range(distractors)]])
    codes, scales = encode_rows(rows, "int8")
    _, counts = np.unique(names, return_counts=True)
    multi = set(np.unique(names)[counts >= 2])
    queries = np.array([i for i, name in enumerate(names) if name in multi])

    def identities(matrix, scales, size):
        found = []
        for start in range(0, queries.size, size):
            batch = queries[start:start + size]
            found.append(top1_identity_batch(top_k(matrix, embeddings[batch], 2, scales)[1], batch, labels))
        return np.concatenate(found)

    float_ids = identities(rows, None, 256)
    truth = names[queries]
    by_batch = {}
    for size in batches:
        int8_ids = identities(codes, scales, size)
        agree = int((float_ids == int8_ids).sum())
        by_batch[size] = {"agree": agree, "agreement": agree / queries.size,
                          "top1_accuracy_int8": float((int8_ids == truth).mean())}
    worst = min(by_batch.values(), key=lambda b: b["agree"])
    return {
        "lfw_faces": int(len(names)),
        "distractors": int(distractors),
        "queries": int(queries.size),
        "agree": worst["agree"],
        "agreement": worst["agreement"],
        "by_batch": by_batch,
        "top1_accuracy_float32": float((float_ids == truth).mean()),
        "top1_accuracy_int8": worst["top1_accuracy_int8"],
    }


def top1_identity_batch(found: np.ndarray, queries: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The label of the best row that is not the query's own row (the query is in the
    gallery too, and normally its own best match)."""
    own = found[:, 0] == queries
    return labels[np.where(own, found[:, 1], found[:, 0])]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="int8 vs float32 top-1 identity on LFW embeddings")
    parser.add_argument("--embedder", choices=["edge", "reference"], default="edge")
    parser.add_argument("--distractors", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, help="embedding processes (default: all cores)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="queries per int8 search call")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names, embeddings = lfw_embeddings(embedder=args.embedder, workers=args.workers)
    print(json.dumps(int8_agreement(names, embeddings, args.distractors, args.seed, tuple(args.batches)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
