"""A real X display for the preview-window tests: Xvfb, started by the tests.

    with VirtualDisplay(xvfb_binary()) as display:   # skips where Xvfb is missing
        env = {**os.environ, "DISPLAY": display.name}

Xvfb and xdotool (which types keys into the window, as a person would) are
Debian packages (``apt-get install xvfb xdotool``); where they are missing
the tests that need them are skipped, unless EDGE_REQUIRE_XVFB=1 (CI), which
makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

START_TIMEOUT = 10.0
"""Seconds to wait for Xvfb to accept clients."""


def required_binary(name: str) -> str:
    """The path of ``name`` (Xvfb, xdotool); skip, or fail with EDGE_REQUIRE_XVFB=1, where it is missing."""
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("EDGE_REQUIRE_XVFB") == "1":
        pytest.fail(f"EDGE_REQUIRE_XVFB=1 but {name} is missing (apt-get install xvfb xdotool)")
    pytest.skip(f"{name} not installed (apt-get install xvfb xdotool); the preview window needs a display")


class VirtualDisplay:
    """One Xvfb server on a free display number (Xvfb picks it: -displayfd)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.name = ""
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> VirtualDisplay:
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            [self.binary, "-displayfd", str(write_end), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
            pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write_end)
        number = b""
        try:
            with os.fdopen(read_end, "rb") as announced:
                number = announced.readline().strip()  # written once the server accepts clients
        finally:
            if not number:
                self.__exit__()
                pytest.fail("Xvfb did not start")
        self.name = f":{number.decode()}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT)
            self.process = None
