"""Scenes for tests/test_detect.py, and the faces found in them recorded as a fixture.

    .venv/bin/python tests/detect_scenes.py tests/fixtures/detections.json

records, for every model set, the faces the detector of the checkout it is
run in finds in scenes(): run it with the code of before a change to the
detector (a worktree of the old revision), and test_detect holds the change
to what the old code found. Recorded at 2a97338, on x86-64 (see
test_detect for the slack allowed on other CPUs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

FACES = Path(__file__).parent / "fixtures" / "faces"


def scenes() -> dict[str, np.ndarray]:
    """BGR images with faces where the pieces meet: borders, odd sizes, many small faces."""
    photos = {name: cv2.imread(str(FACES / f"{name}.jpg")) for name in ("obama", "obama2", "obama3", "biden")}

    def fit(image: np.ndarray, height: int) -> np.ndarray:
        width = round(image.shape[1] * height / image.shape[0])
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)

    def gradient(width: int, height: int) -> np.ndarray:
        shades = np.linspace(190, 110, height, dtype=np.float32)[:, None, None]
        return np.broadcast_to(shades, (height, width, 3)).astype(np.uint8).copy()

    door = gradient(640, 480)
    face = fit(photos["obama"], 300)
    door[90:390, 320 - face.shape[1] // 2 : 320 - face.shape[1] // 2 + face.shape[1]] = face
    # An odd-sized frame with a face cut off by its right edge and one by its
    # bottom edge: on every pyramid level they touch the last columns and rows.
    corner = gradient(643, 481)
    right = fit(photos["biden"], 330)[:, :96]
    corner[40 : 40 + right.shape[0], 643 - right.shape[1] :] = right
    bottom = fit(photos["obama"], 300)[:106]
    corner[481 - bottom.shape[0] :, 200 : 200 + bottom.shape[1]] = bottom
    # Small faces, from 24 to 70 px, on noise: many P-Net candidates, long R-Net batches.
    rng = np.random.default_rng(7)
    crowd = cv2.GaussianBlur(rng.integers(0, 256, (355, 517, 3), dtype=np.uint8), (0, 0), 1.5)
    x = 4
    for name, height in zip(("obama", "obama2", "obama3", "biden", "obama", "biden"), (40, 55, 70, 90, 110, 130)):
        small = fit(photos[name], height)
        y = 355 - height - 3 * x % 60
        crowd[y : y + height, x : x + small.shape[1]] = small
        x += small.shape[1] + 9
    pair = np.concatenate([fit(photos["obama"], 400), fit(photos["biden"], 400)], axis=1)
    return {"door": door, "corner": corner, "crowd": crowd, "pair": pair}


def as_rows(faces) -> list[list[float]]:
    """Each face as x1, y1, x2, y2, score, then the five landmarks' x, y."""
    return [[*f.box.as_list(), f.score, *np.ravel(f.landmarks)] for f in faces]


def record(path: Path) -> None:
    """Write the faces the detector importable here finds in scenes(), per model set."""
    from edge.perception.detect import MtcnnDetector
    from edge.perception.litert import TfliteModel
    from edge.perception.modelset import MODEL_SETS, default_models_dir, model_files
    from edge.perception.settings import DetectorSettings, RuntimeSettings

    found = {}
    for model_set in sorted(MODEL_SETS):
        files = model_files(default_models_dir(), model_set)
        runtime = RuntimeSettings(num_threads=2)
        mtcnn = MtcnnDetector(*(TfliteModel(p, runtime) for p in (files.pnet, files.rnet, files.onet)),
                              DetectorSettings())
        found[model_set] = {name: as_rows(mtcnn.detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
                            for name, image in scenes().items()}
    path.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    record(Path(sys.argv[1]))
