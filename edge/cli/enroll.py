"""`edge enroll --name NAME`: enroll the person in front of the camera.

Collects --samples good, different samples of the one face in view (see
edge.door.enroll), then appends them to the gallery. Progress goes to
stderr. Ctrl-C, a timeout or the end of the source stores nothing. (The
pip OpenCV build is headless, so there is no preview window.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edge.cli.common import EXIT_INPUT, EXIT_OK, gallery_path
from edge.config import Config, ConfigError, embedding_model_id, open_engine


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="the person's name")
    p.add_argument("--source", help="camera, stream, video file or folder (default: [door] source)")
    p.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    p.add_argument("--samples", type=int, default=5, help="good samples to collect (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before giving up (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args: argparse.Namespace, config: Config) -> int:
    from edge.door.commands import CommandError, validate_name
    from edge.door.enroll import EnrollmentSession, EnrollSettings, collect, save
    from edge.door.sources import SourceError, open_source
    from edge.gallery.store import Gallery

    try:
        name = validate_name(args.name)
        settings = EnrollSettings(samples=args.samples, timeout=args.timeout,
                                  min_face_size=config.door.min_face_size,
                                  min_same_person=config.recognition.match_threshold)
    except (CommandError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    path = gallery_path(args.gallery, config)
    model_id = embedding_model_id(config.recognition)
    Gallery.open(path, model_id).close()  # fail now, not after the person posed
    door = config.door
    try:
        source = open_source(args.source or door.source, door.frame_width, door.frame_height, door.folder_fps)
        source.__enter__()
    except SourceError as exc:
        raise ConfigError(str(exc)) from None
    engine = open_engine(config.recognition)

    def show(verdict) -> None:
        mark = "+" if verdict.accepted else "-"
        print(f"{mark} {verdict.taken}/{verdict.wanted} {verdict.reason}", file=sys.stderr, flush=True)

    session = EnrollmentSession(name, settings, started_at=time.monotonic())
    try:
        outcome = collect(engine, source, session, show)
    finally:
        source.__exit__(None, None, None)
    rows = save(session, path, model_id, f"enroll:{source.name}") if outcome == "complete" else range(0)
    result = {"name": name, "outcome": outcome, "samples": len(rows), "gallery": str(path)}
    if args.json:
        print(json.dumps(result))
    elif outcome == "complete":
        print(f"enrolled {name}: {len(rows)} samples")
    else:
        print(f"{name} not enrolled ({outcome.replace('_', ' ')}; {session.settings.samples} good samples needed, "
              f"{len(session.embeddings)} taken); nothing was stored")
    return EXIT_OK if outcome == "complete" else EXIT_INPUT
