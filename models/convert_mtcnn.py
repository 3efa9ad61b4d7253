#!/usr/bin/env python3
"""Convert the MTCNN face-detector weights of ``mtcnn==1.0.0`` to TFLite.

What this script does
---------------------
The PyPI wheel ``mtcnn==1.0.0`` (MIT licence) ships the trained weights of
the three MTCNN networks as ``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``:
joblib pickles (lz4-compressed) holding lists of numpy arrays in the order of
``model.weights`` of the package's own Keras classes ``mtcnn.network.PNet``,
``RNet`` and ``ONet``.  The weights are found through ``importlib.resources``
in the *installed* package, never through a hard-coded path.

For every network the script rebuilds the forward pass with plain TensorFlow
ops whose weights are constants (so nothing in the TFLite file reads a
variable), converts it three times and writes into ``--out`` (default: the
folder holding this script)::

    mtcnn_{pnet,rnet,onet}_float32.tflite   float32 weights and activations
    mtcnn_{pnet,rnet,onet}_float16.tflite   float16 weights, float32 compute
    mtcnn_{pnet,rnet,onet}_int8.tflite      full integer: int8 weights,
                                            activations, input and outputs

It then checks every file against the package's original Keras models on LFW
data, times it, and records each file in ``models/manifest.json`` (a file
shared with other conversion scripts: only this script's entries change).

Contract of the produced files (the runtime relies on it)
---------------------------------------------------------
* Input: NHWC, RGB, raw pixel values 0..255 as float32.  In the int8 files
  the input tensor is int8 and its scale/zero point map onto those raw values
  (scale 1.0, zero point -128): quantize with the tensor's own parameters.
  The network's normalisation ``(x - 127.5) * 0.0078125`` is baked into the
  graph (folded into the first convolution), so callers feed a plain upright
  image (rows = y, columns = x).  The mtcnn 1.0.0 weights expect upright
  images already (this script checks it), so no transpose is needed.
* P-Net: input [1, H, W, 3] with dynamic H and W (``resize_tensor_input``
  before ``allocate_tensors``); one output [1, h, w, 6], ``heads``: channels
  0 and 1 the not-face and face logits (softmax is left to the caller, which
  needs it only where the face logit leads), channels 2-5 the box regression
  (dx1, dy1, dx2, dy2) as fractions of the 12-pixel window, x along the image
  width; stride 2, cell size 12.  The int8 P-Net keeps the package's two
  outputs, [1, h, w, 2] face probability (softmax, channel 1 = face) and
  [1, h, w, 4] box regression: one tensor has one quantization scale, and
  one for both heads made the offsets' steps as coarse as the logits' (mean
  error 0.023 against 0.009); and logits without the int8 softmax, whose
  output has steps of 1/256, changed the number of faces found in 19 of
  13,233 LFW photos.
* R-Net: input [N, 24, 24, 3] (N resizable); outputs [N, 2] probabilities
  (channel 1 = face) and [N, 4] regression (dx1, dy1, dx2, dy2) as fractions
  of the box width/height.
* O-Net: input [N, 48, 48, 3]; outputs [N, 2], [N, 4] and [N, 10] landmarks
  (x1..x5, y1..y5) as fractions of the box width/height from its top-left
  corner, points in the order left eye, right eye, nose, left mouth corner,
  right mouth corner, "left" meaning the smaller image x.  (The original
  package decodes boxes and landmarks with w = x2 - x1 + 1 and landmarks with
  an extra -1 pixel, a legacy of 1-based coordinates; that is up to the
  runtime, the network outputs are the plain fractions.)
* Outputs are told apart by their last dimension (2, 4, 6, 10); the TFLite
  signature names them ``prob``, ``bbox``, ``heads`` and ``landmarks``.

How the graph differs from the Keras model (all exact rewrites)
---------------------------------------------------------------
* Normalisation folded into conv1 (valid padding, so the fold is exact):
  ``W' = W * s``, ``b' = b - 127.5 * s * sum(W)`` with ``s = 0.0078125``.
* The float P-Nets' two 1x1 heads are one convolution with 6 outputs, and
  their softmax is not in the graph: on a 384x288 level the two heads and the softmax took
  0.86 ms of P-Net's 5.8 (one thread), the one head 0.11 ms.  The
  regression channels are bit-identical to the two-head graph's; the
  caller's softmax matches TFLite's to about one float32 ulp.
* R-Net/O-Net apply ``Permute((2, 1, 3))`` before ``Flatten``; the rows of the
  following dense kernel are re-ordered instead, so no TRANSPOSE op is left.
* PReLU.  Float files use TFLite's PRELU op.  XNNPACK runs neither int8
  PRELU nor a stand-alone int8 RELU, so the int8 files (see ``INT8_PRELU``)
  use an exact "split" form made of ops XNNPACK does run in int8.  With
  ``c = L(x)`` the convolution / dense layer before the PReLU::

      prelu(c) = relu(c) + alpha * min(c, 0)
               = relu(L(x)) + t * relu(L'(x)),   t = -sign(alpha) (+1 if alpha <= 0)

  where ``L'`` is the same layer with weights and bias multiplied by
  ``-|alpha|``; both branches are convolutions (or dense layers) with a fused
  RELU, ``t`` is a per-channel +-1 multiply.  It costs a second convolution,
  but the whole graph stays in one int8 XNNPACK partition (about 3x faster
  than int8 PRELU here) and, since both branches are one-sided, it quantizes
  more accurately than the PRELU op itself.

Calibration and verification data
---------------------------------
LFW (``--lfw``), images NOT referenced in ``pairs.csv`` only (that file is the
accuracy benchmark), split with a fixed seed into a calibration set
(``--calib-images``) and a disjoint verification set (``--verify-images``).
P-Net sees image-pyramid levels (scale 0.6 * 0.709**k, INTER_AREA resize);
R-Net sees 24x24 crops of the proposals of the original package's own P-Net
stage; O-Net sees 48x48 crops of the boxes its R-Net stage keeps, jittered
copies of those and a few P-Net proposals.  So each stage is calibrated on the
kind of input it gets in the cascade.  The verification set is used the same
way, plus an end-to-end run of the package's detector with the TFLite nets
swapped in for its Keras nets.

Usage
-----
    python models/convert_mtcnn.py [--lfw /work/shared/data/lfw] [--out models]
        [--calib-images 300] [--verify-images 40] [--no-bench]
        [--compare-int8-prelu] [--wheel PATH]

Needs tensorflow(-cpu) 2.21, mtcnn==1.0.0 (with joblib, lz4), ai-edge-litert,
opencv-python-headless and numpy.  Re-runnable: fixed seeds, sorted inputs;
the same inputs and library versions give byte-identical files.  Nothing but
the .tflite files, manifest.json and its (empty) lock file .manifest.lock is
written to ``--out``; TensorFlow's own scratch files go to the system temp dir.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import csv
import dataclasses
import fcntl
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The int8 converter warns that no input statistics were given: intended, the
# input range comes from the representative dataset.
warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")

LOG = logging.getLogger("convert_mtcnn")

SOURCE_PACKAGE = "mtcnn"
SOURCE_VERSION = "1.0.0"
# sha256 of mtcnn-1.0.0-py3-none-any.whl as served by PyPI (checked with
# `pip download mtcnn==1.0.0`); used when the wheel itself is not at hand and
# the installer left no record of it (see source_wheel_sha256()).
PINNED_WHEEL_SHA256 = "0a96b4868e56db9ae984449519642be6dba03240e608a67e928ebb47833e9144"

ROLES = ("pnet", "rnet", "onet")
VARIANTS = ("float32", "float16", "int8")
INPUT_SIZE = {"rnet": 24, "onet": 48}  # P-Net is fully convolutional
NORM_MEAN = 127.5
NORM_SCALE = 0.0078125  # 1/128, as mtcnn.utils.images.normalize_images

# PReLU form per variant: "native" = TFLite PRELU op, "split" = the two-branch
# rewrite described in the module docstring, "muladd" = alpha*x +
# (1-alpha)*relu(x) (kept for comparison only: XNNPACK does not run int8 RELU,
# so it splits the graph into several partitions).  For every int8 net "split"
# measured both faster and closer to the float model than "native"; rerun with
# --compare-int8-prelu to see the numbers.
FLOAT_PRELU = "native"
INT8_PRELU = {"pnet": "split", "rnet": "split", "onet": "split"}

# Image pyramid as in the original package with min_face_size=20.
PYRAMID_FIRST_SCALE = 12 / 20
PYRAMID_FACTOR = 0.709
SEED = 20240917

THRESHOLDS = {"pnet": 0.6, "rnet": 0.7, "onet": 0.8}  # the package's defaults
BENCH_SHAPES = {
    "pnet": [(1, 240, 320, 3), (1, 480, 640, 3)],
    "rnet": [(16, 24, 24, 3)],
    "onet": [(4, 48, 48, 3)],
}
OUTPUT_NAMES = {2: "prob", 4: "bbox", 10: "landmarks"}
PNET_HEADS = 6  # the float P-Nets' one output: 2 logits, then 4 box offsets


def pnet_as_keras(outputs: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """A float P-Net's ``heads`` output (last dimension 6) as the Keras model's two: softmax
    probabilities (2) and box offsets (4). The int8 P-Net's outputs are those two already."""
    if PNET_HEADS not in outputs:
        return outputs
    logits, offsets = outputs[PNET_HEADS][..., :2], outputs[PNET_HEADS][..., 2:]
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    prob = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    return {2: prob.astype(np.float32), 4: offsets}


# --------------------------------------------------------------------------
# Source package: weights, hashes, licence
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SourceInfo:
    wheel_sha256: str
    wheel_sha256_origin: str
    licence: str
    weight_files: dict[str, Path]
    weight_sha256: dict[str, str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _record_hashes(dist: importlib.metadata.Distribution) -> dict[str, str]:
    """sha256 (hex) of every file listed in the wheel's RECORD."""
    hashes = {}
    for row in csv.reader((dist.read_text("RECORD") or "").splitlines()):
        if len(row) >= 2 and row[1].startswith("sha256="):
            raw = base64.urlsafe_b64decode(row[1][7:] + "==")
            hashes[row[0]] = raw.hex()
    return hashes


def source_wheel_sha256(dist, wheel: Path | None, weight_sha: dict) -> tuple[str, str]:
    """Return (sha256 of the mtcnn wheel, where that value came from)."""
    if wheel is not None:
        import zipfile

        with zipfile.ZipFile(wheel) as archive:
            for role, expected in weight_sha.items():
                data = archive.read(f"mtcnn/assets/weights/{role}.lz4")
                if hashlib.sha256(data).hexdigest() != expected:
                    raise SystemExit(f"{wheel} does not hold the installed {role}.lz4")
        return sha256_of(wheel), f"hashed {wheel.name}"
    direct_url = dist.read_text("direct_url.json")
    if direct_url:
        info = json.loads(direct_url).get("archive_info", {})
        value = info.get("hashes", {}).get("sha256")
        if value:
            return value, "installer's direct_url.json"
    return PINNED_WHEEL_SHA256, "pinned PyPI value (wheel not at hand)"


def load_source_info(wheel: Path | None) -> SourceInfo:
    dist = importlib.metadata.distribution(SOURCE_PACKAGE)
    if dist.version != SOURCE_VERSION:
        raise SystemExit(f"need {SOURCE_PACKAGE}=={SOURCE_VERSION}, found {dist.version}")
    record = _record_hashes(dist)
    weights_dir = importlib.resources.files("mtcnn.assets.weights")
    files, shas = {}, {}
    for role in ROLES:
        path = Path(str(weights_dir / f"{role}.lz4"))
        shas[role] = sha256_of(path)
        expected = record.get(f"mtcnn/assets/weights/{role}.lz4")
        if expected != shas[role]:
            raise SystemExit(f"{path} does not match the wheel's RECORD")
        files[role] = path
    wheel_sha, origin = source_wheel_sha256(dist, wheel, shas)
    if wheel_sha != PINNED_WHEEL_SHA256:
        LOG.warning("wheel sha256 %s differs from the PyPI release's", wheel_sha)
    licence_text = dist.read_text("LICENSE") or ""
    copyright_line = next((l.strip() for l in licence_text.splitlines()
                           if l.lower().startswith("copyright")), "")
    licence = f"{dist.metadata.get('License', 'unknown')} ({copyright_line}; LICENSE in the wheel)"
    return SourceInfo(wheel_sha, origin, licence, files, shas)


def load_weights(source: SourceInfo, role: str) -> list[np.ndarray]:
    import joblib  # the format the package itself stores its weights in

    return [np.asarray(w, np.float32) for w in joblib.load(source.weight_files[role])]


def build_reference_model(role: str, weights: list[np.ndarray]) -> tf.keras.Model:
    """The package's own Keras model, used as the ground truth."""
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet

    model = {"pnet": PNet, "rnet": RNet, "onet": ONet}[role]()
    model.build()
    model.set_weights(weights)
    return model


def reference_outputs(model: tf.keras.Model, raw: np.ndarray) -> dict[int, np.ndarray]:
    """Run the Keras model exactly as the package does; key outputs by last dim."""
    outputs = model((raw - NORM_MEAN) / 128.0)
    return {int(o.shape[-1]): np.asarray(o) for o in outputs}


# --------------------------------------------------------------------------
# Graph construction
# --------------------------------------------------------------------------

def _const(value: np.ndarray) -> tf.Tensor:
    return tf.constant(np.ascontiguousarray(value, np.float32))


def _linear(x, kernel, bias, relu=False):
    """Convolution (4-D kernel, valid padding, stride 1) or dense layer."""
    if kernel.ndim == 4:
        y = tf.nn.conv2d(x, _const(kernel), strides=1, padding="VALID") + _const(bias)
    else:
        y = tf.matmul(x, _const(kernel)) + _const(bias)
    return tf.nn.relu(y) if relu else y


def _prelu_layer(x, kernel, bias, alpha, mode):
    """``prelu(linear(x))`` in one of the forms described in the docstring."""
    if mode == "native":
        c = _linear(x, kernel, bias)
        # This exact pattern (alpha of rank ndim-1) is fused into one PRELU op.
        return tf.nn.relu(c) + _const(-alpha) * tf.nn.relu(-c)
    if mode == "muladd":
        c = _linear(x, kernel, bias)
        return _const(alpha) * c + _const(1.0 - alpha) * tf.nn.relu(c)
    if mode == "split":
        # relu(c) + alpha * min(c, 0), the second term as t * relu(-|alpha| * c)
        magnitude = np.abs(alpha.reshape(-1))
        t = np.where(alpha.reshape(-1) > 0, -1.0, 1.0).astype(np.float32)
        positive = _linear(x, kernel, bias, relu=True)
        negative = _linear(x, kernel * -magnitude, bias * -magnitude, relu=True)
        return positive + (negative if np.all(t > 0) else _const(t) * negative)
    raise ValueError(mode)


def _fold_normalisation(kernel, bias):
    """Fold (x - 127.5) * 0.0078125 into a valid-padding first convolution."""
    folded_kernel = kernel * NORM_SCALE
    folded_bias = bias - NORM_MEAN * NORM_SCALE * kernel.sum(axis=(0, 1, 2))
    return folded_kernel, folded_bias


def _nhwc_flatten_kernel(kernel, spatial):
    """Re-order dense rows so flattening NHWC equals Keras' Permute+Flatten.

    Keras flattens a (W, H, C) tensor; we flatten (H, W, C) instead.
    """
    h, w = spatial
    channels = kernel.shape[0] // (h * w)
    return kernel.reshape(w, h, channels, -1).transpose(1, 0, 2, 3).reshape(kernel.shape)


def _pool(x, size, padding):
    return tf.nn.max_pool2d(x, ksize=size, strides=2, padding=padding)


def make_forward(role: str, weights: list[np.ndarray], prelu: str, variant: str) -> Callable:
    """Return f(raw_rgb_0_255) -> dict of outputs for the given network and file variant."""
    w = list(weights)
    w[0], w[1] = _fold_normalisation(w[0], w[1])

    def pnet(x):
        x = _prelu_layer(x, w[0], w[1], w[2], prelu)
        x = _pool(x, 2, "SAME")
        x = _prelu_layer(x, w[3], w[4], w[5], prelu)
        x = _prelu_layer(x, w[6], w[7], w[8], prelu)
        if variant == "int8":  # as the package has it (see the module docstring)
            return {"bbox": _linear(x, w[9], w[10]), "prob": tf.nn.softmax(_linear(x, w[11], w[12]))}
        # One 1x1 convolution for both heads: channels 0-1 face logits, 2-5 box regression.
        kernel = np.concatenate([w[11], w[9]], axis=-1)
        bias = np.concatenate([w[12], w[10]])
        return {"heads": _linear(x, kernel, bias)}

    def rnet(x):
        x = _pool(_prelu_layer(x, w[0], w[1], w[2], prelu), 3, "SAME")
        x = _pool(_prelu_layer(x, w[3], w[4], w[5], prelu), 3, "VALID")
        x = _prelu_layer(x, w[6], w[7], w[8], prelu)          # [N, 3, 3, 64]
        x = tf.reshape(x, [-1, 3 * 3 * 64])
        x = _prelu_layer(x, _nhwc_flatten_kernel(w[9], (3, 3)), w[10], w[11], prelu)
        return {"bbox": _linear(x, w[12], w[13]),
                "prob": tf.nn.softmax(_linear(x, w[14], w[15]))}

    def onet(x):
        x = _pool(_prelu_layer(x, w[0], w[1], w[2], prelu), 3, "SAME")
        x = _pool(_prelu_layer(x, w[3], w[4], w[5], prelu), 3, "VALID")
        x = _pool(_prelu_layer(x, w[6], w[7], w[8], prelu), 2, "SAME")
        x = _prelu_layer(x, w[9], w[10], w[11], prelu)        # [N, 3, 3, 128]
        x = tf.reshape(x, [-1, 3 * 3 * 128])
        x = _prelu_layer(x, _nhwc_flatten_kernel(w[12], (3, 3)), w[13], w[14], prelu)
        return {"bbox": _linear(x, w[15], w[16]),
                "landmarks": _linear(x, w[17], w[18]),
                "prob": tf.nn.softmax(_linear(x, w[19], w[20]))}

    return {"pnet": pnet, "rnet": rnet, "onet": onet}[role]


def input_signature(role: str) -> tf.TensorSpec:
    if role == "pnet":
        return tf.TensorSpec([1, None, None, 3], tf.float32, name="image")
    size = INPUT_SIZE[role]
    return tf.TensorSpec([None, size, size, 3], tf.float32, name="image")


def convert(role: str, weights, variant: str, prelu: str,
            calibration: list[np.ndarray] | None = None) -> bytes:
    holder = tf.Module()  # gives the file a signature with named outputs
    holder.forward = tf.function(make_forward(role, weights, prelu, variant),
                                 input_signature=[input_signature(role)])
    concrete = holder.forward.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if not calibration:
            raise ValueError("int8 conversion needs calibration samples")

        def representative() -> Iterator[list[np.ndarray]]:
            for sample in calibration:
                yield [sample]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


# --------------------------------------------------------------------------
# TFLite execution
# --------------------------------------------------------------------------

class TfliteNet:
    """Minimal runner: float32 raw pixels in, dequantized outputs by last dim
    (a P-Net's as the Keras model's: see pnet_as_keras)."""

    def __init__(self, model: bytes, num_threads: int = 1, pnet: bool = False):
        from ai_edge_litert.interpreter import Interpreter

        self.pnet = pnet
        self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.shape: tuple | None = None

    def resize(self, shape: tuple) -> None:
        if shape != self.shape:
            self.interpreter.resize_tensor_input(self.input["index"], list(shape), strict=True)
            self.interpreter.allocate_tensors()
            self.shape = shape

    def set_input(self, raw: np.ndarray) -> None:
        self.resize(tuple(raw.shape))
        detail = self.interpreter.get_input_details()[0]
        if detail["dtype"] == np.int8:
            scale, zero = detail["quantization"]
            raw = np.clip(np.round(raw / scale + zero), -128, 127).astype(np.int8)
        self.interpreter.set_tensor(detail["index"], raw.astype(detail["dtype"]))

    def outputs(self) -> dict[int, np.ndarray]:
        result = {}
        for detail in self.interpreter.get_output_details():
            value = self.interpreter.get_tensor(detail["index"])
            if detail["dtype"] == np.int8:
                scale, zero = detail["quantization"]
                value = (value.astype(np.float32) - zero) * scale
            result[int(detail["shape"][-1])] = value
        return pnet_as_keras(result) if self.pnet else result

    def __call__(self, raw: np.ndarray) -> dict[int, np.ndarray]:
        self.set_input(raw)
        self.interpreter.invoke()
        return self.outputs()


def op_names(model: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return [op["op_name"] for op in interpreter._get_ops_details()]


def xnnpack_partitions(model: bytes, shape: tuple) -> int:
    """How many delegate nodes XNNPACK creates (1 = whole graph delegated)."""
    net = TfliteNet(model)
    net.resize(shape)
    return net.interpreter._interpreter.NumNodes() - len(op_names(model))


# --------------------------------------------------------------------------
# LFW data
# --------------------------------------------------------------------------

def split_lfw(lfw: Path, n_calib: int, n_verify: int) -> tuple[list[Path], list[Path]]:
    """Seeded, disjoint calibration / verification sets outside pairs.csv."""
    with open(lfw / "pairs.csv", newline="") as handle:
        in_pairs = set()
        for row in csv.DictReader(handle):
            in_pairs.update((row["path_a"], row["path_b"]))
    pool = sorted(p for p in lfw.glob("*/*.jpg")
                  if p.relative_to(lfw).as_posix() not in in_pairs)
    if len(pool) < n_calib + n_verify:
        raise SystemExit(f"only {len(pool)} LFW images outside pairs.csv")
    order = np.random.default_rng(SEED).permutation(len(pool))
    calib = [pool[i] for i in order[:n_calib]]
    verify = [pool[i] for i in order[n_calib:n_calib + n_verify]]
    LOG.info("LFW: %d images outside pairs.csv (%d referenced); %d for calibration, %d for "
             "verification", len(pool), len(in_pairs), len(calib), len(verify))
    return calib, verify


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32)


def pyramid(image: np.ndarray) -> list[np.ndarray]:
    """Levels [1, h, w, 3] with the usual MTCNN scales, down to 12 pixels."""
    height, width = image.shape[:2]
    levels, scale = [], PYRAMID_FIRST_SCALE
    while min(height, width) * scale >= 12:
        size = (max(12, round(width * scale)), max(12, round(height * scale)))
        levels.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA)[None])
        scale *= PYRAMID_FACTOR
    return levels


class PackageCascade:
    """The original package's P-Net and R-Net stages, used to find the boxes
    whose crops R-Net and O-Net really see in the cascade."""

    def __init__(self):
        from mtcnn import MTCNN

        self.detector = MTCNN()
        self.pnet_stage = self.detector.get_stage(stage_id=1)
        self.rnet_stage = self.detector.get_stage(stage_id=2)

    def boxes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P-Net proposals, R-Net survivors) as [x1, y1, x2, y2] rows."""
        from mtcnn.utils.images import standarize_batch

        normalized, shapes, _ = standarize_batch([image], normalize=True)
        empty = np.zeros((0, 4), np.float32)
        try:
            proposals = self.pnet_stage(images_normalized=normalized, images_oshapes=shapes)
            if len(proposals) == 0:
                return empty, empty
            survivors = self.rnet_stage(images_normalized=normalized,
                                        bboxes_batch=proposals.copy())
        except tf.errors.InvalidArgumentError:
            return empty, empty
        return proposals[:, 1:5].astype(np.float32), survivors[:, 1:5].astype(np.float32)


def crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear crops as the package takes them; outside the image = 127.5
    (the package crops the normalised image and pads with 0)."""
    if len(boxes) == 0:
        return np.zeros((0, size, size, 3), np.float32)
    height, width = image.shape[:2]
    normalised = boxes[:, [1, 0, 3, 2]] / np.array([height, width, height, width], np.float32)
    result = tf.image.crop_and_resize(image[None], normalised, np.zeros(len(boxes), np.int32),
                                      (size, size), extrapolation_value=NORM_MEAN)
    return result.numpy()


@dataclasses.dataclass
class NetData:
    pnet: list[np.ndarray]
    rnet: np.ndarray
    onet: np.ndarray

    def describe(self) -> str:
        return (f"{len(self.pnet)} P-Net pyramid levels, {len(self.rnet)} R-Net crops, "
                f"{len(self.onet)} O-Net crops")


def collect(images: Iterable[Path], cascade: PackageCascade, rng: np.random.Generator,
            levels_per_image: int | None, rnet_per_image: int, onet_extra_per_image: int) -> NetData:
    """Inputs for all three nets from a list of images.

    levels_per_image=None keeps every pyramid level.  R-Net gets random P-Net
    proposals; O-Net gets every R-Net survivor, a jittered copy of each and a
    few random P-Net proposals (harder, mostly non-face inputs)."""
    pnet, rnet, onet = [], [], []
    for path in images:
        image = read_rgb(path)
        levels = pyramid(image)
        if levels_per_image is not None and len(levels) > levels_per_image:
            keep = sorted(rng.choice(len(levels), levels_per_image, replace=False))
            levels = [levels[i] for i in keep]
        pnet.extend(levels)
        proposals, survivors = cascade.boxes(image)
        pick = rng.permutation(len(proposals))
        rnet.append(crops(image, proposals[pick[:rnet_per_image]], 24))
        extra = proposals[pick[rnet_per_image:rnet_per_image + onet_extra_per_image]]
        onet.append(crops(image, np.concatenate([survivors, jitter(survivors, rng), extra]), 48))
    return NetData(pnet, np.concatenate(rnet), np.concatenate(onet))


def jitter(boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomly shifted (up to 15%) and rescaled (0.8..1.25) copies of square
    boxes: imperfect R-Net boxes, whose landmarks fall partly outside [0, 1]."""
    size = (boxes[:, 2] - boxes[:, 0])[:, None]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + rng.uniform(-0.15, 0.15, (len(boxes), 2)) * size
    half = size * np.exp(rng.uniform(np.log(0.8), np.log(1.25), (len(boxes), 1))) / 2
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def calibration_samples(data: NetData, role: str) -> list[np.ndarray]:
    if role == "pnet":
        return [level.astype(np.float32) for level in data.pnet]
    return [crop[None] for crop in getattr(data, role)]


# --------------------------------------------------------------------------
# Verification and benchmark
# --------------------------------------------------------------------------

def compare(role: str, model: bytes, reference: tf.keras.Model, data: NetData) -> dict:
    """Max/mean |TFLite - Keras| per output, plus decision agreement."""
    net = TfliteNet(model, pnet=role == "pnet")
    if role == "pnet":
        batches = data.pnet  # one interpreter resized for every level
    else:
        inputs = getattr(data, role)
        batches = [inputs[i:i + 16] for i in range(0, len(inputs), 16)]
    diffs: dict[int, list[np.ndarray]] = {}
    agree, total = 0, 0
    for batch in batches:
        got, want = net(batch), reference_outputs(reference, batch)
        if set(got) != set(want):
            raise AssertionError(f"{role}: outputs {sorted(got)} != {sorted(want)}")
        for key in want:
            diffs.setdefault(key, []).append(np.abs(got[key] - want[key]).reshape(-1))
        threshold = THRESHOLDS[role]
        agree += int(np.sum((got[2][..., 1] > threshold) == (want[2][..., 1] > threshold)))
        total += want[2][..., 1].size
    result = {OUTPUT_NAMES[k]: {"max_abs": _round(np.max(np.concatenate(v))),
                                "mean_abs": _round(np.mean(np.concatenate(v)))}
              for k, v in sorted(diffs.items())}
    result["decision_agreement"] = {"threshold": THRESHOLDS[role],
                                    "rate": _round(agree / total, 5), "count": total}
    return result


def _round(value, digits: int = 3) -> float:
    """Significant digits, to keep the manifest readable."""
    return float(f"{float(value):.{digits}g}")


def check_resizing(role: str, model: bytes, data: NetData) -> None:
    """Same interpreter, several shapes, run twice in a different order."""
    net = TfliteNet(model, pnet=role == "pnet")
    if role == "pnet":
        inputs = [data.pnet[i] for i in range(0, len(data.pnet), max(1, len(data.pnet) // 6))]
        inputs += [np.full((1, 480, 640, 3), 90.0, np.float32),
                   np.full((1, 240, 320, 3), 90.0, np.float32)]
        first = [net(x) for x in inputs]
        second = [net(x) for x in reversed(inputs)][::-1]
        for x, a, b in zip(inputs, first, second):
            expected = (-(-(x.shape[1] - 2) // 2) - 4, -(-(x.shape[2] - 2) // 2) - 4)
            if a[2].shape[1:3] != expected or any(not np.array_equal(a[k], b[k]) for k in a):
                raise AssertionError(f"pnet resize failed at {x.shape}")
        LOG.info("  pnet: resize_tensor_input OK for %d shapes (%s .. %s)", len(inputs),
                 inputs[-1].shape[1:3], inputs[-2].shape[1:3])
        return
    batch = getattr(data, role)[:16]
    whole = net(batch)
    single = [net(batch[i:i + 1]) for i in range(len(batch))]
    again = net(batch)
    for key in whole:
        stacked = np.concatenate([s[key] for s in single])
        if not np.allclose(whole[key], stacked, atol=1e-5) or not np.array_equal(whole[key], again[key]):
            raise AssertionError(f"{role}: batch 16 and batch 1 disagree on output {key}")
    LOG.info("  %s: batch 1 and batch %d give the same outputs", role, len(batch))


def median_ms(model: bytes, shape: tuple, threads: int, runs: int, rounds: int = 3) -> float:
    """Median ms per invoke; the lowest of a few rounds' medians, so that a
    burst of load from elsewhere on the machine does not decide the result."""
    net = TfliteNet(model, num_threads=threads)
    rng = np.random.default_rng(0)
    net.set_input(rng.uniform(0, 255, shape).astype(np.float32))
    for _ in range(5):
        net.interpreter.invoke()
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            net.interpreter.invoke()
            times.append(time.perf_counter() - start)
        medians.append(float(np.median(times)))
    return 1000.0 * min(medians)


def benchmark(role: str, label: str, model: bytes, runs: int) -> None:
    for shape in BENCH_SHAPES[role]:
        timings = {t: median_ms(model, shape, t, runs) for t in (1, 2)}
        LOG.info("  speed %-4s %-15s %-16s 1 thread %7.2f ms | 2 threads %7.2f ms | "
                 "XNNPACK partitions %d", role, label, "x".join(map(str, shape)),
                 timings[1], timings[2], xnnpack_partitions(model, shape))


def end_to_end(models: dict[str, bytes], images: list[Path]) -> dict:
    """Run the original package's detector, once with its Keras nets and once
    with the TFLite nets swapped in; compare faces found, boxes, landmarks."""
    from mtcnn import MTCNN

    class AsKeras:
        """Looks like the package's Keras model: takes normalised images."""

        def __init__(self, model: bytes, order: tuple[int, ...], pnet: bool):
            self.net, self.order = TfliteNet(model, pnet=pnet), order

        def __call__(self, normalised):
            raw = np.asarray(normalised, np.float32) * 128.0 + NORM_MEAN
            out = self.net(raw)
            return [tf.constant(out[k]) for k in self.order]

    original, converted = MTCNN(), MTCNN()
    order = {"pnet": (4, 2), "rnet": (4, 2), "onet": (4, 10, 2)}
    for stage_id, role in enumerate(ROLES, start=1):
        converted.get_stage(stage_id=stage_id)._model = AsKeras(models[role], order[role], role == "pnet")
    faces_a = faces_b = matched = 0
    ious, landmark_err = [], []
    for path in images:
        image = read_rgb(path)
        a = original.detect_faces(image, box_format="xyxy")
        b = converted.detect_faces(image, box_format="xyxy")
        faces_a, faces_b = faces_a + len(a), faces_b + len(b)
        for face in a:
            best, best_iou = None, 0.0
            for other in b:
                iou = _iou(face["box"], other["box"])
                if iou > best_iou:
                    best, best_iou = other, iou
            if best is not None and best_iou > 0.5:
                matched += 1
                ious.append(best_iou)
                landmark_err.extend(np.hypot(*np.subtract(face["keypoints"][k], best["keypoints"][k]))
                                    for k in face["keypoints"])
    # The package reports landmarks as whole pixels, hence the coarse landmark error.
    return {"images": len(images), "faces_original": faces_a, "faces_tflite": faces_b,
            "matched_iou_over_0.5": matched, "mean_iou": _round(np.mean(ious)) if ious else 0.0,
            "max_landmark_px": _round(np.max(landmark_err)) if landmark_err else 0.0}


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def check_orientation(reference: dict[str, tf.keras.Model], data: NetData) -> None:
    """The weights must take upright images and give x-first outputs: an
    upright face crop should score higher than its transpose, and on LFW
    (upright, frontal) landmark x1 (left eye) < x2 (right eye)."""
    faces = data.onet[:32]
    upright = reference_outputs(reference["onet"], faces)
    transposed = reference_outputs(reference["onet"], faces.transpose(0, 2, 1, 3))
    confident = upright[2][:, 1] > 0.9
    if not np.any(confident):
        LOG.warning("orientation check skipped: no confident faces")
        return
    up_score = upright[2][confident, 1].mean()
    tr_score = transposed[2][confident, 1].mean()
    left_first = np.mean(upright[10][confident, 0] < upright[10][confident, 1])
    LOG.info("orientation: mean face prob upright %.3f vs transposed %.3f; landmark x1 < x2 "
             "on %.0f%% of %d faces", up_score, tr_score, 100 * left_first, confident.sum())
    if up_score <= tr_score or left_first < 0.9:
        raise AssertionError("weights do not look upright/x-first; conversion wrapper needs a transpose")


# --------------------------------------------------------------------------
# Output files and manifest
# --------------------------------------------------------------------------

def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def update_manifest(out_dir: Path, entries: dict[str, dict]) -> None:
    """Merge our entries into manifest.json under an fcntl lock."""
    manifest = out_dir / "manifest.json"
    with open(out_dir / ".manifest.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(manifest.read_text()) if manifest.exists() else {}
            data.setdefault("models", {}).update(entries)
            text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            write_atomic(manifest, text.encode("utf-8"))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def describe_io(role: str, model: bytes) -> tuple[dict, list[dict]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    detail = interpreter.get_input_details()[0]
    shape = [None if d < 0 else int(d) for d in detail["shape_signature"]]
    dtype = np.dtype(detail["dtype"]).name
    quant = detail["quantization"]
    normalisation = ("baked into graph: (x - 127.5) * 0.0078125, folded into the first "
                     "convolution's weights and bias")
    value_range = [0.0, 255.0]
    inputs = {"shape": shape, "layout": "NHWC", "channel_order": "RGB",
              "value_range": value_range, "normalisation": normalisation, "dtype": dtype,
              "orientation": "upright (rows = y, columns = x); no transpose needed"}
    if dtype == "int8":
        inputs["quantization"] = {"scale": float(quant[0]), "zero_point": int(quant[1]),
                                  "note": "real = scale * (q - zero_point) = raw pixel value"}
    meaning = {
        "prob": "softmax face probability; channel 0 = not face, channel 1 = face",
        "bbox": ("box regression (dx1, dy1, dx2, dy2); x along image width, y along height; "
                 + ("fractions of the 12-pixel window, stride 2, cell size 12"
                    if role == "pnet" else "fractions of the input box width/height")),
        "heads": ("channels 0-1: not-face and face logits (softmax them for the face probability); "
                  "channels 2-5: box regression (dx1, dy1, dx2, dy2), x along image width, y along "
                  "height, as fractions of the 12-pixel window; stride 2, cell size 12"),
        "landmarks": ("(x1..x5, y1..y5) as fractions of the box width/height from its top-left; "
                      "points: left eye, right eye, nose, left mouth corner, right mouth corner "
                      "(left = smaller image x)"),
    }
    names = interpreter.get_signature_list()["serving_default"]["outputs"]
    runner_outputs = interpreter.get_signature_runner().get_output_details()
    outputs = []
    for name in sorted(names, key=lambda n: {"heads": 0, "prob": 1, "bbox": 2, "landmarks": 3}[n]):
        out = runner_outputs[name]
        entry = {"name": name, "shape": [None if d < 0 else int(d) for d in out["shape_signature"]],
                 "dtype": np.dtype(out["dtype"]).name, "meaning": meaning[name]}
        if entry["dtype"] == "int8":
            scale, zero = out["quantization"]
            entry["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
        outputs.append(entry)
    return inputs, outputs


def manifest_entry(role: str, variant: str, model: bytes, source: SourceInfo,
                   prelu: str, calib: NetData | None, n_calib_images: int,
                   verification: dict) -> dict:
    inputs, outputs = describe_io(role, model)
    notes = [
        f"Rebuilt from the {SOURCE_PACKAGE} {SOURCE_VERSION} weights (list order of the "
        "package's Keras model.weights) with TF ops on constants; the package's Keras model "
        "is the reference in verification.",
        "Weights take upright images; outputs are already x-first, so no transpose or "
        "re-ordering was added.",
    ]
    if role != "pnet":
        notes.append("Keras Permute((2,1,3))+Flatten replaced by re-ordering the first dense "
                     "kernel's rows (exact).")
    elif variant != "int8":
        notes.append("The two 1x1 heads are one convolution with 6 outputs (logits, then box "
                     "offsets); the softmax is left to the runtime.")
    notes.append({
        "native": "PReLU as the TFLite PRELU op.",
        "split": ("PReLU rewritten exactly as relu(L(x)) + t * relu(L'(x)), L = the conv/dense "
                  "layer before it, L' = that layer with weights and bias scaled by -|alpha|, "
                  "t = -sign(alpha) (+1 where alpha <= 0): only CONV_2D/FULLY_CONNECTED with "
                  "fused RELU, MUL and ADD, so XNNPACK runs the whole int8 graph in one "
                  "partition (it has no int8 PRELU or RELU)."),
        "muladd": "PReLU rewritten as alpha*x + (1-alpha)*relu(x).",
    }[prelu])
    if variant == "float16":
        notes.append("float16 weights, dequantized to float32 at load; float32 input/output.")
    if variant == "int8":
        notes.append(
            f"Full integer quantization (int8 weights, activations, input and outputs), "
            f"calibrated on {calibration_count(role, calib)} samples from {n_calib_images} "
            f"LFW images not referenced in pairs.csv (seed {SEED}): "
            + {"pnet": "image-pyramid levels (scale 0.6*0.709^k, INTER_AREA)",
               "rnet": "24x24 crops of the proposals of the original package's P-Net stage",
               "onet": "48x48 crops of the boxes kept by the original package's R-Net stage, "
                       "jittered copies of them and some P-Net proposals"}[role]
            + ".")
        if role == "pnet":
            notes.append("int8 P-Net agrees with float on most cells (see verification) but its "
                         "recall on the smallest faces is untested here; an earlier int8 P-Net "
                         "lost the smallest faces, so check before preferring it to float.")
    return {
        "family": "mtcnn", "role": role, "variant": variant,
        "source_package": SOURCE_PACKAGE, "source_version": SOURCE_VERSION,
        "source_sha256": source.wheel_sha256,
        "source_file": f"mtcnn/assets/weights/{role}.lz4",
        "source_file_sha256": source.weight_sha256[role],
        "licence": source.licence,
        "sha256": hashlib.sha256(model).hexdigest(),
        "size_bytes": len(model),
        "input": inputs, "outputs": outputs,
        "tflite_ops": dict(sorted(collections.Counter(op_names(model)).items())),
        "converter": f"tensorflow {tf.__version__} (TFLiteConverter.from_concrete_functions), "
                     "models/convert_mtcnn.py",
        "verification": verification,
        "notes": " ".join(notes),
    }


def calibration_count(role: str, calib: NetData | None) -> int:
    return 0 if calib is None else len(calibration_samples(calib, role))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, default=Path("/work/shared/data/lfw"),
                        help="LFW folder with <Person>/*.jpg and pairs.csv")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="where the .tflite files and manifest.json go")
    parser.add_argument("--calib-images", type=int, default=300,
                        help="LFW images (outside pairs.csv) used for int8 calibration")
    parser.add_argument("--verify-images", type=int, default=40,
                        help="further LFW images used to compare against the Keras models")
    parser.add_argument("--wheel", type=Path, default=None,
                        help="the mtcnn-1.0.0 wheel, to hash it (otherwise the installer's "
                             "record or the pinned PyPI hash is used)")
    parser.add_argument("--no-bench", action="store_true", help="skip the speed measurements")
    parser.add_argument("--bench-runs", type=int, default=50)
    parser.add_argument("--compare-int8-prelu", action="store_true",
                        help="also build and time the other int8 PReLU forms (not written)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    args = parse_args(argv)
    tf.keras.utils.set_random_seed(SEED)
    args.out.mkdir(parents=True, exist_ok=True)

    source = load_source_info(args.wheel)
    LOG.info("source: %s %s, wheel sha256 %s (%s)", SOURCE_PACKAGE, SOURCE_VERSION,
             source.wheel_sha256, source.wheel_sha256_origin)

    calib_paths, verify_paths = split_lfw(args.lfw, args.calib_images, args.verify_images)
    cascade = PackageCascade()
    rng = np.random.default_rng(SEED)
    calib = collect(calib_paths, cascade, rng, levels_per_image=2, rnet_per_image=6,
                    onet_extra_per_image=2)
    LOG.info("calibration data: %s", calib.describe())
    verify = collect(verify_paths, cascade, rng, levels_per_image=None, rnet_per_image=32,
                     onet_extra_per_image=8)
    LOG.info("verification data: %s", verify.describe())

    weights = {role: load_weights(source, role) for role in ROLES}
    reference = {role: build_reference_model(role, weights[role]) for role in ROLES}
    check_orientation(reference, verify)

    entries, written = {}, {}
    for role in ROLES:
        for variant in VARIANTS:
            prelu = INT8_PRELU[role] if variant == "int8" else FLOAT_PRELU
            model = convert(role, weights[role], variant, prelu,
                            calibration_samples(calib, role) if variant == "int8" else None)
            name = f"mtcnn_{role}_{variant}.tflite"
            result = compare(role, model, reference[role], verify)
            LOG.info("%s (%d bytes, prelu=%s): %s", name, len(model), prelu,
                     json.dumps(result, sort_keys=True))
            check_resizing(role, model, verify)
            if not args.no_bench:
                benchmark(role, f"{variant}/{prelu}", model, args.bench_runs)
            if variant == "int8" and args.compare_int8_prelu:
                for other in ("native", "muladd", "split"):
                    if other == prelu:
                        continue
                    alt = convert(role, weights[role], variant, other,
                                  calibration_samples(calib, role))
                    LOG.info("  alternative int8 prelu=%s: %s", other,
                             json.dumps(compare(role, alt, reference[role], verify), sort_keys=True))
                    if not args.no_bench:
                        benchmark(role, f"{variant}/{other}", alt, args.bench_runs)
            write_atomic(args.out / name, model)
            written[name] = model
            entries[name] = manifest_entry(role, variant, model, source, prelu, calib,
                                           len(calib_paths), result)

    for variant in VARIANTS:
        models = {role: written[f"mtcnn_{role}_{variant}.tflite"] for role in ROLES}
        LOG.info("end-to-end (package pipeline, %s nets swapped in): %s", variant,
                 json.dumps(end_to_end(models, verify_paths), sort_keys=True))

    update_manifest(args.out, entries)
    for name, model in written.items():
        LOG.info("wrote %s (%d bytes)", args.out / name, len(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
