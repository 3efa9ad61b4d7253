"""What a benchmark ran on: machine, library versions, date, source revision.

``environment()`` gathers it as a dict (for --json); ``header(env)`` formats
the lines every benchmark prints above its table.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PACKAGES = ("numpy", "opencv", "ai-edge-litert", "numba")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('unknown' elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float | None:
    """Total RAM in GiB from /proc/meminfo, or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


def package_version(name: str) -> str:
    if name == "opencv":
        try:
            import cv2

            return cv2.__version__
        except ImportError:
            return "not installed"
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    """Short commit of the repository, with '+dirty' when the work tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if status else "")


@contextlib.contextmanager
def checkout(revision: str, folder: Path) -> Iterator[Path]:
    """This repository at ``revision`` in a git worktree at ``folder``, removed again on exit
    (the --before code of the benchmarks that measure an older revision beside this one)."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(folder), revision], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)], check=False)


def environment() -> dict:
    """Machine, versions and date of this run."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": None if ram_gib() is None else round(ram_gib(), 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: package_version(name) for name in _PACKAGES},
        "revision": git_revision(),
        "load_average": load_average(),
    }


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages at the start: other work skews timings."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def header(env: dict, title: str) -> str:
    """The lines printed above a benchmark's table."""
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    ram = f"{env['ram_gib']} GiB RAM" if env["ram_gib"] is not None else "RAM unknown"
    return "\n".join(
        [
            f"# {title}",
            f"date:     {env['date']}   revision: {env['revision']}",
            f"machine:  {env['cpu']}, {env['cores']} cores, {ram} ({env['platform']}); "
            f"load average at start {env['load_average']}",
            f"software: Python {env['python']}; {versions}",
            f"command:  {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}",
        ]
    )


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with right-aligned columns (the first left-aligned)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
