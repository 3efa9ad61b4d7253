"""FaceEngine: the public face of perception, in the order data flows.

    engine = FaceEngine.open(RecognitionSettings(model_set="float32"))
    faces = engine.detect(image)             # list[Face], most confident first
    vectors = engine.embed(image, faces)     # (len(faces), 128) unit float32
    similarity = float(vectors[0] @ other)   # cosine similarity, -1..1

Images are (H, W, 3) uint8 BGR as OpenCV reads them (see edge.faces).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.perception.align import align_face
from edge.faces import Face
from edge.perception.detect import MtcnnDetector
from edge.perception.embed import Embedder
from edge.perception.lanes import Nets
from edge.perception.litert import TfliteModel
from edge.perception.modelset import ModelFiles, default_models_dir, model_files
from edge.perception.settings import RecognitionSettings
from edge.perception.subject import main_face

@dataclass(frozen=True, slots=True)
class Subject:
    """The main face of a photo and its embedding."""

    face: Face
    embedding: np.ndarray


class FaceEngine:
    """Detect, align and embed faces with one model set loaded once."""

    def __init__(self, detector: MtcnnDetector, embedder: Embedder) -> None:
        self.detector = detector
        self.embedder = embedder

    @classmethod
    def open(cls, settings: RecognitionSettings | None = None) -> FaceEngine:
        """Load the model set's four networks (checked against the manifest) with ``settings``.

        The models come from ``settings.models_dir``, else the default models
        folder (edge.perception.modelset.default_models_dir).
        """
        settings = settings or RecognitionSettings()
        files = model_files(settings.models_dir or default_models_dir(), settings.model_set)
        runtime = settings.runtime
        return cls(_open_detector(files, settings), Embedder(TfliteModel(files.embed, runtime), settings.embedder))

    def __enter__(self) -> FaceEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the four models' interpreters."""
        self.detector.close()
        self.embedder.close()

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face in ``image``, most confident first; [] when there is none.

        Images larger than the detector's max_side are searched on a downscaled copy;
        the faces come back in the full image's pixels.
        """
        _check_image(image)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        factor = min(1.0, self.detector.settings.max_side / max(rgb.shape[:2]))
        if factor < 1.0:
            small = (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor))
            rgb = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA)
        faces = self.detector.detect(rgb)
        return [f.scaled(1.0 / factor) for f in faces] if factor < 1.0 else faces

    def align(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(n, 112, 112, 3) uint8 RGB aligned crops, from the full-resolution image."""
        crops = np.empty((len(faces), 112, 112, 3), np.uint8)
        for i, face in enumerate(faces):
            # Each channel is warped alike, so only the crop needs turning into RGB, not the frame.
            cv2.cvtColor(align_face(image, face), cv2.COLOR_BGR2RGB, dst=crops[i])
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


def _open_detector(files: ModelFiles, settings: RecognitionSettings) -> MtcnnDetector:
    """MTCNN on the CPU with num_threads threads: as many single-threaded sets of
    its networks, run side by side (edge.perception.lanes); on a delegate, one set."""
    runtime = settings.runtime
    lanes = runtime.num_threads if runtime.delegate == "cpu" else 1
    if lanes > 1:
        runtime = runtime.model_copy(update={"num_threads": 1})
    nets = [Nets(*(TfliteModel(path, runtime) for path in (files.pnet, files.rnet, files.onet)))
            for _ in range(lanes)]
    return MtcnnDetector(*nets[0], settings.detector, lanes=nets[1:])


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("expected an (H, W, 3) BGR image array")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
