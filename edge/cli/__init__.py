"""The `edge` command: one entry point, one subcommand per job.

Each subcommand is a module here with ``add_arguments(parser)`` and
``run(args, config) -> exit status`` (see edge.cli.common), listed in
``_commands``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from edge.cli.common import EXIT_USAGE
from edge.config import Config, ConfigError, load_config
from edge.gallery.errors import GalleryError
from edge.perception.runtime import DelegateError, ModelError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        return args.handler(args, config)
    except (ConfigError, ModelError, DelegateError, GalleryError) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("edge: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Face recognition for the door.")
    parser.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, handler, help_text) in _commands().items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(handler=handler)
    return parser


CommandSpec = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Config], int], str]


def _commands() -> dict[str, CommandSpec]:
    from edge.cli import enroll, find, gallery, identify, run, validate, verify

    return {
        "run": (run.add_arguments, run.run, "the door: camera -> recognition -> events (MQTT or stdout)"),
        "demo": (run.add_demo_arguments, run.run_demo, "the door loop on the bundled sample scene"),
        "validate-config": (validate.add_arguments, validate.run, "check a config file and print it resolved"),
        "verify": (verify.add_arguments, verify.run, "compare the main faces of two photos (or a CSV of pairs)"),
        "gallery": (gallery.add_arguments, gallery.run, "build and inspect galleries of enrolled faces"),
        "identify": (identify.add_arguments, identify.run, "name every face in photos from a gallery"),
        "find": (find.add_arguments, find.run, "the enrolled photos of the person in a photo"),
        "enroll": (enroll.add_arguments, enroll.run, "enroll the person in front of the camera"),
    }
