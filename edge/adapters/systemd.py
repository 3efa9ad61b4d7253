"""systemd service notifications (sd_notify) without a dependency: READY and the watchdog.

Under a unit with ``Type=notify`` and ``WatchdogSec=``, systemd sets
NOTIFY_SOCKET; the door says READY=1 once it runs and WATCHDOG=1 as frames
are processed, so a loop that hangs (a stuck camera driver) is restarted.
Outside systemd every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Sends sd_notify messages; ``ping`` sends WATCHDOG=1 at most every ``interval`` seconds.

    A context manager: leaving it tells systemd STOPPING=1.
    """

    def __init__(self, interval: float = 5.0) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET")
        if self.address and self.address.startswith("@"):  # abstract socket namespace
            self.address = "\0" + self.address[1:]
        self.interval = interval
        self._last_ping = float("-inf")

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.notify("STOPPING=1")

    def notify(self, message: str) -> None:
        if not self.address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(message.encode(), self.address)
            except OSError:
                pass  # systemd went away: nothing useful to do about it

    def ping(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= self.interval:
            self._last_ping = now
            self.notify("WATCHDOG=1")
