"""A real Mosquitto broker for tests: own config in a temp dir, a free port on 127.0.0.1.

    binary = mosquitto_binary()            # skips the test where Mosquitto is missing
    with Mosquitto(binary, tmp_path) as broker:
        ... connect to 127.0.0.1:broker.port ...
        broker.stop(); broker.start()      # a restart keeps the port

Mosquitto is a Debian package (``apt-get install mosquitto``); where it is
missing the tests that need it are skipped, unless EDGE_REQUIRE_MOSQUITTO=1
(CI), which makes that a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 10.0
"""Seconds to wait for the broker to accept connections."""


def mosquitto_binary() -> str:
    """The path of the ``mosquitto`` executable; skip (or fail, with EDGE_REQUIRE_MOSQUITTO=1) if absent."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    if os.environ.get("EDGE_REQUIRE_MOSQUITTO") == "1":
        pytest.fail("EDGE_REQUIRE_MOSQUITTO=1 but the mosquitto binary is missing (apt-get install mosquitto)")
    pytest.skip("mosquitto not installed (apt-get install mosquitto); MQTT tests need a real broker")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """One broker process on 127.0.0.1:``port``, its files in ``directory``.

    ``persistence`` keeps retained messages, persistent sessions and their
    queued QoS 1 messages across a ``stop``/``start`` (the database is written
    on a clean stop); off by default. ``global_config`` goes before the
    listener (e.g. ``per_listener_settings true``), ``extra_config`` after it
    (e.g. a second listener with TLS).
    """

    def __init__(
        self,
        binary: str,
        directory: Path,
        *,
        persistence: bool = False,
        global_config: str = "",
        extra_config: str = "",
    ) -> None:
        self.binary = binary
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.config = self.directory / "mosquitto.conf"
        self.log = self.directory / "mosquitto.log"
        lines = [
            global_config,
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.directory}/",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if os.geteuid() == 0:
            # Run as root, Mosquitto switches to the user 'mosquitto', who cannot write here.
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        self.config.write_text("\n".join(lines) + "\n" + extra_config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.process is not None:
            raise RuntimeError("broker already running")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._accepts():
                    return
                time.sleep(0.02)
            # Exited (e.g. the port is still held by the last run's socket) or too slow: retry until the deadline.
            err = self._end(signal.SIGKILL)
            if time.monotonic() >= deadline:
                raise RuntimeError(f"mosquitto did not start on port {self.port}: {err}\n{self.log_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the broker cleanly (SIGTERM: it saves its database if persistent); no-op if stopped."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the broker at once (SIGKILL), as a crash would."""
        self._end(signal.SIGKILL)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing is read or answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo ``pause`` (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _end(self, sig: signal.Signals) -> str:
        process, self.process = self.process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.send_signal(sig)
        try:
            _, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        return err.decode(errors="replace").strip()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


TIMEOUT = 10.0
"""Seconds a test waits for a message."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool

    def json(self) -> dict:
        return json.loads(self.payload)


class Observer:
    """A paho client that subscribes to ``topics`` and records what arrives."""

    def __init__(
        self, broker: Mosquitto, topics: list[str], *, client_id: str | None = None, clean_session: bool = True
    ) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = _paho().Client(
            _paho().CallbackAPIVersion.VERSION2,
            client_id=client_id or f"observer-{uuid.uuid4().hex[:8]}",
            clean_session=clean_session,
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(TIMEOUT), "observer could not subscribe"

    def _on_message(self, client: object, userdata: object, msg) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), bool(msg.dup)))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, count: int = 1, timeout: float = TIMEOUT) -> list[Message]:
        """The first ``count`` messages on ``topic``, waiting for them up to ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.on(topic)) >= count, timeout)
            found = self.on(topic)
        assert len(found) >= count, f"{len(found)} of {count} messages on {topic}: {found}"
        return found[:count]

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()




def _paho():
    import paho.mqtt.client as paho

    return paho
