"""Aligned face crops for calibrating the int8 embedder, made by edge's own pipeline.

The int8 SFace model must be calibrated on crops like those it will see at run
time, so this script runs the float32 MTCNN models and the project's alignment
on LFW photos that are NOT in pairs.csv (the accuracy benchmark stays clean),
and writes a (N, 112, 112, 3) uint8 RGB array:

    python models/make_calibration.py --lfw ../shared/data/lfw --count 1000 --out /tmp/edge_calib_crops.npy

Then: python models/convert_sface.py --wheel ... --calib /tmp/edge_calib_crops.npy
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
from pathlib import Path

import cv2
import numpy as np

from edge.imageio import load_image
from edge.perception.align import align_face
from edge.perception.detect import MtcnnDetector
from edge.perception.litert import TfliteModel
from edge.perception.settings import DetectorSettings, RuntimeSettings
from edge.perception.subject import main_face

log = logging.getLogger("make_calibration")


def calibration_photos(lfw: Path, count: int, seed: int) -> list[Path]:
    """``count`` LFW photos not used by pairs.csv, at most two per person, chosen with ``seed``."""
    with open(lfw / "pairs.csv", newline="") as f:
        used = {p for row in csv.DictReader(f) for p in (row["path_a"], row["path_b"])}
    candidates = []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        photos = [p for p in sorted(person.glob("*.jpg")) if f"{person.name}/{p.name}" not in used]
        candidates.extend(photos[:2])
    random.Random(seed).shuffle(candidates)
    return candidates[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/lfw")
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--out", type=Path, default=Path("/tmp/edge_calib_crops.npy"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    options = RuntimeSettings(num_threads=2)
    detector = MtcnnDetector(
        *(TfliteModel(args.models / f"mtcnn_{net}_float32.tflite", options) for net in ("pnet", "rnet", "onet")),
        DetectorSettings(),
    )
    crops = []
    for path in calibration_photos(args.lfw, args.count, args.seed):
        rgb = cv2.cvtColor(load_image(path), cv2.COLOR_BGR2RGB)
        face = main_face(detector.detect(rgb), rgb.shape[1], rgb.shape[0])
        if face is not None:
            crops.append(align_face(rgb, face))
    array = np.stack(crops).astype(np.uint8)
    np.save(args.out, array)
    log.info("wrote %d crops to %s", len(array), args.out)


if __name__ == "__main__":
    main()
