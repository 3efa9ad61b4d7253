"""The one configuration model, read from a TOML file and validated.

Every number has bounds; unknown keys are errors (a typo must not silently
fall back to a default). String values may name environment variables as
${NAME}, so that secrets live in the environment, not in the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.perception.detect import DetectorSettings
from edge.perception.engine import DEFAULT_MATCH_THRESHOLD, FaceEngine
from edge.perception.modelset import DEFAULT_MODEL_SET, MODEL_SETS, default_models_dir, model_files, read_manifest
from edge.perception.runtime import RuntimeOptions


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecognitionConfig(_Strict):
    """Models, runtime and thresholds of the recognition core."""

    models_dir: Path | None = Field(None, description="folder with the .tflite files and manifest.json")
    model_set: str = Field(DEFAULT_MODEL_SET, description=f"one of {sorted(MODEL_SETS)}")
    num_threads: int = Field(2, ge=1, le=16, description="CPU threads per model")
    delegate: Literal["cpu", "edgetpu", "gpu"] = "cpu"
    delegate_required: bool = Field(False, description="fail instead of falling back to the CPU")
    gpu_delegate_library: str | None = None
    min_face_size: float = Field(20.0, ge=12.0, le=2000.0, description="pixels")
    scale_factor: float = Field(0.709, ge=0.3, le=0.95, description="pyramid step")
    detect_thresholds: tuple[Probability, Probability, Probability] = (0.6, 0.7, 0.7)
    detect_max_side: int = Field(1280, ge=64, le=8192, description="larger images are downscaled for detection, pixels")
    flip_average: bool = Field(False, description="average each embedding with its mirror image's")
    match_threshold: float = Field(
        DEFAULT_MATCH_THRESHOLD, ge=-1.0, le=1.0, description="cosine similarity for 'same person'"
    )

    @field_validator("model_set")
    @classmethod
    def _known_model_set(cls, value: str) -> str:
        if value not in MODEL_SETS:
            raise ValueError(f"must be one of {sorted(MODEL_SETS)}")
        return value


class GalleryConfig(_Strict):
    """Where the enrolled faces live and how they are stored."""

    path: Path | None = Field(None, description="gallery directory (the CLI's --gallery overrides it)")
    dtype: Literal["float32", "int8"] = Field(
        "float32", description="row storage of a new gallery: float32, or int8 with a per-row scale (4x smaller)"
    )
    vote: int | None = Field(
        None, ge=1, le=50, description="identify by a vote of this many nearest samples instead of the best one"
    )


class Config(_Strict):
    recognition: RecognitionConfig = RecognitionConfig()
    gallery: GalleryConfig = GalleryConfig()


def load_config(path: Path | None) -> Config:
    """The config in ``path`` (TOML), or the defaults when ``path`` is None."""
    if path is None:
        return Config()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return Config.model_validate(_substitute_env(raw, str(path)))
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid config\n{exc}") from None


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute_env(value: object, where: str) -> object:
    if isinstance(value, dict):
        return {k: _substitute_env(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, where) for v in value]
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REFERENCE.sub(lookup, value)
    return value


def embedding_model_id(config: RecognitionConfig) -> str:
    """Names the embeddings ``config`` produces, so a gallery never mixes models.

    The embedding model's file name and sha256 (checked against the manifest),
    plus "+flip" when embeddings are flip-averaged.
    """
    files = model_files(config.models_dir or default_models_dir(), config.model_set)
    digest = read_manifest(files.embed.parent)[files.embed.name]["sha256"]
    return f"{files.embed.name}:{digest}" + ("+flip" if config.flip_average else "")


def open_engine(config: RecognitionConfig) -> FaceEngine:
    """A FaceEngine with the models and settings of ``config``."""
    return FaceEngine.open(
        config.models_dir or default_models_dir(),
        config.model_set,
        RuntimeOptions(
            num_threads=config.num_threads,
            delegate=config.delegate,
            delegate_required=config.delegate_required,
            gpu_delegate_library=config.gpu_delegate_library,
        ),
        DetectorSettings(config.min_face_size, config.scale_factor, config.detect_thresholds),
        flip_average=config.flip_average,
        detect_max_side=config.detect_max_side,
    )
