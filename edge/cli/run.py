"""`edge run`: the door service; `edge demo`: the same loop on the bundled sample scene."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from edge.cli.common import EXIT_OK
from edge.config import Config, parse_mqtt_url


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", help="picamera, a camera index, a stream URL, a video file or a folder of images")
    p.add_argument("--gallery", type=Path, help="gallery directory (made by `edge gallery build`)")
    p.add_argument("--mqtt", metavar="URL", help="mqtt[s]://[user:password@]host[:port]; without it events go to stdout")
    p.add_argument("--device-id", help="names this door in MQTT topics and Home Assistant")
    p.add_argument("--exit-at-end", action="store_true", help="stop when the source ends (files, folders); a camera that fails ends the run too")


def run(args: argparse.Namespace, config: Config) -> int:
    from edge.service import run_door

    config = config.with_overrides(
        camera={"source": args.source},
        door={"device_id": args.device_id},
        gallery={"path": args.gallery},
        mqtt=parse_mqtt_url(args.mqtt) if args.mqtt else {},
    )
    run_door(config, exit_at_end=args.exit_at_end)
    return EXIT_OK


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mqtt", metavar="URL", help="also publish to this broker (default: events on stdout)")


def run_demo(args: argparse.Namespace, config: Config) -> int:
    """Enroll Obama from two bundled photos, then play a scene where he and a stranger come to the door."""
    from edge import demo
    from edge.service import run_door
    from edge.enrollment.dataset import build_gallery

    with tempfile.TemporaryDirectory(prefix="edge-demo-") as work:
        work = Path(work)
        report = build_gallery(demo.write_dataset(work / "people"), work / "gallery", config.recognition,
                               config.gallery.dtype, workers=1, match_threshold=config.search.match_threshold)
        print(f"# enrolled {dict(report.enrolled)} from the bundled photos; playing {work / 'frames'}", flush=True)
        config = config.with_overrides(
            camera={"source": str(demo.write_frames(work / "frames"))},
            door={"device_id": "demo"},
            gallery={"path": work / "gallery"},
            mqtt=parse_mqtt_url(args.mqtt) if args.mqtt else {},
        )
        frames = run_door(config, exit_at_end=True)
        print(f"# {frames} frames; expected: one 'recognized' obama, one 'unknown' (Biden is not enrolled)")
    return EXIT_OK
