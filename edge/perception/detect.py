"""Face detection: MTCNN's three-network cascade on TFLite models.

P-Net scans an image pyramid for face-like 12x12 windows; R-Net (24x24)
rejects most of them in one batch; O-Net (48x48) refines the survivors and
places the five landmarks. Box arrays between stages are float32 (n, 5):
x1, y1, x2, y2, score, in the pixels of the image given to ``detect``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.perception.kernels import PNET_CELL, decode_pnet, nms
from edge.perception.litert import ModelError, TfliteModel, run_padded
from edge.perception.settings import DetectorSettings
from edge.faces import BBox, Face

_PROB, _REGRESSION, _LANDMARKS = 2, 4, 10  # outputs are told apart by their last dimension


class MtcnnDetector:
    """Finds faces and their five landmarks in an RGB image."""

    def __init__(
        self, pnet: TfliteModel, rnet: TfliteModel, onet: TfliteModel, settings: DetectorSettings
    ) -> None:
        _expect_input(pnet, None, "P-Net")
        _expect_input(rnet, 24, "R-Net")
        _expect_input(onet, 48, "O-Net")
        self._pnet, self._rnet, self._onet = pnet, rnet, onet
        self.settings = settings

    def close(self) -> None:
        for model in (self._pnet, self._rnet, self._onet):
            model.close()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in ``rgb`` ((H, W, 3) uint8 RGB), most confident first."""
        boxes = self._propose(rgb)
        if len(boxes):
            boxes = self._refine(rgb, boxes)
        if not len(boxes):
            return []
        return self._finish(rgb, boxes)

    def pyramid_scales(self, height: int, width: int) -> list[float]:
        """Resize factors of the pyramid levels for an image of this size."""
        first = PNET_CELL / self.settings.min_face_size
        scales = []
        side = min(height, width) * first
        while side >= PNET_CELL:
            scales.append(first * self.settings.scale_factor ** len(scales))
            side *= self.settings.scale_factor
        return scales

    def _propose(self, rgb: np.ndarray) -> np.ndarray:
        """Stage 1: P-Net over the pyramid; squared candidate boxes."""
        height, width = rgb.shape[:2]
        per_level = []
        level = rgb
        for scale in self.pyramid_scales(height, width):
            level_w, level_h = math.ceil(width * scale), math.ceil(height * scale)
            # Each level is area-resampled from the one before, not from the
            # full image: the same filter at a third of the cost.
            level = cv2.resize(level, (level_w, level_h), interpolation=cv2.INTER_AREA)
            outputs = _by_size(self._pnet.run(level[None].astype(np.float32)))
            found = decode_pnet(
                outputs[_PROB][0, :, :, 1],
                outputs[_REGRESSION][0],
                scale,
                self.settings.thresholds[0],
            )
            if len(found):
                per_level.append(found[nms(found[:, :4], found[:, 4], 0.5, False)])
        if not per_level:
            return np.empty((0, 5), np.float32)
        found = np.concatenate(per_level)
        found = found[nms(found[:, :4], found[:, 4], 0.7, False)]
        boxes = _regress(found[:, :5], found[:, 5:9])
        return _square(boxes)

    def _refine(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-Net rescoring and regression."""
        outputs = _by_size(run_padded(self._rnet, _crops(rgb, boxes, 24), MAX_BATCH))
        scores = outputs[_PROB][:, 1]
        keep = scores >= self.settings.thresholds[1]
        boxes = boxes[keep].copy()
        boxes[:, 4] = scores[keep]
        offsets = outputs[_REGRESSION][keep]
        order = nms(boxes[:, :4], boxes[:, 4], 0.7, False)
        return _square(_regress(boxes[order], offsets[order]))

    def _finish(self, rgb: np.ndarray, boxes: np.ndarray) -> list[Face]:
        """Stage 3: O-Net scores, final boxes and landmarks."""
        outputs = _by_size(run_padded(self._onet, _crops(rgb, boxes, 48), MAX_BATCH))
        scores = outputs[_PROB][:, 1]
        keep = scores >= self.settings.thresholds[2]
        boxes = boxes[keep].copy()
        boxes[:, 4] = scores[keep]
        width = (boxes[:, 2] - boxes[:, 0])[:, None]
        height = (boxes[:, 3] - boxes[:, 1])[:, None]
        marks = outputs[_LANDMARKS][keep]
        xs = boxes[:, 0:1] + marks[:, 0:5] * width
        ys = boxes[:, 1:2] + marks[:, 5:10] * height
        boxes = _regress(boxes, outputs[_REGRESSION][keep])
        order = nms(boxes[:, :4], boxes[:, 4], 0.7, True)
        return [
            Face(
                BBox(*(float(v) for v in boxes[i, :4])),
                float(boxes[i, 4]),
                tuple((float(x), float(y)) for x, y in zip(xs[i], ys[i])),
            )
            for i in order
        ]


def _expect_input(model: TfliteModel, side: int | None, name: str) -> None:
    shape = model.input_shape
    ok = len(shape) == 4 and shape[3] == 3 and (side is None or shape[1:3] == (side, side))
    sizes = sorted(s[-1] for s in model.output_shapes)
    wanted = [_PROB, _REGRESSION, _LANDMARKS] if name == "O-Net" else [_PROB, _REGRESSION]
    if not ok or sizes != wanted:
        raise ModelError(f"{model.path} is not an MTCNN {name} model (input {shape}, outputs {sizes})")


MAX_BATCH = 256
"""Largest R-Net/O-Net batch run at once; bigger candidate lists go in chunks."""


def _by_size(outputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    return {o.shape[-1]: o for o in outputs}


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply MTCNN box offsets (fractions of width/height) to (n, 5) boxes."""
    out = boxes.copy()
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    out[:, 0] += offsets[:, 0] * width
    out[:, 1] += offsets[:, 1] * height
    out[:, 2] += offsets[:, 2] * width
    out[:, 3] += offsets[:, 3] * height
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (the next net wants square crops)."""
    out = boxes.copy()
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    out[:, 0], out[:, 2] = cx - side / 2, cx + side / 2
    out[:, 1], out[:, 3] = cy - side / 2, cy + side / 2
    return out


def _crops(rgb: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size, 3) float32 crops of the boxes; outside the image is black."""
    height, width = rgb.shape[:2]
    batch = np.zeros((len(boxes), size, size, 3), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(np.round(boxes[:, :4]).astype(np.int64)):
        if x2 <= x1 or y2 <= y1:
            continue
        patch = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = rgb[sy1:sy2, sx1:sx2]
        batch[i] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return batch
