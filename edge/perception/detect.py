"""Face detection: MTCNN's three-network cascade on TFLite models.

P-Net scans an image pyramid for face-like 12x12 windows; R-Net (24x24)
rejects most of them in one batch; O-Net (48x48) refines the survivors and
places the five landmarks. Box arrays between stages are float32 (n, 5):
x1, y1, x2, y2, score, in the pixels of the image given to ``detect``.

The detector runs on one or more lanes, each a set of the three networks
(edge.perception.lanes). With several, every stage is cut into pieces that
the lanes run side by side: the pyramid into bands of rows (``pnet_bands``),
the candidates of R-Net and O-Net into chunks. The pieces give exactly the
numbers the whole would: P-Net is fully convolutional, and R-Net's and
O-Net's output for one crop does not depend on the others in its batch
(tests/test_detect.py checks both on the shipped models).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from edge.faces import BBox, Face
from edge.perception.kernels import PNET_CELL, PNET_STRIDE, decode_pnet, nms
from edge.perception.lanes import Lanes, Nets
from edge.perception.litert import ModelError, TfliteModel
from edge.perception.settings import DetectorSettings

_PROB, _REGRESSION, _PNET_HEADS, _LANDMARKS = 2, 4, 6, 10  # outputs are told apart by their last dimension

MAX_BATCH = 256
"""Largest R-Net/O-Net batch run at once; bigger candidate lists go in chunks."""


class MtcnnDetector:
    """Finds faces and their five landmarks in an RGB image.

    ``lanes``: more sets of the same three networks; each set then runs on a
    thread of its own, side by side (so each should be single-threaded; see
    FaceEngine.open). Not for calls from several threads at once.
    """

    def __init__(
        self,
        pnet: TfliteModel,
        rnet: TfliteModel,
        onet: TfliteModel,
        settings: DetectorSettings,
        lanes: Sequence[Nets] = (),
    ) -> None:
        for nets in (Nets(pnet, rnet, onet), *lanes):
            _expect_input(nets.pnet, None, "P-Net")
            _expect_input(nets.rnet, 24, "R-Net")
            _expect_input(nets.onet, 48, "O-Net")
        self._lanes = Lanes([Nets(pnet, rnet, onet), *lanes])
        self.settings = settings

    def close(self) -> None:
        self._lanes.close()

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
        scales = self.pyramid_scales(height, width)
        shapes = [(math.ceil(height * scale), math.ceil(width * scale)) for scale in scales]
        # Some three jobs a lane (small last jobs even out the lanes' ends: 2% faster than two
        # on the 640x480 frame); one lane runs whole levels. A job's last band is on its highest
        # level: it is ready once the pyramid has that level.
        pieces = 3 * self._lanes.count if self._lanes.count > 1 else 1
        jobs = sorted(pnet_bands(shapes, pieces), key=lambda job: job[-1][0])
        levels: list[np.ndarray] = []

        def ready_jobs() -> Iterator[list[tuple[int, int, int]]]:
            level = rgb
            for k, (level_h, level_w) in enumerate(shapes):
                # Each level is area-resampled from the one before, not from the
                # full image: the same filter at a third of the cost.
                level = cv2.resize(level, (level_w, level_h), interpolation=cv2.INTER_AREA)
                levels.append(level[None])  # uint8: TfliteModel.run converts as it copies
                yield from (job for job in jobs if job[-1][0] == k)

        def run(nets: Nets, job: list[tuple[int, int, int]]) -> list[np.ndarray]:
            found = []
            for k, start, end in job:
                outputs = nets.pnet.run(levels[k][:, start:end])
                found.append(decode_pnet(*_pnet_maps(outputs), scales[k], self.settings.thresholds[0],
                                         start // PNET_STRIDE))
            return found

        bands: list[list[tuple[int, np.ndarray]]] = [[] for _ in scales]
        for job, found in zip(jobs, self._lanes.map(run, ready_jobs())):
            for (k, start, _), rows in zip(job, found):
                bands[k].append((start, rows))
        per_level = []
        for level_bands in bands:
            # Bands top to bottom: the level's candidates in the order of decoding it whole.
            found = np.concatenate([rows for _, rows in sorted(level_bands, key=lambda band: band[0])])
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
        outputs = self._score(rgb, boxes, "rnet", 24)
        scores = outputs[_PROB][:, 1]
        keep = scores >= self.settings.thresholds[1]
        boxes = boxes[keep].copy()
        boxes[:, 4] = scores[keep]
        offsets = outputs[_REGRESSION][keep]
        order = nms(boxes[:, :4], boxes[:, 4], 0.7, False)
        return _square(_regress(boxes[order], offsets[order]))

    def _finish(self, rgb: np.ndarray, boxes: np.ndarray) -> list[Face]:
        """Stage 3: O-Net scores, final boxes and landmarks."""
        outputs = self._score(rgb, boxes, "onet", 48)
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

    def _score(self, rgb: np.ndarray, boxes: np.ndarray, net: str, size: int) -> dict[int, np.ndarray]:
        """R-Net's or O-Net's outputs for the boxes' ``size`` x ``size`` crops, in the boxes' order.

        The boxes go in equal chunks, one per lane (at most MAX_BATCH each);
        each lane crops its own and runs them as one batch of exactly that size.
        """
        chunk = min(MAX_BATCH, -(-len(boxes) // self._lanes.count))
        jobs = [boxes[start : start + chunk] for start in range(0, len(boxes), chunk)]

        def run(nets: Nets, job: np.ndarray) -> list[np.ndarray]:
            return getattr(nets, net).run(_crops(rgb, job, size))

        outputs = self._lanes.map(run, jobs)
        return _by_size([np.concatenate(parts) for parts in zip(*outputs)])


def pnet_rows(height: int) -> int:
    """Rows of P-Net's output map for an input ``height`` pixels high (0 below 11)."""
    # Valid 3x3 convolution, 2x2 max-pool of stride 2 padded at the end, two more valid 3x3.
    return max(0, (height - 1) // PNET_STRIDE - 4)


def pnet_bands(shapes: Sequence[tuple[int, int]], pieces: int) -> list[list[tuple[int, int, int]]]:
    """P-Net's work on pyramid levels of these (height, width) shapes, in about ``pieces`` jobs of similar area.

    A job is a list of bands (level index, first row, end row) of input rows,
    the levels in order and each level's bands top to bottom. Each band
    starts on an even row and, but for a level's last band, overlaps the next
    by 10 rows (a 12-row window less one stride), so that it yields exactly
    its own rows of the level's output map, and the last band ends at the
    level's end, where the max-pool's padding lies. The largest job first.
    """
    target = sum(h * w for h, w in shapes) / max(1, pieces)
    jobs: list[list[tuple[int, int, int]]] = []
    job: list[tuple[int, int, int]] = []
    area = 0
    for k, (height, width) in enumerate(shapes):
        rows = pnet_rows(height)
        count = max(1, min(rows, round(height * width / target)))
        cuts = [rows * i // count for i in range(count + 1)]
        for first, end in zip(cuts, cuts[1:]):
            start = PNET_STRIDE * first
            stop = height if end == rows else PNET_STRIDE * end + PNET_CELL - PNET_STRIDE
            job.append((k, start, stop))
            area += (stop - start) * width
            if area >= target:
                jobs.append(job)
                job, area = [], 0
    if job:
        jobs.append(job)
    return sorted(jobs, key=lambda j: -sum((stop - start) * shapes[k][1] for k, start, stop in j))


def _expect_input(model: TfliteModel, side: int | None, name: str) -> None:
    shape = model.input_shape
    ok = len(shape) == 4 and shape[3] == 3 and (side is None or shape[1:3] == (side, side))
    sizes = sorted(s[-1] for s in model.output_shapes)
    wanted = {"P-Net": ([_PNET_HEADS], [_PROB, _REGRESSION]), "R-Net": ([_PROB, _REGRESSION],),
              "O-Net": ([_PROB, _REGRESSION, _LANDMARKS],)}[name]
    if not ok or sizes not in wanted:
        raise ModelError(f"{model.path} is not an MTCNN {name} model (input {shape}, outputs {sizes})")


def _pnet_maps(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, bool]:
    """decode_pnet's first three arguments from a P-Net's outputs for one image: (h, w, 2)
    face scores, (h, w, 4) box offsets, and whether the scores are logits. The float files
    give one ``heads`` map, logits then offsets; the int8 file gives the probabilities and
    the offsets apart (models/README.md)."""
    if len(outputs) == 1:
        return outputs[0][0, :, :, :2], outputs[0][0, :, :, 2:], True
    by_size = _by_size(outputs)
    return by_size[_PROB][0], by_size[_REGRESSION][0], False


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
    """(n, size, size, 3) uint8 crops of the boxes; outside the image is black."""
    height, width = rgb.shape[:2]
    batch = np.zeros((len(boxes), size, size, 3), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(np.round(boxes[:, :4]).astype(np.int64)):
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if x2 <= x1 or y2 <= y1 or sx2 <= sx1 or sy2 <= sy1:
            continue  # empty, or wholly outside the image: black
        patch = rgb[sy1:sy2, sx1:sx2]
        if (sx1, sy1, sx2, sy2) != (x1, y1, x2, y2):
            patch = cv2.copyMakeBorder(patch, sy1 - y1, y2 - sy2, sx1 - x1, x2 - sx2, cv2.BORDER_CONSTANT, value=0)
        cv2.resize(patch, (size, size), dst=batch[i], interpolation=cv2.INTER_AREA)
    return batch
