"""What every subcommand shares: exit statuses and the resolution of common options.

Exit status: 0 done; 1 done, but some input could not be used (a photo with
no face, an unreadable file); 2 bad usage, config, models or gallery.
"""

from __future__ import annotations

from pathlib import Path

from edge.config import Config, ConfigError

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2


def gallery_path(given: Path | None, config: Config) -> Path:
    """--gallery, else [gallery] path; ConfigError when neither is set."""
    path = given or config.gallery.path
    if path is None:
        raise ConfigError("no gallery given: pass --gallery PATH or set [gallery] path in the config")
    return Path(path)


def match_threshold(given: float | None, config: Config) -> float:
    """--threshold, else [recognition] match_threshold; checked by the one threshold rule (edge.similarity)."""
    if given is None:
        return config.recognition.match_threshold
    try:
        return config.with_overrides(recognition={"match_threshold": given}).recognition.match_threshold
    except ConfigError as exc:
        raise ConfigError(f"--threshold {given}: must be a cosine similarity within 0..1") from None
