"""The configuration file: each component's settings model, composed into the file's sections.

    [recognition]           edge.perception.settings.RecognitionSettings
    [recognition.runtime]   ...RuntimeSettings     [recognition.detector]  ...DetectorSettings
    [recognition.embedder]  ...EmbedderSettings
    [gallery]               edge.gallery.settings.GallerySettings
    [search]                edge.gallery.settings.SearchSettings (the match threshold)
    [camera]                edge.adapters.settings.CameraSettings
    [door]                  edge.door.settings.LoopSettings
    [door.tracker]          ...TrackerSettings     [door.decision]         ...DecisionSettings
    [enrollment]            edge.enrollment.settings.EnrollSettings
    [button] / [light]      edge.adapters.settings.ButtonSettings / LightSettings
    [mqtt]                  edge.adapters.settings.MqttSettings

This module only composes, reads TOML and resolves ``${NAME}`` references to
environment variables (so that secrets live in the environment, not in the
file). The bounds and rules of every key are in its component's model; the
only rules written here are those between sections: the door's
unknown_threshold against the search match_threshold (checked by the
decision settings' own method), and the button and the light on different
pins.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError, model_validator

from edge.adapters.settings import ButtonSettings, CameraSettings, LightSettings, MqttSettings
from edge.door.settings import LoopSettings
from edge.enrollment.settings import EnrollSettings
from edge.gallery.settings import GallerySettings, SearchSettings
from edge.perception.settings import RecognitionSettings
from edge.settings import Settings


MAX_CONFIG_BYTES = 1 << 20
"""A config file is a few kilobytes; anything past 1 MiB is not one."""


class ConfigError(ValueError):
    """A configuration that cannot be read or does not validate; the message names the key."""


class Config(Settings):
    recognition: RecognitionSettings = RecognitionSettings()
    gallery: GallerySettings = GallerySettings()
    search: SearchSettings = SearchSettings()
    camera: CameraSettings = CameraSettings()
    door: LoopSettings = LoopSettings()
    enrollment: EnrollSettings = EnrollSettings()
    button: ButtonSettings = ButtonSettings()
    light: LightSettings = LightSettings()
    mqtt: MqttSettings = MqttSettings()

    @model_validator(mode="after")
    def _sections_agree(self) -> Config:
        try:
            self.door.decision.check_against(self.search.match_threshold)
        except ValueError as exc:
            raise ValueError(f"door.decision: {exc}") from None
        if self.button.pin is not None and self.button.pin == self.light.pin:
            raise ValueError(f"button.pin and light.pin are both GPIO {self.button.pin}; one pin, one device")
        return self

    def with_overrides(self, **sections: dict) -> Config:
        """A copy with some keys of some sections replaced (command-line flags; None = not given), validated again."""
        raw = self.model_dump()
        for section, values in sections.items():
            raw[section].update({k: v for k, v in values.items() if v is not None})
        return validate(raw, "command line")


def load_config(path: Path | None) -> Config:
    """The config in ``path`` (TOML), or the defaults when ``path`` is None."""
    if path is None:
        return Config()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # /dev/zero never ends, a FIFO blocks the open
            raise ConfigError(f"{path}: not a regular file")
        with open(path, "rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except ConfigError:
        raise
    except ValueError:  # a NUL byte in the path
        raise ConfigError("--config: not a usable file name") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a config")
    try:
        text = data.decode("utf-8-sig")  # a BOM (Windows editors) is not TOML
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    try:
        return validate(_substitute_env(tomllib.loads(text), str(path)), str(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # one level of recursion per nesting level: [[[[...]]]] or a.b.c.d... exhausts the stack
        raise ConfigError(f"{path}: not a usable config (nested too deeply)") from None


def validate(raw: dict, where: str) -> Config:
    """``raw`` (sections as dicts) as a Config, or ConfigError naming each bad key."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  {_key(e['loc'])}: {_message(e)}" for e in exc.errors())
        raise ConfigError(f"{where}: invalid config\n{problems}") from None


def _key(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _message(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if "input" in error and not isinstance(error["input"], dict) and "password" not in _key(error["loc"]):
        return f"{message} (got {error['input']!r})"
    return message


def parse_mqtt_url(url: str) -> dict:
    """mqtt[s]://[user[:password]@]host[:port] as [mqtt] keys (mqtts: TLS, port 8883 by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError("--mqtt wants mqtt[s]://[user:password@]host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("--mqtt: bad port") from None
    tls = parts.scheme == "mqtts"
    return {
        "host": parts.hostname,
        "port": port or (8883 if tls else 1883),
        "tls": tls,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


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
