"""Embedding: an aligned 112x112 RGB crop -> a unit-length 128-d float32 vector.

Two embeddings of the same person have a high cosine similarity (their dot
product, since both have length 1); see FaceEngine for the threshold.
"""

from __future__ import annotations

import numpy as np

from edge.perception.align import CROP_SIZE
from edge.perception.litert import ModelError, TfliteModel, run_chunked
from edge.perception.settings import EmbedderSettings


MAX_BATCH = 16
"""Most crops run at once."""


class Embedder:
    """SFace (MobileFaceNet-family) on TFLite; see EmbedderSettings for flip averaging."""

    def __init__(self, model: TfliteModel, settings: EmbedderSettings) -> None:
        shape = model.input_shape
        if len(shape) != 4 or shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
            raise ModelError(f"{model.path} is not a 112x112 RGB face embedder (input {shape})")
        outputs = model.output_shapes
        if len(outputs) != 1 or len(outputs[0]) != 2:
            raise ModelError(f"{model.path} is not a face embedder (outputs {outputs})")
        self._model = model
        self.dimension = outputs[0][1]
        self.flip_average = settings.flip_average

    def close(self) -> None:
        self._model.close()

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 112, 112, 3) uint8 RGB crops -> (n, D) float32 unit vectors.

        The crops run as one batch (in chunks of MAX_BATCH): the model's weights
        (37 MB as float32, most of them the last layer's) are then read once for
        all, and a crop's vector is the same as it alone would give.
        """
        if not len(crops):
            return np.empty((0, self.dimension), np.float32)
        batch = np.concatenate([crops, crops[:, :, ::-1]]) if self.flip_average else crops
        raw = run_chunked(self._model, batch, MAX_BATCH)[0]
        out = np.empty((len(crops), self.dimension), np.float32)
        for i in range(len(crops)):
            vector = raw[i]
            if self.flip_average:
                vector = _unit(vector) + _unit(raw[len(crops) + i])
            out[i] = _unit(vector)
        return out


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
