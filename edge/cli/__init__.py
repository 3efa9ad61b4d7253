"""The `edge` command: one entry point, one subcommand per job.

Each subcommand is a module here with ``add_arguments(parser)`` and
``run(args, config) -> exit status`` (see edge.cli.common), listed in
``_commands``. The shared options (--config, -v) are accepted both before
and after the subcommand: `edge --config F run` and `edge run --config F`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from edge.cli.common import EXIT_USAGE
from edge.config import Config, ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(argv)
    except KeyboardInterrupt:  # also while the commands' modules load, or a user error is looked up
        print("edge: interrupted", file=sys.stderr)
        return 130


def _run(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        status = args.handler(args, config)
        sys.stdout.flush()  # here, so that a closed pipe is caught below and not at exit
        return status
    except BrokenPipeError:
        # The reader went away (`edge identify ... | head`): stop quietly, as Unix tools do on SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except _user_errors() as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _user_errors() -> tuple[type[Exception], ...]:
    """What a user's config, models, delegate, GPIO, camera, gallery or a photo batch's
    dead worker can raise: one line, exit 2."""
    from edge.adapters.camera import SourceError
    from edge.adapters.gpio import GpioError
    from edge.gallery.errors import GalleryError
    from edge.perception.litert import DelegateError, ModelError

    # A photo batch's dead worker is reported by edge.perception.photos, loaded by then;
    # importing it here (OpenCV, numba) would slow every other error down.
    photos = sys.modules.get("edge.perception.photos")
    batch = (photos.WorkerDied,) if photos is not None else ()
    return ConfigError, ModelError, DelegateError, GalleryError, GpioError, SourceError, *batch


def _add_shared_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """--config and -v on ``parser`` and every (sub-)subcommand under it.

    Below the top they default to SUPPRESS, so that a subcommand's parser
    does not reset what was given before the subcommand.
    """
    parser.add_argument("--config", type=Path, default=None if top else argparse.SUPPRESS,
                        help="TOML config file (default: built-in defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="log progress")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_shared_options(sub, top=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Face recognition for the door.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, handler, help_text) in _commands().items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(handler=handler)
    _add_shared_options(parser, top=True)
    return parser


CommandSpec = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Config], int], str]


def _commands() -> dict[str, CommandSpec]:
    from edge.cli import enroll, find, gallery, identify, liveness, run, validate, verify

    return {
        "run": (run.add_arguments, run.run, "the door: camera -> recognition -> events (MQTT or stdout)"),
        "demo": (run.add_demo_arguments, run.run_demo, "the door loop on the bundled sample scene"),
        "validate-config": (validate.add_arguments, validate.run, "check a config file and print it resolved"),
        "verify": (verify.add_arguments, verify.run, "compare the main faces of two photos (or a CSV of pairs)"),
        "gallery": (gallery.add_arguments, gallery.run, "build and inspect galleries of enrolled faces"),
        "identify": (identify.add_arguments, identify.run, "name every face in photos from a gallery"),
        "find": (find.add_arguments, find.run, "the enrolled photos of the person in a photo"),
        "liveness": (liveness.add_arguments, liveness.run, "is each face live, or a photo or a screen?"),
        "enroll": (enroll.add_arguments, enroll.run, "enroll the person in front of the camera"),
    }
