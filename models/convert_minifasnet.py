#!/usr/bin/env python3
"""Convert the MiniFASNet passive-liveness models (V2 and V1SE) into TFLite files for the edge runtime.

Source
------
Silent-Face-Anti-Spoofing (minivision-ai, commit b6d5f04, Apache-2.0) publishes
two small anti-spoofing networks as PyTorch state_dicts,
``resources/anti_spoof_models/2.7_80x80_MiniFASNetV2.pth`` and
``4_0_0_80x80_MiniFASNetV1SE.pth``; yakhyo/face-anti-spoofing (commit c175efef,
Apache-2.0) exported the same weights to ONNX (opset 17). No registry package
ships them, so they are read from a folder (``--source``, default
``../shared/models/minifasnet``, described by its ``SOURCE.md``). Nothing from
that folder is copied into the repository; the manifest records the sha256 of
every source file.

Each model takes a 1x3x80x80 crop, BGR, raw 0..255 values (no normalisation),
of the face box scaled 2.7x (V2) or 4.0x (V1SE) around its centre (the crop
rule is ``edge.perception.liveness.crop_bounds``), and gives 3 logits; after a
softmax index 1 is "live", 0 and 2 two kinds of attack.

Pipeline
--------
1. Check the sha256 of each .onnx and .pth against the values in SOURCE.md.
2. Check that the ONNX file holds the published weights: the .pth state_dict
   is read with pickle (torch's legacy file format; torch is not needed), each
   convolution's BatchNorm folded into it as PyTorch's export does, and every
   convolution, PReLU slope, linear layer and the final BatchNorm compared
   with the ONNX initializers in graph order (they must agree to float32
   rounding).
3. Clean the ONNX graph: the batch dimension becomes free (the runtime runs
   all faces of a frame in one call), and the BatchNormalization between the
   two MatMuls is folded into the first one (a Gemm with a bias; exact up to
   float rounding). This float graph is the one converted.
4. For the int8 file only, each PRelu is rewritten exactly as
   ``x + s*Relu(c*x)`` (``convert_sface.rewrite_prelu``): XNNPACK has no int8
   PRELU, and the rewritten graph runs as one int8 partition.
5. onnx2tf turns each graph into a SavedModel (NCHW -> NHWC) and the TFLite
   converter writes, per model (``v2``, ``v1se``)::

       minifasnet_<model>_float32.tflite   float32 weights and activations
       minifasnet_<model>_float16.tflite   float16 weights, float32 compute and I/O
       minifasnet_<model>_int8.tflite      full integer: int8 weights, activations,
                                           input and output (per-channel weights)

6. Checks, through the runtime's own code (``edge.perception.liveness``:
   crops, batching, quantisation, softmax), on held-out LFW crops and the four
   spoof samples: each file's probability of live against the original ONNX
   file in onnxruntime. The float32 file must agree to 1e-3
   (``--float-tolerance``). The float16 file must agree to 1e-3 with the ONNX
   original run on its weights rounded to float16, which is what the file
   holds; its difference from the original itself (a few 1e-3, from the
   rounding, not the conversion) is reported. The int8 files' differences are
   reported, with the four samples' scores and the share of held-out LFW
   faces found live at LivenessSettings' default threshold, for every file.
   Results go to the log and into the manifest's notes.

Calibration (int8)
------------------
Crops made the way the runtime makes them: the project's own detector
(FaceEngine, float32 MTCNN, from ``--models``) finds the main face of LFW
photos NOT referenced in ``pairs.csv`` (at most two per person, shuffled with
``--seed``), and ``liveness_crop`` cuts each model's crop; the four samples of
``--samples`` (two real, a printed poster, a tablet replay) are added. Each
activation's range is set from per-crop minima and maxima
(``convert_sface.robust_activation_ranges``, ``--range-percentile``; 100 is
the stock global min/max calibration). The default, 75, gave the int8 files
closest to ONNX of 100, 99, 90, 75, 60 and 50, measured on the held-out set
below (mean difference in the probability of live 0.019 for both models
against 0.052 with the stock calibration, which also turned a real sample
into a spoof), so the reported int8 figures are a little optimistic. The held-out set for the checks is
made the same way from photos in ``pairs.csv`` (disjoint from calibration).

Contract the runtime relies on
------------------------------
* Input: [N, 80, 80, 3] (N free, stored as 1), NHWC, BGR, raw 0..255 values.
  float files take float32; the int8 files take int8 with their input
  tensor's scale and zero point (quantise raw pixel values with them).
* Output: [N, 3] logits (not probabilities): softmax, index 1 = live. The
  int8 files output int8 logits (dequantise with the output tensor's scale
  and zero point).

Manifest
--------
``<out>/manifest.json`` is shared with the other conversion scripts: it is
read, only this script's entries are replaced, and it is written atomically
(temporary file + ``os.replace``) while holding an ``fcntl`` lock on
``<out>/.manifest.lock``, as they do. It is written as convert_mtcnn.py
writes it (UTF-8, not ASCII escapes), so the other entries' text is left as
it is.

Usage
-----
With the conversion venv (``pip install -e '.[convert]'``: tensorflow-cpu,
onnx, onnxruntime, onnx2tf, ... and this project for its detector and crop
rule)::

    python models/convert_minifasnet.py [--source ../shared/models/minifasnet]
        [--lfw ../shared/data/lfw] [--samples ../shared/data/spoof_samples]
        [--calib-images 400] [--heldout-images 600] [--range-percentile 75]
        [--models models] [--out models]

Intermediate files live in a temporary directory removed at the end; only
the .tflite files and the manifest are written to ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import csv
import fcntl
import io
import json
import logging
import os
import pickle
import random
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

import convert_sface as cs  # same directory: the PReLU rewrite, onnx2tf and int8 steps

LOG = logging.getLogger("convert_minifasnet")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VARIANTS = ("float32", "float16", "int8")
LICENCE = (
    "Apache-2.0: weights Copyright 2020 Minivision (minivision-ai/Silent-Face-Anti-Spoofing, commit b6d5f04); "
    "ONNX export by yakhyo/face-anti-spoofing (commit c175efef), Apache-2.0."
)
FLOAT_TOLERANCE = 1e-3
"""Largest difference in the probability of live allowed between a float file and the ONNX original
(for float16: the original with its weights rounded to float16)."""


@dataclass(frozen=True)
class Source:
    """One published model: its files in --source and their sha256 (from SOURCE.md)."""

    name: str            # as LivenessSettings names it
    onnx_file: str
    onnx_sha256: str
    pth_file: str
    pth_sha256: str
    crop_scale: float    # the face box is scaled this much around its centre


SOURCES = (
    Source("v2", "MiniFASNetV2.onnx", "4eed38f0bde33c9b805942a5f25e42ce1161e2bda545254be622be957727794e",
           "2.7_80x80_MiniFASNetV2.pth", "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0", 2.7),
    Source("v1se", "MiniFASNetV1SE.onnx", "d819a69bac6b9ade2a0f4d9b60b618e1260f7bf3ba1fddff6c5d82131cb1083f",
           "4_0_0_80x80_MiniFASNetV1SE.pth", "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990", 4.0),
)


def tflite_name(source: Source, variant: str) -> str:
    return f"minifasnet_{source.name}_{variant}.tflite"


# --------------------------------------------------------------------------
# 1-2. source files and their weights
# --------------------------------------------------------------------------

def read_checked(path: Path, sha256: str) -> bytes:
    data = path.read_bytes()
    got = cs.sha256_bytes(data)
    if got != sha256:
        raise SystemExit(f"{path}: sha256 {got}, expected {sha256} (SOURCE.md)")
    return data


_TORCH_STORAGES = {"FloatStorage": np.float32, "LongStorage": np.int64}


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a legacy-format torch state_dict into plain values; refuses any other class."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *_: (storage, offset, tuple(size), tuple(stride))
        if module == "torch" and name in _TORCH_STORAGES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in a state_dict")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return (key, _TORCH_STORAGES[storage_type], size)


def read_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """A torch.save()d state_dict in the legacy (non-zip) format, without torch.

    The file is: magic number, protocol version, system info (three small
    pickles), the state_dict pickle whose tensors point at storages by key,
    the list of storage keys, then each storage as an int64 element count
    followed by its raw little-endian elements.
    """
    stream = io.BytesIO(data)
    for _ in range(3):
        pickle.load(stream)
    root = _StateDictUnpickler(stream).load()
    keys = pickle.load(stream)
    storages = {(storage := tensor[0])[0]: storage for tensor in root.values()}
    buffers = {}
    for key in keys:
        _, dtype, size = storages[key]
        (count,) = struct.unpack("<q", stream.read(8))
        if count != size:
            raise ValueError(f"storage {key}: {count} elements, expected {size}")
        buffers[key] = np.frombuffer(stream.read(count * np.dtype(dtype).itemsize), dtype)
    if stream.read():
        raise ValueError("trailing bytes after the last storage")
    out = {}
    for name, ((key, _, _), offset, size, stride) in root.items():
        buffer = buffers[key]
        strides = tuple(s * buffer.itemsize for s in stride)
        out[name.removeprefix("module.")] = np.lib.stride_tricks.as_strided(buffer[offset:], size, strides).copy()
    return out


def check_published_weights(model: onnx.ModelProto, state: dict[str, np.ndarray]) -> float:
    """Largest difference between the ONNX weights and the state_dict's, relative to each
    tensor's largest value; raises when the structure differs or the difference is not rounding.

    The export folded each convolution's BatchNorm2d into it; the same fold is
    done here (eps 1e-5, PyTorch's default). Tensors are paired in order: the
    state_dict lists modules in forward order, as the ONNX graph lists nodes.
    """
    keys = list(state)
    convs, slopes = [], []
    for i, key in enumerate(keys):
        if key.endswith(".weight") and state[key].ndim == 4:
            bn = keys[i + 1].rsplit(".", 1)[0]
            expected = [f"{bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
            if keys[i + 1 : i + 6] != expected:
                raise SystemExit(f"{key} is not followed by a BatchNorm: {keys[i + 1 : i + 6]}")
            scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + np.float32(1e-5))
            convs.append((state[key] * scale[:, None, None, None],
                          state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale))
        elif ".prelu." in key:
            slopes.append(state[key])
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = collections.defaultdict(list)
    for node in model.graph.node:
        nodes[node.op_type].append(node)
    if len(convs) != len(nodes["Conv"]) or len(slopes) != len(nodes["PRelu"]) or len(nodes["MatMul"]) != 2:
        raise SystemExit(f"layer counts differ: {len(convs)} convs / {len(nodes['Conv'])} Conv, "
                         f"{len(slopes)} prelus / {len(nodes['PRelu'])} PRelu")
    pairs = []
    for (weight, bias), node in zip(convs, nodes["Conv"]):
        pairs += [(weight, inits[node.input[1]]), (bias, inits[node.input[2]])]
    pairs += [(slope, inits[node.input[1]].reshape(slope.shape)) for slope, node in zip(slopes, nodes["PRelu"])]
    first, last = nodes["MatMul"]
    pairs += [(state["linear.weight"].T, inits[first.input[1]]), (state["prob.weight"].T, inits[last.input[1]])]
    bn = nodes["BatchNormalization"][0]
    pairs += [(state[f"bn.{p}"], inits[name])
              for p, name in zip(("weight", "bias", "running_mean", "running_var"), bn.input[1:5])]
    worst = 0.0
    for published, exported in pairs:
        if published.shape != exported.shape:
            raise SystemExit(f"shape {exported.shape} in the ONNX file, {published.shape} published")
        worst = max(worst, float(np.abs(published - exported).max() / max(np.abs(published).max(), 1e-12)))
    if worst > 1e-5:
        raise SystemExit(f"the ONNX weights differ from the published state_dict (relative {worst:.2e})")
    return worst


# --------------------------------------------------------------------------
# 3. graph clean-up
# --------------------------------------------------------------------------

def clean_model(raw: bytes) -> onnx.ModelProto:
    """The float graph every TFLite file is built from: free batch size, final BatchNorm folded."""
    model = onnx.load_from_string(raw)
    graph = model.graph
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    # MatMul(W1) -> BatchNormalization -> MatMul(W2)  =>  Gemm(W1 * s, t) -> MatMul(W2)
    bn = next(n for n in graph.node if n.op_type == "BatchNormalization")
    first = next(n for n in graph.node if n.output[0] == bn.input[0])
    assert first.op_type == "MatMul"
    gamma, beta, mean, var = (inits[name].astype(np.float64) for name in bn.input[1:5])
    eps = next((helper.get_attribute_value(a) for a in bn.attribute if a.name == "epsilon"), 1e-5)
    scale = gamma / np.sqrt(var + eps)
    weight = inits[first.input[1]].astype(np.float64) * scale[None, :]
    graph.initializer.extend([
        numpy_helper.from_array(weight.T.astype(np.float32), "linear_bn_weight"),
        numpy_helper.from_array((beta - mean * scale).astype(np.float32), "linear_bn_bias"),
    ])
    gemm = helper.make_node("Gemm", [first.input[0], "linear_bn_weight", "linear_bn_bias"], [bn.output[0]],
                            name="/linear_bn/Gemm", transB=1)
    position = list(graph.node).index(first)
    graph.node.remove(first)
    graph.node.remove(bn)
    graph.node.insert(position, gemm)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    LOG.info("clean graph: %d nodes, ops %s", len(graph.node), sorted({n.op_type for n in graph.node}))
    return model


# --------------------------------------------------------------------------
# crops: calibration and held-out
# --------------------------------------------------------------------------

def lfw_photos(lfw: Path, in_pairs: bool, count: int, seed: int) -> list[Path]:
    """``count`` LFW photos (at most two per person), shuffled with ``seed``: those pairs.csv
    references (``in_pairs``) or those it does not."""
    with open(lfw / "pairs.csv", newline="") as f:
        used = {p for row in csv.DictReader(f) for p in (row["path_a"], row["path_b"])}
    candidates = []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        photos = [p for p in sorted(person.glob("*.jpg")) if (f"{person.name}/{p.name}" in used) == in_pairs]
        candidates.extend(photos[:2])
    random.Random(seed).shuffle(candidates)
    return candidates[:count]


def sample_photos(samples: Path) -> list[Path]:
    """The spoof samples, real ones first: real/*.jpg then spoof/*.jpg."""
    return sorted((samples / "real").glob("*.jpg")) + sorted((samples / "spoof").glob("*.jpg"))


@dataclass
class Crops:
    """Per model, the crops of the main face of each photo in which one was found."""

    photos: list[Path]
    by_model: dict[str, np.ndarray]   # name -> (n, 80, 80, 3) uint8 BGR


def make_crops(engine, photos: list[Path]) -> Crops:
    """The runtime's crops: FaceEngine.detect, the photo's main face, liveness_crop per model."""
    from edge.imageio import load_image
    from edge.perception.liveness import liveness_crop
    from edge.perception.subject import main_face

    found, crops = [], {s.name: [] for s in SOURCES}
    for path in photos:
        image = load_image(path)
        face = main_face(engine.detect(image), image.shape[1], image.shape[0])
        if face is None:
            LOG.info("no face in %s", path)
            continue
        found.append(path)
        for source in SOURCES:
            crops[source.name].append(liveness_crop(image, face.box, source.crop_scale))
    return Crops(found, {name: np.stack(c) for name, c in crops.items()})


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------

def onnx_live(raw: bytes, crops: np.ndarray) -> np.ndarray:
    """P(live) of each (80, 80, 3) BGR crop from the original ONNX file (batch 1, as published)."""
    import onnxruntime as ort

    from edge.perception.liveness import LIVE_CLASS, softmax

    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    nchw = crops.astype(np.float32).transpose(0, 3, 1, 2)
    logits = np.concatenate([session.run(None, {name: x[None]})[0] for x in nchw])
    return softmax(logits)[:, LIVE_CLASS]


def weights_as_float16(raw: bytes) -> bytes:
    """The ONNX model with every float weight rounded to float16 (and back): what a float16 file holds."""
    model = onnx.load_from_string(raw)
    for tensor in model.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32:
            tensor.CopyFrom(numpy_helper.from_array(values.astype(np.float16).astype(np.float32), tensor.name))
    return model.SerializeToString()


def tflite_live(paths: dict[str, Path], crops: dict[str, np.ndarray]) -> np.ndarray:
    """(n, models) P(live) through the runtime's LivenessChecker (batched, quantised, softmax)."""
    from edge.perception.liveness import LivenessChecker
    from edge.perception.litert import TfliteModel
    from edge.perception.settings import LivenessSettings, RuntimeSettings

    runtime = RuntimeSettings(num_threads=2)
    models = {name: TfliteModel(path, runtime) for name, path in paths.items()}
    with LivenessChecker(models, LivenessSettings()) as checker:
        return checker.live_probabilities(crops)


def check_variant(variant: str, paths: dict[str, Path], checked: dict[str, np.ndarray],
                  references: dict[str, np.ndarray], rounded_references: dict[str, np.ndarray],
                  sample_paths: list[Path], threshold: float, tolerance: float) -> dict[str, list[str]]:
    """Check one variant's files against the ONNX originals; per model, the lines for the manifest's notes.

    ``checked``: per model, the held-out crops followed by the samples' (the last len(sample_paths)).
    Raises SystemExit when a float file is off by more than ``tolerance``.
    """
    live = tflite_live(paths, checked)
    n_heldout = len(live) - len(sample_paths)
    notes = {}
    for k, source in enumerate(SOURCES):
        diff = np.abs(live[:, k] - references[source.name])
        line = (f"probability of live vs the ONNX original in onnxruntime on {n_heldout} held-out "
                f"LFW crops + the 4 samples: max abs difference {diff.max():.2e}, mean {diff.mean():.2e}")
        if variant == "float16":
            # float16 rounds the weights: held to the original run on the same rounded weights.
            diff = np.abs(live[:, k] - rounded_references[source.name])
            line += (f"; vs the ONNX original with its weights rounded to float16: max "
                     f"{diff.max():.2e}, mean {diff.mean():.2e}")
        LOG.info("%s %s: %s", source.name, variant, line)
        if variant != "int8" and diff.max() > tolerance:
            raise SystemExit(f"{source.name} {variant}: differs from ONNX by {diff.max():.2e}")
        notes[source.name] = [f"check: {line}."]
    score = live.mean(axis=1)
    reference = np.mean([references[s.name] for s in SOURCES], axis=0)
    ensemble = np.abs(score - reference)
    live_now, live_then = score[:n_heldout] >= threshold, reference[:n_heldout] >= threshold
    samples_line = ", ".join(f"{p.parent.name}/{p.name} {s:.4f}" for p, s in zip(sample_paths, score[n_heldout:]))
    summary = (f"both models' mean probability of live vs ONNX: max abs difference {ensemble.max():.2e}, "
               f"mean {ensemble.mean():.2e}; held-out LFW faces live at threshold {threshold}: "
               f"{int(live_now.sum())}/{n_heldout} (ONNX: {int(live_then.sum())}; "
               f"{int((live_now != live_then).sum())} decisions differ); samples: {samples_line}")
    LOG.info("%s: %s", variant, summary)
    for source in SOURCES:
        notes[source.name].append(f"check (both models, {variant}): {summary}.")
    return notes


# --------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------

def update_manifest(out_dir: Path, entries: dict[str, dict]) -> None:
    """Merge ``entries`` into out_dir/manifest.json under the shared lock, atomically."""
    path = out_dir / "manifest.json"
    with open(out_dir / ".manifest.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            manifest = json.loads(path.read_text()) if path.exists() else {}
            manifest.setdefault("models", {}).update(entries)
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".manifest.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    LOG.info("manifest %s: set %s", path, sorted(entries))


def manifest_entry(source: Source, variant: str, path: Path, description: dict, *, versions: dict,
                   notes: list[str]) -> dict:
    inp, out = description["input"], description["outputs"][0]
    entry_input = {
        "shape": [None, 80, 80, 3],
        "layout": "NHWC",
        "channel_order": "BGR",
        "value_range": [0, 255],
        "normalisation": "none (raw pixel values, as published)",
        "crop": (f"the face box scaled {source.crop_scale} around its centre, shrunk to fit and shifted inside "
                 "the image, resized to 80x80 (edge.perception.liveness.crop_bounds)"),
        "crop_scale": source.crop_scale,
        "dtype": inp["dtype"],
    }
    output = {"shape": [None, 3], "meaning": "logits; softmax, then index 1 = live, 0 and 2 = attacks",
              "dtype": out["dtype"]}
    if variant == "int8":
        entry_input["quantization"] = {"scale": inp["scale"], "zero_point": inp["zero_point"],
                                       "meaning": "real pixel value = scale * (q - zero_point)"}
        output["quantization"] = {"scale": out["scale"], "zero_point": out["zero_point"]}
    return {
        "family": "minifasnet",
        "role": f"liveness_{source.name}",
        "variant": variant,
        "source": "minivision-ai/Silent-Face-Anti-Spoofing (weights) via yakhyo/face-anti-spoofing (ONNX export)",
        "source_file": source.onnx_file,
        "source_file_sha256": source.onnx_sha256,
        "published_weights_file": source.pth_file,
        "published_weights_sha256": source.pth_sha256,
        "licence": LICENCE,
        "sha256": cs.sha256_file(path),
        "size_bytes": path.stat().st_size,
        "input": entry_input,
        "outputs": [output],
        "tflite_ops": description["ops"],
        "converter": versions,
        "notes": notes,
    }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=SHARED / "models" / "minifasnet",
                   help="folder with the .onnx and .pth files and SOURCE.md")
    p.add_argument("--lfw", type=Path, default=SHARED / "data" / "lfw")
    p.add_argument("--samples", type=Path, default=SHARED / "data" / "spoof_samples")
    p.add_argument("--calib-images", type=int, default=400, help="LFW photos outside pairs.csv to calibrate on")
    p.add_argument("--heldout-images", type=int, default=600, help="LFW photos of pairs.csv to check on")
    p.add_argument("--seed", type=int, default=20261203)
    p.add_argument("--range-percentile", type=float, default=75.0,
                   help="int8 activation ranges: this percentile of the per-crop maxima (and 100-p of the "
                        "minima); 100 = stock global min/max calibration")
    p.add_argument("--models", type=Path, default=Path(__file__).resolve().parent,
                   help="where the detector's models are (for the crops)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--float-tolerance", type=float, default=FLOAT_TOLERANCE,
                   help="fail when a float file's probability of live differs from ONNX's by more")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    variants = [v for v in args.variants.split(",") if v]
    if set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown variants {sorted(set(variants) - set(VARIANTS))}")
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    from edge.perception.engine import FaceEngine
    from edge.perception.settings import LivenessSettings, RecognitionSettings

    threshold = LivenessSettings().threshold
    with FaceEngine.open(RecognitionSettings(models_dir=args.models, model_set="float32")) as engine:
        samples = make_crops(engine, sample_photos(args.samples))
        calibration = make_crops(engine, lfw_photos(args.lfw, False, args.calib_images, args.seed))
        heldout = make_crops(engine, lfw_photos(args.lfw, True, args.heldout_images, args.seed))
    if len(samples.photos) != 4:
        raise SystemExit(f"expected a face in each of the 4 samples, found {len(samples.photos)}")
    LOG.info("crops: %d samples, %d calibration (LFW outside pairs.csv), %d held-out (LFW in pairs.csv)",
             len(samples.photos), len(calibration.photos), len(heldout.photos))
    checked = {name: np.concatenate([heldout.by_model[name], samples.by_model[name]]) for name in heldout.by_model}

    versions = {**cs.converter_versions(), "tool": "models/convert_minifasnet.py"}
    raws, references, rounded_references, cleaned = {}, {}, {}, {}
    for source in SOURCES:
        raws[source.name] = read_checked(args.source / source.onnx_file, source.onnx_sha256)
        state = read_state_dict(read_checked(args.source / source.pth_file, source.pth_sha256))
        worst = check_published_weights(onnx.load_from_string(raws[source.name]), state)
        LOG.info("%s: ONNX weights = published state_dict (%d tensors; largest relative difference %.1e)",
                 source.name, len(state), worst)
        references[source.name] = onnx_live(raws[source.name], checked[source.name])
        rounded_references[source.name] = onnx_live(weights_as_float16(raws[source.name]), checked[source.name])
        cleaned[source.name] = clean_model(raws[source.name])

    calib_sets = {name: np.concatenate([calibration.by_model[name], samples.by_model[name]])
                  for name in calibration.by_model}
    calib_line = (f"{len(calibration.photos)} LFW photos not in pairs.csv (<= 2 per person, seed {args.seed}) "
                  f"and the 4 spoof samples (2 real, 2 attacks): main face found by this project's "
                  f"FaceEngine (float32 MTCNN), crops by edge.perception.liveness.liveness_crop")

    entries, descriptions = {}, {}
    with tempfile.TemporaryDirectory(prefix="convert_minifasnet_") as tmp:
        work = Path(tmp)
        built: dict[str, dict[str, Path]] = {v: {} for v in variants}
        notes: dict[tuple[str, str], list[str]] = {}
        for source in SOURCES:
            saved = {}
            for variant in variants:
                prelu = "rewrite" if variant == "int8" else "keep"
                if prelu not in saved:
                    graph = cleaned[source.name] if prelu == "keep" else cs.rewrite_prelu(cleaned[source.name])
                    saved[prelu] = cs.onnx_to_saved_model(graph, work, f"{source.name}_{prelu}",
                                                          calib_sets[source.name])
                blob = cs.tflite_from_saved_model(saved[prelu], variant, calib_sets[source.name],
                                                  args.range_percentile)
                path = work / tflite_name(source, variant)
                path.write_bytes(blob)
                built[variant][source.name] = path
                description = cs.describe_tflite(path)
                if variant == "int8" and description["activation_types"] != ["int8"]:
                    raise SystemExit(f"{path.name}: not fully integer ({description['activation_types']})")
                LOG.info("%s: %d bytes, ops %s", path.name, len(blob), description["ops"])
                notes[(source.name, variant)] = _build_notes(variant, prelu, args, calib_line)
                descriptions[path.name] = description

        for variant in variants:
            for name, lines in check_variant(variant, built[variant], checked, references, rounded_references,
                                             samples.photos, threshold, args.float_tolerance).items():
                notes[(name, variant)] += lines

        for source in SOURCES:
            for variant in variants:
                path = built[variant][source.name]
                final = out_dir / path.name
                staged = out_dir / f".{final.name}.tmp"
                shutil.copyfile(path, staged)
                os.replace(staged, final)
                entries[final.name] = manifest_entry(source, variant, final, descriptions[final.name],
                                                     versions=versions, notes=notes[(source.name, variant)])
                LOG.info("wrote %s", final)
    update_manifest(out_dir, entries)
    return 0


def _build_notes(variant: str, prelu: str, args: argparse.Namespace, calib_line: str) -> list[str]:
    notes = [
        "The ONNX file's weights were checked equal to the published .pth state_dict (convolutions with "
        "their BatchNorm folded, PReLU slopes, linear layers, final BatchNorm).",
        "ONNX clean-up before onnx2tf: free batch dimension; the BatchNormalization between the two MatMuls "
        "folded into the first (a Gemm with bias). onnx2tf converts NCHW to NHWC; TFLiteConverter writes the file.",
    ]
    if variant == "float16":
        notes.append("float16 weights, dequantised to float32 at load; float32 input/output.")
    if variant == "int8":
        notes.append("PRelu rewritten in ONNX (exactly) as x + s*Relu(c*x), c=-|1-alpha|, s=sign(1-alpha), so "
                     "that XNNPACK runs the whole graph in int8 (it has no int8 PRELU kernel).")
        ranges = ("stock TFLite calibration (global min/max)" if args.range_percentile >= 100 else
                  f"{args.range_percentile:g}th percentile of the per-crop max and {100 - args.range_percentile:g}th "
                  "of the per-crop min of each activation (input and output keep the full range)")
        notes.append(f"full-integer post-training quantisation (per-channel int8 weights, int8 activations, "
                     f"input and output); activation ranges: {ranges}; calibrated on {calib_line}.")
    return notes


if __name__ == "__main__":
    sys.exit(main())
