"""What every subcommand shares: exit statuses and the resolution of common options.

Exit status: 0 done; 1 done, but some input could not be used (a photo with
no face, an unreadable file); 2 bad usage, config, models or gallery.
"""

from __future__ import annotations

import argparse
import csv
import errno
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from edge.config import Config, ConfigError
from edge.gallery.errors import DiskFullError, GalleryError
from edge.gallery.settings import SearchSettings
from edge.imageio import IMAGE_SUFFIXES, shown

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2


def gallery_path(given: Path | None, config: Config) -> Path:
    """--gallery, else [gallery] path; ConfigError when neither is set."""
    path = given or config.gallery.path
    if path is None:
        raise ConfigError("no gallery given: pass --gallery PATH or set [gallery] path in the config")
    return Path(path)


MAX_WORKERS = 64
"""The most worker processes --workers may ask for."""


def add_workers_option(parser: argparse.ArgumentParser) -> None:
    """--workers N of the photo batch commands (identify, verify, gallery build/add)."""
    parser.add_argument("--workers", type=_workers, metavar="N",
                        help="worker processes, the cores split among them (default: one per core, "
                             "fewer for a small batch)")


def _workers(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be a whole number 1..{MAX_WORKERS}, not {text!r}")
    return count


def liveness_settings(config: Config, threshold: float | None = None):
    """[recognition] with --threshold applied to its liveness threshold (None: not given), checked
    by LivenessSettings' own bounds (a RecognitionSettings)."""
    if threshold is None:
        return config.recognition
    try:
        liveness = config.recognition.liveness.model_validate(
            {**config.recognition.liveness.model_dump(), "threshold": threshold})
    except ValidationError as exc:
        raise ConfigError(f"--threshold {threshold}: {exc.errors()[0]['msg']}") from None
    return config.recognition.model_copy(update={"liveness": liveness})


FLAGS = {"match_threshold": "--threshold", "vote": "--k"}
"""The command-line flags that override [search] keys."""


def search_settings(config: Config, threshold: float | None = None, vote: int | None = None) -> SearchSettings:
    """[search] with --threshold and --k applied (None: not given), checked by SearchSettings' own bounds."""
    given = {k: v for k, v in (("match_threshold", threshold), ("vote", vote)) if v is not None}
    try:
        return SearchSettings.model_validate({**config.search.model_dump(), **given})
    except ValidationError as exc:
        reasons = "; ".join(f"{FLAGS[e['loc'][0]]} {given[e['loc'][0]]}: {e['msg']}" for e in exc.errors())
        raise ConfigError(reasons) from None


@contextmanager
def storage_errors(path: Path, doing: str, outcome: str = "") -> Iterator[None]:
    """What the file system or SQLite raise while ``doing`` something to the gallery
    at ``path`` (disk full, permissions, a vanished folder) as one-line GalleryError,
    saying what became of the work (``outcome``)."""
    try:
        yield
    except GalleryError:
        raise
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if getattr(exc, "filename", None):
            reason = f"{reason}: {shown(exc.filename)}"
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in str(exc)
        error = DiskFullError if full else GalleryError
        raise error(f"{shown(path)}: cannot {doing} ({reason})" + (f"; {outcome}" if outcome else "")) from None


def csv_line(*fields: object) -> None:
    """One line of real CSV on stdout (fields quoted when they hold commas, quotes or newlines;
    undecodable bytes of file names as \\xNN)."""
    csv.writer(sys.stdout, lineterminator="\n").writerow(
        [shown(f) if isinstance(f, (str, Path)) else f for f in fields])
    sys.stdout.flush()


def photo_paths(paths: list[Path]) -> Iterator[tuple[Path, str | None]]:
    """(path, None) for each photo in order, folders giving their images in name order;
    (folder, why) for a folder that cannot be listed."""
    for path in paths:
        if path.is_dir():
            try:
                found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            except OSError as exc:
                yield path, f"{shown(path)}: cannot list the folder ({exc.strerror or exc})"
                continue
            for photo in found:
                yield photo, None
        else:
            yield path, None
