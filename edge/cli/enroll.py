"""`edge enroll --name NAME`: enroll the person in front of the camera.

Collects --samples good, different samples of the one face in view (see
edge.enrollment.session), then appends them to the gallery. Each sample taken and
each change of verdict goes to stderr and, where a display exists, to a preview window (see
edge.cli.preview). q saves the samples taken so far; Ctrl-C (or Esc in the
window), a timeout, a failing camera or the end of the source stores nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from edge.cli.common import EXIT_INPUT, EXIT_OK, gallery_path
from edge.cli.preview import PREVIEW_KINDS, PreviewError, open_preview
from edge.config import Config, ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="the person's name")
    p.add_argument("--source", help="camera, stream, video file or folder (default: [camera] source)")
    p.add_argument("--gallery", type=Path, help="default: [gallery] path in the config")
    p.add_argument("--samples", type=int, help="good samples to collect (default: [enrollment] samples, 5)")
    p.add_argument("--timeout", type=float, help="seconds before giving up (default: [enrollment] timeout, 30)")
    p.add_argument("--preview", choices=PREVIEW_KINDS, default="auto",
                   help="window (needs a display), terminal (keys only) or none (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args: argparse.Namespace, config: Config) -> int:
    from edge.adapters.camera import SourceError, open_source
    from edge.enrollment.session import EnrollmentSession, collect, save
    from edge.gallery.store import Gallery
    from edge.names import InvalidNameError, validate_name
    from edge.perception.engine import FaceEngine
    from edge.perception.liveness import LivenessChecker
    from edge.perception.modelset import embedding_model_id

    try:
        name = validate_name(args.name)
    except InvalidNameError as exc:
        raise ConfigError(f"--name: {exc}") from None
    config = config.with_overrides(enrollment={"samples": args.samples, "timeout": args.timeout},
                                   camera={"source": args.source})
    settings = config.enrollment
    path = gallery_path(args.gallery, config)
    model_id = embedding_model_id(config.recognition)
    Gallery.open(path, model_id).close()  # fail now, not after the person posed
    failure = None
    with ExitStack() as opened:
        try:
            source = opened.enter_context(open_source(config.camera))
            engine = opened.enter_context(FaceEngine.open(config.recognition))
            liveness = opened.enter_context(LivenessChecker.open(config.recognition)) if settings.require_live else None
            preview = open_preview(args.preview, title=f"edge enroll: {name} (q saves, Esc cancels)")
        except SourceError as exc:
            raise ConfigError(str(exc)) from None
        except PreviewError as exc:
            raise ConfigError(f"--preview {args.preview}: {exc}") from None
        opened.callback(preview.close)
        print(f"enrolling {name}: {settings.samples} good samples within {settings.timeout:g} s; {preview.hint}",
              file=sys.stderr, flush=True)

        last_reason = None

        def watch(image, verdict) -> str | None:
            nonlocal last_reason
            if verdict.accepted or verdict.reason != last_reason:  # not one line per frame of the same
                mark = "+" if verdict.accepted else "-"
                print(f"{mark} {verdict.taken}/{verdict.wanted} {verdict.reason}", file=sys.stderr, flush=True)
                last_reason = verdict.reason
            return preview.show(image, verdict)

        session = EnrollmentSession(name, settings, config.search.match_threshold, started_at=time.monotonic())
        try:
            outcome = collect(engine, source, session, watch, liveness=liveness)
        except SourceError as exc:
            outcome, failure = "source_failed", str(exc)
    rows = save(session, path, model_id, f"enroll:{source.name}") if outcome == "complete" else range(0)
    result = {"name": name, "outcome": outcome, "samples": len(rows), "wanted": settings.samples,
              "gallery": str(path)}
    if failure:
        result["error"] = failure
    if args.json:
        print(json.dumps(result))
    elif outcome == "complete":
        early = f" (saved early; {settings.samples} asked)" if len(rows) < settings.samples else ""
        print(f"enrolled {name}: {len(rows)} samples{early}")
    else:
        why = outcome.replace("_", " ") + (f": {failure}" if failure else "")
        print(f"{name} not enrolled ({why}; {settings.samples} good samples needed, "
              f"{len(session.embeddings)} taken); nothing was stored")
    return EXIT_OK if outcome == "complete" else EXIT_INPUT
