"""What every subcommand shares: exit statuses and the resolution of common options.

Exit status: 0 done; 1 done, but some input could not be used (a photo with
no face, an unreadable file); 2 bad usage, config, models or gallery.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from edge.config import Config, ConfigError
from edge.similarity import MatchThreshold

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2


def gallery_path(given: Path | None, config: Config) -> Path:
    """--gallery, else [gallery] path; ConfigError when neither is set."""
    path = given or config.gallery.path
    if path is None:
        raise ConfigError("no gallery given: pass --gallery PATH or set [gallery] path in the config")
    return Path(path)


def match_threshold(given: float | None, config: Config) -> float:
    """--threshold, else [recognition] match_threshold; both checked by the one threshold type (edge.similarity)."""
    if given is None:
        return config.recognition.match_threshold
    try:
        return TypeAdapter(MatchThreshold).validate_python(given)
    except ValidationError:
        raise ConfigError(f"--threshold {given}: must be a cosine similarity within 0..1") from None
