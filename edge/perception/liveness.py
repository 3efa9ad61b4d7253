"""Passive liveness: is a detected face a live one, or a printed photo or a screen held up to the camera?

Two small MiniFASNet networks (Silent-Face-Anti-Spoofing, Apache-2.0; converted
by models/convert_minifasnet.py) each look at a crop of the frame around the
face box, with more context than the face itself: V2 at 2.7 times the box,
V1SE at 4.0 times (the models were trained on, and rely on, that context).
Each crop is resized to 80x80, BGR, 0..255 pixels. Each model gives three
logits; after a softmax, index 1 is "live", 0 and 2 two kinds of attack. A
face's probability of being live is the mean of the enabled models' index-1
probabilities (the published usage sums the two models' probabilities).

    with LivenessChecker.open(RecognitionSettings()) as checker:
        results = checker.check(image, [face.box for face in faces])   # list[Liveness]

Images are (H, W, 3) uint8 BGR, as the engine takes them (edge.faces); the
models want BGR too, so crops are cut from the frame as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.faces import BBox
from edge.perception.litert import ModelError, TfliteModel, run_chunked
from edge.perception.modelset import default_models_dir, liveness_model_files
from edge.perception.settings import LivenessSettings, RecognitionSettings

CROP_SIZE = 80
"""Side of the square crop both models take, pixels."""

CROP_SCALES = {"v2": 2.7, "v1se": 4.0}
"""How many times the face box each model's crop is (before it is shrunk to fit the frame), as published."""

LIVE_CLASS = 1
"""Index of "live" among the three softmax outputs (0 and 2 are attacks)."""

MAX_BATCH = 32
"""Most crops run in one interpreter call; more faces than this in one frame go in chunks."""


@dataclass(frozen=True, slots=True)
class Liveness:
    """One face's liveness.

    ``score``: probability that the face is live, 0..1 (mean of ``per_model``).
    ``per_model``: each enabled model's probability of live, in the order of
    LivenessChecker.models. ``live``: ``score`` is at or above the threshold
    of the checker's LivenessSettings.
    """

    score: float
    per_model: tuple[float, ...]
    live: bool


def crop_bounds(box: BBox, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The published crop rule: inclusive pixel bounds (left, top, right, bottom) of the crop
    around ``box`` in a ``width`` x ``height`` image.

    As Silent-Face-Anti-Spoofing's CropImage does it (src/generate_patches.py):
    the box becomes whole pixels (x, y, w, h) = (int(x1), int(y1), int(x2 - x1 + 1),
    int(y2 - y1 + 1)), as its detector wrapper turns corners into a box; it is
    scaled by ``scale`` around its centre, keeping its aspect ratio, but never
    past (width - 1) or (height - 1) pixels (a scale that does not fit is
    lowered until it does); a crop that sticks out of the image is shifted back
    inside; the bounds are truncated to whole pixels. The crop keeps the box's
    aspect ratio (it is stretched to 80x80 afterwards, as the models were
    trained). One deviation: a box less than a pixel wide or high counts as one
    pixel (the published code would divide by zero).
    """
    x, y = int(box.x1), int(box.y1)
    box_w = max(1, int(box.x2 - box.x1 + 1))
    box_h = max(1, int(box.y2 - box.y1 + 1))
    scale = min((height - 1) / box_h, (width - 1) / box_w, scale)
    new_w, new_h = box_w * scale, box_h * scale
    centre_x, centre_y = x + box_w / 2, y + box_h / 2
    left, right = centre_x - new_w / 2, centre_x + new_w / 2
    top, bottom = centre_y - new_h / 2, centre_y + new_h / 2
    if left < 0:
        right -= left
        left = 0
    if top < 0:
        bottom -= top
        top = 0
    if right > width - 1:
        left -= right - width + 1
        right = width - 1
    if bottom > height - 1:
        top -= bottom - height + 1
        bottom = height - 1
    return int(left), int(top), int(right), int(bottom)


def liveness_crop(image: np.ndarray, box: BBox, scale: float) -> np.ndarray:
    """The (80, 80, 3) uint8 crop of ``image`` a model with crop ``scale`` takes for ``box``
    (crop_bounds, then OpenCV's default bilinear resize, as published; same channel order as ``image``)."""
    left, top, right, bottom = crop_bounds(box, scale, image.shape[1], image.shape[0])
    return cv2.resize(image[top : bottom + 1, left : right + 1], (CROP_SIZE, CROP_SIZE))


class LivenessChecker:
    """Scores faces with one or both MiniFASNet models; see LivenessSettings."""

    def __init__(self, models: dict[str, TfliteModel], settings: LivenessSettings) -> None:
        """``models``: name ("v2", "v1se") -> its loaded model, in the order results list them."""
        if not models:
            raise ValueError("a liveness checker needs at least one model")
        for name, model in models.items():
            if name not in CROP_SCALES:
                raise ValueError(f"unknown liveness model {name!r}; choose from {sorted(CROP_SCALES)}")
            shape, outputs = model.input_shape, model.output_shapes
            if len(shape) != 4 or shape[1:] != (CROP_SIZE, CROP_SIZE, 3) or outputs != [(shape[0], 3)]:
                raise ModelError(f"{model.path} is not a MiniFASNet liveness model (input {shape}, outputs {outputs})")
        self._models = models
        self.models = tuple(models)
        self.settings = settings

    @classmethod
    def open(cls, settings: RecognitionSettings | None = None) -> LivenessChecker:
        """Load the models ``settings.liveness`` names (checked against the manifest), on ``settings.runtime``,
        from ``settings.models_dir`` or else the default models folder."""
        settings = settings or RecognitionSettings()
        liveness = settings.liveness
        files = liveness_model_files(settings.models_dir or default_models_dir(), liveness.model_set,
                                     liveness.model_names)
        models: dict[str, TfliteModel] = {}
        try:
            for name, path in files.items():
                models[name] = TfliteModel(path, settings.runtime)
        except BaseException:
            for model in models.values():
                model.close()
            raise
        return cls(models, liveness)

    def __enter__(self) -> LivenessChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the models' interpreters."""
        for model in self._models.values():
            model.close()

    def check(self, image: np.ndarray, boxes: Sequence[BBox]) -> list[Liveness]:
        """The liveness of each face box of ``image`` ((H, W, 3) uint8 BGR), in order.

        One interpreter call per model for all the boxes (batched).
        """
        if (not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3
                or image.dtype != np.uint8 or image.size == 0):
            raise ValueError("expected a non-empty (H, W, 3) uint8 BGR image array")
        if not boxes:
            return []
        per_model = self.live_probabilities(self.crops(image, boxes))
        scores = per_model.mean(axis=1)
        threshold = self.settings.threshold
        return [
            Liveness(float(score), tuple(float(p) for p in row), bool(score >= threshold))
            for score, row in zip(scores, per_model)
        ]

    def crops(self, image: np.ndarray, boxes: Sequence[BBox]) -> dict[str, np.ndarray]:
        """Per model, the (len(boxes), 80, 80, 3) uint8 crops it takes (same channel order as ``image``)."""
        return {
            name: np.stack([liveness_crop(image, box, CROP_SCALES[name]) for box in boxes])
            for name in self.models
        }

    def live_probabilities(self, crops: dict[str, np.ndarray]) -> np.ndarray:
        """(n, len(self.models)) float32 probabilities of live from each model's (n, 80, 80, 3) BGR crops."""
        columns = []
        for name in self.models:
            logits = run_chunked(self._models[name], crops[name], MAX_BATCH)[0]
            columns.append(softmax(logits)[:, LIVE_CLASS])
        return np.stack(columns, axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float32)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
