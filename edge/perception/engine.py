"""FaceEngine: the public face of perception, in the order data flows.

    engine = FaceEngine.open(models_dir, "float32")
    faces = engine.detect(image)             # list[Face], most confident first
    vectors = engine.embed(image, faces)     # (len(faces), 128) unit float32
    similarity = float(vectors[0] @ other)   # cosine similarity, -1..1

Images are (H, W, 3) uint8 BGR as OpenCV reads them (see edge.types).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.perception.align import align_face
from edge.perception.detect import DetectorSettings, MtcnnDetector
from edge.perception.embed import Embedder
from edge.perception.modelset import DEFAULT_MODEL_SET, model_files
from edge.perception.runtime import RuntimeOptions, TfliteModel
from edge.types import Face

DEFAULT_MATCH_THRESHOLD = 0.36
"""Cosine similarity at or above which two faces are taken as the same person."""


@dataclass(frozen=True, slots=True)
class Subject:
    """The main face of a photo and its embedding."""

    face: Face
    embedding: np.ndarray


class FaceEngine:
    """Detect, align and embed faces with one model set loaded once."""

    def __init__(
        self,
        detector: MtcnnDetector,
        embedder: Embedder,
        detect_max_side: int = 1280,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.detect_max_side = detect_max_side

    @classmethod
    def open(
        cls,
        models_dir: Path,
        model_set: str = DEFAULT_MODEL_SET,
        runtime: RuntimeOptions | None = None,
        detector: DetectorSettings | None = None,
        flip_average: bool = False,
        detect_max_side: int = 1280,
    ) -> FaceEngine:
        """Load the model set's four networks from ``models_dir`` (checked against its manifest)."""
        runtime = runtime or RuntimeOptions()
        files = model_files(Path(models_dir), model_set)
        mtcnn = MtcnnDetector(
            TfliteModel(files.pnet, runtime),
            TfliteModel(files.rnet, runtime),
            TfliteModel(files.onet, runtime),
            detector or DetectorSettings(),
        )
        return cls(mtcnn, Embedder(TfliteModel(files.embed, runtime), flip_average), detect_max_side)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face in ``image``, most confident first; [] when there is none.

        Images larger than detect_max_side are searched on a downscaled copy;
        the faces come back in the full image's pixels.
        """
        _check_image(image)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        factor = min(1.0, self.detect_max_side / max(rgb.shape[:2]))
        if factor < 1.0:
            small = (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor))
            rgb = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA)
        faces = self.detector.detect(rgb)
        return [f.scaled(1.0 / factor) for f in faces] if factor < 1.0 else faces

    def align(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(n, 112, 112, 3) uint8 RGB aligned crops, from the full-resolution image."""
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        crops = np.empty((len(faces), 112, 112, 3), np.uint8)
        for i, face in enumerate(faces):
            crops[i] = align_face(rgb, face)
        return crops

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(len(faces), D) float32 unit embeddings of ``faces`` in ``image``."""
        _check_image(image)
        return self.embedder.embed(self.align(image, faces))

    def subject(self, image: np.ndarray, faces: list[Face] | None = None) -> Subject | None:
        """The photo's main subject and its embedding, or None when there is no face.

        ``faces`` are the image's detections when the caller already has them.
        """
        if faces is None:
            faces = self.detect(image)
        face = main_face(faces, image.shape[1], image.shape[0])
        if face is None:
            return None
        return Subject(face, self.embed(image, [face])[0])


def main_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The face a photo is 'of': large and near the centre, over a bystander.

    Each face is scored by twice its size less its distance from the centre,
    both in units of the image diagonal (a pixel of face size outweighs two
    pixels of distance), so a big face at the edge still beats a tiny one in
    the middle, and of two similar faces the more central one wins.
    """
    if not faces:
        return None
    diagonal = math.hypot(width, height)
    cx, cy = width / 2.0, height / 2.0

    def score(face: Face) -> float:
        fx, fy = face.box.center
        offset = math.hypot(fx - cx, fy - cy) / diagonal
        return 2.0 * face.box.size / diagonal - offset

    return max(faces, key=score)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("expected an (H, W, 3) BGR image array")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
