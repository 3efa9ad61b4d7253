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

from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
    detect_thresholds: tuple[Probability, Probability, Probability] = Field(
        (0.6, 0.7, 0.9), description="face probability cut-offs of P-Net, R-Net, O-Net"
    )
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


class DoorConfig(_Strict):
    """The door loop: camera, tracking and when to announce someone."""

    device_id: str = Field("door", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="names the door in topics and in Home Assistant")
    device_name: str | None = Field(None, max_length=100, description="the name Home Assistant shows (default: device_id)")
    source: str = Field("picamera", min_length=1, description="picamera, a camera index, a stream URL, a video file or a folder of images")
    frame_width: int = Field(640, ge=64, le=4096, description="pixels asked of a camera")
    frame_height: int = Field(480, ge=64, le=4096, description="pixels asked of a camera")
    folder_fps: float = Field(10.0, gt=0.0, le=120.0, description="frame rate a folder of images is played at")
    detect_every: int = Field(1, ge=1, le=30, description="search for faces in every n-th frame")
    attempts_per_second: float = Field(10.0, gt=0.0, le=60.0, description="most gallery matches per person per second")
    track_iou: float = Field(0.3, gt=0.0, le=1.0, description="box overlap that continues a track")
    track_gap: float = Field(2.0, gt=0.0, le=60.0, description="seconds unseen before a person counts as gone")
    unknown_recheck: float = Field(1.0, ge=0.0, le=60.0, description="seconds between matches of a face already announced unknown")
    unknown_threshold: float = Field(
        0.30, ge=-1.0, le=1.0, description="similarity below which an attempt counts as a stranger (at most match_threshold)"
    )
    window: int = Field(5, ge=1, le=50, description="recent attempts per person considered")
    min_agreeing: int = Field(3, ge=1, le=50, description="attempts naming one person to announce them")
    min_unknown: int = Field(4, ge=1, le=50, description="attempts below unknown_threshold to announce a stranger")
    cooldown: float = Field(60.0, ge=0.0, le=86400.0, description="seconds before the same person is announced again")
    min_face_size: float = Field(60.0, ge=0.0, le=2000.0, description="pixels (sqrt of box area); smaller faces are not used")
    min_sharpness: float = Field(0.0, ge=0.0, le=1e6, description="variance of the Laplacian of the face crop; 0 = off")
    button_pin: int | None = Field(None, ge=0, le=27, description="GPIO (BCM) number of the enrollment button; none = no button")
    button_hold: float = Field(3.0, ge=0.5, le=30.0, description="seconds held that cancel an enrollment")
    led_pin: int | None = Field(None, ge=0, le=27, description="GPIO (BCM) of an LED showing enrollment; none = no LED")
    enroll_samples: int = Field(5, ge=1, le=50, description="good samples an enrollment at the door collects")
    enroll_timeout: float = Field(30.0, ge=1.0, le=600.0, description="seconds an enrollment at the door may take")


class MqttConfig(_Strict):
    """The broker; without a host, events are printed as JSON lines instead."""

    host: str | None = Field(None, min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(None, repr=False, description="use ${ENV_VAR}: secrets belong in the environment")
    tls: bool = False
    ca_file: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    topic_prefix: str = Field("edge", pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_/-]{0,63}$")
    discovery_prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_/-]{0,63}$")
    keepalive: int = Field(30, ge=5, le=3600, description="seconds")
    queue_limit: int = Field(1000, ge=1, le=100_000, description="events kept while the broker is away")
    publish_face_image: bool = Field(False, description="send face crops to Home Assistant (personal data)")


class Config(_Strict):
    recognition: RecognitionConfig = RecognitionConfig()
    gallery: GalleryConfig = GalleryConfig()
    door: DoorConfig = DoorConfig()
    mqtt: MqttConfig = MqttConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        door = self.door
        if door.unknown_threshold > self.recognition.match_threshold:
            raise ValueError(
                f"door.unknown_threshold ({door.unknown_threshold}) must not exceed "
                f"recognition.match_threshold ({self.recognition.match_threshold})"
            )
        for name in ("min_agreeing", "min_unknown"):
            if getattr(door, name) > door.window:
                raise ValueError(f"door.{name} ({getattr(door, name)}) must not exceed door.window ({door.window})")
        return self

    def with_overrides(self, **sections: dict) -> Config:
        """A copy with some keys of some sections replaced (command-line flags), validated again."""
        raw = self.model_dump()
        for section, values in sections.items():
            raw[section].update({k: v for k, v in values.items() if v is not None})
        try:
            return Config.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"invalid option\n{exc}") from None


def parse_mqtt_url(url: str) -> dict:
    """mqtt[s]://[user[:password]@]host[:port] as [mqtt] keys (mqtts: TLS, port 8883 by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"--mqtt wants mqtt[s]://[user:password@]host[:port], not {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"--mqtt: bad port in {url!r}") from None
    tls = parts.scheme == "mqtts"
    return {
        "host": parts.hostname,
        "port": port or (8883 if tls else 1883),
        "tls": tls,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


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
