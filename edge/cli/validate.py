"""`edge validate-config FILE`: check a config file; print it with defaults filled in (secrets hidden)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cli.common import EXIT_OK
from edge.config import Config, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE", help="TOML config file")


def run(args: argparse.Namespace, config: Config) -> int:
    checked = load_config(args.file)  # raises ConfigError with the reasons
    resolved = checked.model_dump(mode="json")
    if resolved["mqtt"].get("password") is not None:
        resolved["mqtt"]["password"] = "***"
    print(json.dumps(resolved, indent=2))
    print(f"{args.file}: valid")
    return EXIT_OK
