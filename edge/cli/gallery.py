"""`edge gallery build|list`: make a gallery from a folder per person, and show what is in one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli.common import EXIT_INPUT, EXIT_OK
from edge.config import Config, ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="enroll a folder-per-person dataset into a new gallery",
        description="Enroll DATASET/<name>/<photos> into a new gallery: one sample per usable photo.",
    )
    build.add_argument("dataset", type=Path, metavar="DATASET", help="folder with one sub-folder per person")
    build.add_argument("--gallery", type=Path, help="the new gallery's path (default: [gallery] path in the config)")
    build.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    build.add_argument("--json", action="store_true", help="print the summary as JSON")
    build.set_defaults(handler=_build)

    listing = actions.add_parser("list", help="the people in a gallery and their sample counts")
    listing.add_argument("gallery", type=Path, nargs="?", metavar="GALLERY", help="default: [gallery] path in the config")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)


def run(args: argparse.Namespace, config: Config) -> int:  # replaced by the action's handler
    raise ConfigError("choose a gallery action: build or list")


def _gallery_path(given: Path | None, config: Config) -> Path:
    path = given or config.gallery.path
    if path is None:
        raise ConfigError("no gallery given: pass --gallery PATH or set [gallery] path in the config")
    return Path(path)


def _build(args: argparse.Namespace, config: Config) -> int:
    from edge.enrollment import build_gallery

    if args.workers is not None and not 1 <= args.workers <= 64:
        raise ConfigError("--workers must be 1..64")
    try:
        report = build_gallery(
            args.dataset, _gallery_path(args.gallery, config), config, args.workers, _ProgressBar(sys.stderr)
        )
    except ValueError as exc:  # not a dataset folder
        raise ConfigError(str(exc)) from None
    summary = report.to_dict()
    if args.json:
        print(json.dumps(summary))
    else:
        for name, count in summary["enrolled"].items():
            print(f"enrolled {name}: {count} sample{'s' if count != 1 else ''}")
        for skipped in report.skipped:
            print(f"skipped {skipped.path}: {skipped.reason}")
        print(
            f"{summary['gallery']}: {summary['identities']} people, {summary['samples']} samples, "
            f"{len(report.skipped)} files skipped, {summary['seconds']} s"
        )
    return EXIT_OK if not report.skipped else EXIT_INPUT


def _list(args: argparse.Namespace, config: Config) -> int:
    from edge.gallery.store import Gallery

    gallery = Gallery.open(_gallery_path(args.gallery, config))
    try:
        people = gallery.identities()
        facts = {"gallery": str(gallery.path), "model_id": gallery.model_id, "dtype": gallery.dtype,
                 "identities": len(people), "samples": sum(people.values())}
    finally:
        gallery.close()
    if args.json:
        print(json.dumps({**facts, "people": dict(sorted(people.items()))}))
    else:
        for name, count in sorted(people.items()):
            print(f"{name}\t{count}")
        print(f"{facts['identities']} people, {facts['samples']} samples ({facts['dtype']}, model {facts['model_id']})")
    return EXIT_OK


class _ProgressBar:
    """A one-line progress bar on a terminal; a line per tenth of the work otherwise."""

    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            filled = self.WIDTH * done // max(total, 1)
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} photos")
            if done == total:
                self.stream.write("\n")
        else:
            tenth = 10 * done // max(total, 1)
            if tenth != self.last_tenth or done == total:
                self.stream.write(f"{done}/{total} photos\n")
        self.last_tenth = 10 * done // max(total, 1)
        self.stream.flush()
