"""`edge gallery build|add|add-many|list|remove|rename|export|import|check`: make, grow, show, prune and verify a gallery."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli.common import EXIT_INPUT, EXIT_OK, add_workers_option, gallery_path, storage_errors
from edge.config import Config, ConfigError
from edge.imageio import shown
from edge.names import InvalidNameError, validate_name


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="enroll a folder-per-person dataset into a new gallery",
        description="Enroll DATASET/<name>/<photos> into a new gallery: one sample per usable photo.",
    )
    build.add_argument("dataset", type=Path, metavar="DATASET", help="folder with one sub-folder per person")
    build.add_argument("--gallery", type=Path, help="the new gallery's path (default: [gallery] path in the config)")
    add_workers_option(build)
    build.add_argument("--json", action="store_true", help="print the summary as JSON")
    build.add_argument("--strict", action="store_true",
                       help="enroll a photo with several faces of similar size only by matching the person's "
                            "other photos, never by its main subject's position")
    build.set_defaults(handler=_build)

    add = actions.add_parser("add", help="enroll one person's folder of photos into an existing gallery")
    add.add_argument("folder", type=Path, metavar="PERSON_DIR")
    add.add_argument("--name", help="the person's name (default: the folder's name)")
    _add_enroll_options(add)
    add.set_defaults(handler=_add)

    add_many = actions.add_parser("add-many", help="enroll several people (folder per person, or name.jpg photos)")
    add_many.add_argument("folder", type=Path, metavar="DIR")
    _add_enroll_options(add_many)
    add_many.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="the people in a gallery and their sample counts")
    listing.add_argument("gallery", type=Path, nargs="?", metavar="GALLERY", help="default: [gallery] path in the config")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)


    remove = actions.add_parser("remove", help="remove a person's samples (kept out of every search at once)")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    remove.add_argument("--compact", action="store_true", help="also rewrite the gallery without the removed rows")
    remove.add_argument("--json", action="store_true", help="print JSON")
    remove.set_defaults(handler=_remove)

    rename = actions.add_parser("rename", help="rename a person (e.g. an automatic person_N)")
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")
    rename.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    rename.add_argument("--json", action="store_true", help="print JSON")
    rename.set_defaults(handler=_rename)

    export = actions.add_parser("export", help="write a gallery's people to one portable file")
    export.add_argument("file", type=Path, metavar="FILE")
    export.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    export.add_argument("--json", action="store_true", help="print JSON")
    export.set_defaults(handler=_export)

    importing = actions.add_parser("import", help="add the people of an exported file (a new gallery if none exists)")
    importing.add_argument("file", type=Path, metavar="FILE")
    importing.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    importing.add_argument("--json", action="store_true", help="print JSON")
    importing.set_defaults(handler=_import)

    check = actions.add_parser("check", help="verify a gallery's integrity (every row: checksum, length)")
    check.add_argument("gallery", type=Path, nargs="?", metavar="GALLERY", help="default: [gallery] path in the config")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument("--repair", action="store_true",
                       help="first remove what killed builds of this gallery left beside it (.NAME.building-*)")
    check.set_defaults(handler=_check)


def _add_enroll_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    p.add_argument("--largest", action="store_true", help="take the largest face of a photo with several")
    add_workers_option(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace, config: Config) -> int:  # replaced by the action's handler
    raise ConfigError("choose a gallery action: build or list")


def _build(args: argparse.Namespace, config: Config) -> int:
    from edge.enrollment.dataset import build_gallery

    path = gallery_path(args.gallery, config)
    try:
        with storage_errors(path, "build the gallery", "nothing was built"):
            report = build_gallery(
                args.dataset, path, config.recognition, config.gallery.dtype,
                args.workers, _ProgressBar(sys.stderr), strict=args.strict,
                match_threshold=config.search.match_threshold,
            )
    except ValueError as exc:  # not a dataset folder
        raise ConfigError(str(exc)) from None
    return _summary(report, args.json)


def _add(args: argparse.Namespace, config: Config) -> int:
    from edge.enrollment.dataset import add_to_gallery, scan_dataset, scan_person

    try:
        if args.action == "add":
            name = None if args.name is None else validate_name(args.name)
            photos, skipped = scan_person(args.folder, name)
        else:
            photos, skipped = scan_dataset(args.folder)
    except ValueError as exc:  # a bad name (edge.names) or not a folder of photos
        raise ConfigError(str(exc)) from None
    except OSError as exc:  # a folder that cannot be listed
        raise ConfigError(f"{shown(args.folder)}: cannot read ({exc.strerror or exc})") from None
    path = gallery_path(args.gallery, config)
    with storage_errors(path, "add to the gallery", "the batches committed before are kept"):
        report = add_to_gallery(path, photos, skipped, config.recognition, args.largest,
                                args.workers, _ProgressBar(sys.stderr))
    return _summary(report, args.json)


def _summary(report, as_json: bool) -> int:
    summary = report.to_dict()
    if as_json:
        print(json.dumps(summary))
    else:
        for name, count in summary["enrolled"].items():
            print(f"enrolled {name}: {count} sample{'s' if count != 1 else ''}")
        for matched in report.matched:
            print(f"took {matched.identity} in {matched.path}: the face at {matched.box.as_list(0)} "
                  f"matches their other photos ({matched.similarity:.2f})")
        for review in report.review:
            print(f"review {review.identity} in {review.path}: the face at {review.box.as_list(0)} ({review.why})")
        for skipped in report.skipped:
            print(f"skipped {shown(skipped.path)}: {skipped.reason}")
        for note in report.notes:
            print(f"note: {note}")
        print(
            f"{summary['gallery']}: {summary['identities']} people, {summary['samples']} samples, "
            f"{len(report.skipped)} files skipped, {summary['seconds']} s"
        )
    return EXIT_OK if not report.skipped else EXIT_INPUT


def _list(args: argparse.Namespace, config: Config) -> int:
    from edge.gallery.store import Gallery

    gallery = Gallery.open(gallery_path(args.gallery, config))
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


def _remove(args: argparse.Namespace, config: Config) -> int:
    from edge.gallery.store import Gallery

    path = gallery_path(args.gallery, config)
    with storage_errors(path, "remove the person"):
        gallery = Gallery.open(path, writable=True, lock_timeout=5.0)
        try:
            removed = gallery.delete_identity(args.name)
            if removed and args.compact:
                with storage_errors(path, "compact the gallery", f"{args.name} is removed, the files are not rewritten"):
                    gallery.compact()
        finally:
            gallery.close()
    if args.json:
        print(json.dumps({"gallery": str(path), "name": args.name, "removed": removed}))
    elif removed:
        print(f"removed {args.name}: {removed} sample{'s' if removed != 1 else ''}")
    else:
        print(f"{path}: nobody named {args.name!r} is enrolled", file=sys.stderr)
    return EXIT_OK if removed else EXIT_INPUT


def _rename(args: argparse.Namespace, config: Config) -> int:
    from edge.gallery.store import Gallery

    try:
        new = validate_name(args.new)
    except InvalidNameError as exc:
        raise ConfigError(f"NEW: {exc}") from None
    path = gallery_path(args.gallery, config)
    with storage_errors(path, "rename the person"):
        gallery = Gallery.open(path, writable=True, lock_timeout=5.0)
        try:
            renamed = gallery.rename_identity(args.old, new)
        finally:
            gallery.close()
    if args.json:
        print(json.dumps({"gallery": str(path), "old": args.old, "new": new, "renamed": renamed}))
    elif renamed:
        print(f"renamed {args.old} to {new}: {renamed} sample{'s' if renamed != 1 else ''}")
    else:
        print(f"{path}: nobody named {args.old!r} is enrolled", file=sys.stderr)
    return EXIT_OK if renamed else EXIT_INPUT


def _export(args: argparse.Namespace, config: Config) -> int:
    from edge.gallery.portable import export_gallery
    from edge.gallery.store import Gallery

    path = gallery_path(args.gallery, config)
    with storage_errors(path, f"export to {shown(args.file)}"):
        gallery = Gallery.open(path)
        try:
            rows = export_gallery(gallery, args.file)
        finally:
            gallery.close()
    if args.json:
        print(json.dumps({"file": str(args.file), "exported": rows}))
    else:
        print(f"exported {rows} samples to {args.file}")
    return EXIT_OK


def _import(args: argparse.Namespace, config: Config) -> int:
    from edge.gallery.portable import import_into, read_export
    from edge.gallery.store import Gallery

    path = gallery_path(args.gallery, config)
    with storage_errors(path, f"import {shown(args.file)}"):
        export = meta, vectors = read_export(args.file)  # checked whole before a gallery is made or touched
        if path.exists():
            gallery = Gallery.open(path, writable=True, lock_timeout=5.0)
        else:
            gallery = Gallery.create(path, meta["model_id"], dim=vectors.shape[1], dtype=config.gallery.dtype)
        try:
            rows = import_into(gallery, args.file, export)
        finally:
            gallery.close()
    if args.json:
        print(json.dumps({"gallery": str(path), "imported": rows}))
    else:
        print(f"imported {rows} samples into {path}")
    return EXIT_OK


def _check(args: argparse.Namespace, config: Config) -> int:
    """Exit 0 sound, 1 damaged (the damaged rows listed: searches leave them out), 2 the
    gallery cannot be opened or read at all (with --json still one JSON object)."""
    from edge.cli.common import EXIT_USAGE
    from edge.gallery.errors import CorruptGalleryError, GalleryError
    from edge.gallery.store import Gallery

    path = gallery_path(args.gallery, config)
    if args.repair:
        from edge.enrollment.dataset import remove_leftovers

        removed, running = remove_leftovers(path)
        for leftover in removed:  # stderr: stdout stays one JSON object with --json
            print(f"removed {shown(leftover)} (left by a killed build)", file=sys.stderr)
        for build in running:
            print(f"left {shown(build)} alone: its build is still running", file=sys.stderr)
    excluded = ()
    try:
        gallery = Gallery.open(path)
        try:
            rows, problem = gallery.check(), None
        except CorruptGalleryError as exc:
            rows, problem = None, str(exc)
        finally:
            excluded = gallery.excluded
            gallery.close()
    except GalleryError as exc:
        if not args.json:
            raise
        print(json.dumps({"gallery": str(path), "ok": False, "rows": None, "problem": None, "excluded": [],
                          "error": str(exc)}))
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"gallery": str(path), "ok": problem is None, "rows": rows, "problem": problem,
                          "excluded": [{"row": e.row, "identity": e.identity, "reason": e.reason} for e in excluded],
                          "error": None}))
    elif problem is None:
        print(f"{path}: ok, {rows} rows verified")
    else:
        print(f"{path}: DAMAGED: {problem}")
        for row in excluded:
            print(f"  left out of every search: {row}")
    return EXIT_OK if problem is None else EXIT_INPUT


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
