"""Which .tflite files make up a model set, and checking them against the manifest.

A model set names one variant per network (P-Net, R-Net, O-Net, embedder);
the liveness models (MiniFASNet V2 and V1SE) come in the same three sets,
chosen on their own ([recognition.liveness] model_set).
Files live in the models directory beside `manifest.json`, which records each
file's sha256; a file that does not match is refused (a wrong or damaged
model gives wrong identities, not an error, so it must be caught here).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edge.perception.litert import ModelError
from edge.perception.settings import RecognitionSettings

ROLES = ("pnet", "rnet", "onet", "embed")

MODEL_SETS: dict[str, dict[str, str]] = {
    "float32": {"pnet": "float32", "rnet": "float32", "onet": "float32", "embed": "float32"},
    "float16": {"pnet": "float16", "rnet": "float16", "onet": "float16", "embed": "float16"},
    # Full int8 everywhere: what an Edge TPU compiler takes.
    "int8": {"pnet": "int8", "rnet": "int8", "onet": "int8", "embed": "int8"},
}

_FILE_PREFIX = {"pnet": "mtcnn_pnet", "rnet": "mtcnn_rnet", "onet": "mtcnn_onet", "embed": "sface"}


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """Paths of the four networks of one model set."""

    pnet: Path
    rnet: Path
    onet: Path
    embed: Path


LIVENESS_MODELS = ("v2", "v1se")
"""The liveness models, by the names LivenessSettings uses; file minifasnet_<name>_<set>.tflite."""


def default_models_dir() -> Path:
    """EDGE_MODELS_DIR, else the repository's models/ (source checkout), else the wheel's copy."""
    from_env = os.environ.get("EDGE_MODELS_DIR")
    if from_env:
        return Path(from_env)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "models", package / "_models"):
        if (candidate / "manifest.json").is_file():
            return candidate
    return package.parent / "models"


def model_files(models_dir: Path, model_set: str) -> ModelFiles:
    """The files of ``model_set`` in ``models_dir``, each checked against the manifest."""
    if model_set not in MODEL_SETS:
        raise ModelError(f"unknown model set {model_set!r}; choose one of {sorted(MODEL_SETS)}")
    manifest = read_manifest(models_dir)
    paths = {}
    for role in ROLES:
        name = f"{_FILE_PREFIX[role]}_{MODEL_SETS[model_set][role]}.tflite"
        path = models_dir / name
        check_model_file(path, manifest)
        paths[role] = path
    return ModelFiles(**paths)


def liveness_model_files(models_dir: Path, model_set: str, names: tuple[str, ...]) -> dict[str, Path]:
    """Name -> file of each liveness model in ``names`` (of LIVENESS_MODELS) in ``model_set``,
    each checked against the manifest."""
    if model_set not in MODEL_SETS:
        raise ModelError(f"unknown model set {model_set!r}; choose one of {sorted(MODEL_SETS)}")
    manifest = read_manifest(models_dir)
    paths = {}
    for name in names:
        if name not in LIVENESS_MODELS:
            raise ModelError(f"unknown liveness model {name!r}; choose from {list(LIVENESS_MODELS)}")
        path = models_dir / f"minifasnet_{name}_{model_set}.tflite"
        check_model_file(path, manifest)
        paths[name] = path
    return paths


def read_manifest(models_dir: Path) -> dict:
    path = models_dir / "manifest.json"
    try:
        return json.loads(path.read_text())["models"]
    except FileNotFoundError:
        raise ModelError(f"no model manifest at {path}; set models_dir or EDGE_MODELS_DIR") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a valid model manifest ({exc})") from None


def check_model_file(path: Path, manifest: dict) -> None:
    """Raise ModelError unless ``path`` exists and its sha256 is the manifest's."""
    entry = manifest.get(path.name)
    if entry is None:
        raise ModelError(f"{path.name} is not listed in the model manifest")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    digest = sha256_of(path)
    if digest != entry.get("sha256"):
        raise ModelError(
            f"{path}: sha256 {digest[:12]}... does not match the manifest "
            f"({str(entry.get('sha256'))[:12]}...): wrong or damaged model file"
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedding_model_id(settings: RecognitionSettings) -> str:
    """Names the embeddings ``settings`` produce, so a gallery never mixes models.

    The embedding model's file name and sha256 (checked against the manifest),
    plus "+flip" when embeddings are flip-averaged.
    """
    files = model_files(settings.models_dir or default_models_dir(), settings.model_set)
    digest = read_manifest(files.embed.parent)[files.embed.name]["sha256"]
    return f"{files.embed.name}:{digest}" + ("+flip" if settings.embedder.flip_average else "")
