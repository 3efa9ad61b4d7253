"""The MQTT family: hostile commands published to a running `edge run --mqtt` on a real Mosquitto.

One door (device id ``hx``, a copy of the base gallery, a folder of empty
frames, no --exit-at-end so it keeps running) takes every non-retained case
in turn. Per case: publish, wait for an answer on ``edge/hx/error`` naming
the case's topic (clear), else publish a probe (a malformed ``remove``) that
must be answered (else: hang; the door gone: traceback/crash). Afterwards no
enrollment may have started (counted under wrong_names: a hostile command
enrolled someone) and obama's 2 rows must still be there (rows_lost; checked
after every ``remove``-topic case and at the end).

Retained commands go to the broker while the door is stopped; the door then
starts, gets them as retained messages at subscription and must ignore
them. One door start per retained case.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from hostile.generate import Case
from hostile.runner import Fixtures, Result, _peak_rss_mib, _traceback_summary, obama_rows

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

DEVICE = "hx"
ANSWER_WAIT = 2.0
PROBE_WAIT = 6.0


class _Client:
    def __init__(self, host: str, port: int) -> None:
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"hostile-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(f"edge/{DEVICE}/#", 1)])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("hostile observer could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.messages)

    def since(self, mark: int, suffix: str) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages[mark:] if t == f"edge/{DEVICE}/{suffix}"]

    def wait(self, predicate, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """Publish at QoS 1 and wait for the ack; False if that failed (the observer reconnects by itself)."""
        deadline = time.monotonic() + 10
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
            return True
        except (RuntimeError, ValueError):
            return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _answered(client: _Client, mark: int, topic: str) -> bool:
    for payload in client.since(mark, "error"):
        try:
            if json.loads(payload).get("topic") == topic:
                return True
        except (ValueError, AttributeError):
            continue
    return False


class _Door:
    def __init__(self, fixtures: Fixtures, work: Path, broker) -> None:
        self.work, self.fixtures, self.broker = work, fixtures, broker
        self.gallery = work / "g"
        self.process: subprocess.Popen | None = None
        self.log = work / "door.stderr"

    def start(self, client: _Client) -> bool:
        mark = client.mark()
        self.process = subprocess.Popen(
            [self.fixtures.python, "-m", "edge.cli", "run", "--source", str(self.work / "frames"), "--gallery",
             str(self.gallery), "--mqtt", f"mqtt://{self.broker.host}:{self.broker.port}", "--device-id", DEVICE],
            cwd=self.work, stdin=subprocess.DEVNULL, stdout=open(self.work / "door.stdout", "ab"),
            stderr=open(self.log, "ab"), start_new_session=True)
        return client.wait(lambda: b"online" in client.since(mark, "availability") or self.process.poll() is not None, 60)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> float:
        """Stop the door (SIGTERM, then SIGKILL); its peak RSS in MiB (VmHWM, read just before)."""
        if self.process is None:
            return 0.0
        peak = self.hwm()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid, status, _ = os.wait4(self.process.pid, os.WNOHANG)
            if pid == self.process.pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.05)
        else:
            os.killpg(self.process.pid, signal.SIGKILL)
            _, status, _ = os.wait4(self.process.pid, 0)
            self.process.returncode = os.waitstatus_to_exitcode(status)
        self.process = None
        return peak

    def hwm(self) -> float:
        return 0.0 if self.process is None else _peak_rss_mib(self.process.pid)

    def stderr_tail(self, offset: int) -> bytes:
        data = self.log.read_bytes() if self.log.exists() else b""
        return data[offset:]


def run_mqtt_cases(cases: list[Case], fixtures: Fixtures, work: Path) -> list[Result]:
    from broker import Mosquitto, mosquitto_binary  # tests/broker.py

    from edge import demo

    work = work / "mqtt"
    work.mkdir(parents=True, exist_ok=True)
    demo.write_stills(work / "frames", ("blank", "blank", "blank"))
    shutil.copytree(fixtures.gallery, work / "g")
    results: dict[str, Result] = {}
    with Mosquitto(mosquitto_binary(), work / "broker") as broker:
        client = _Client(broker.host, broker.port)
        door = _Door(fixtures, work, broker)
        try:
            for case in [c for c in cases if c.mqtt[2]]:
                try:
                    results[case.name] = _retained_case(case, client, door, fixtures, work)
                except Exception as exc:
                    door.stop()
                    results[case.name] = Result("mqtt", case.name, "unclear", None, 0.0, 0.0,
                                                detail=f"harness error: {type(exc).__name__}: {exc}")
            live = [c for c in cases if not c.mqtt[2]]
            if live:
                if not door.start(client):
                    err = door.stderr_tail(0)
                    for case in live:
                        results[case.name] = Result("mqtt", case.name, "unclear", None, 0.0, 0.0,
                                                    detail=f"door did not come online: {err[-300:]!r}")
                else:
                    for case in live:
                        try:
                            results[case.name] = _live_case(case, client, door, fixtures, work)
                        except Exception as exc:  # the harness, not the door: record it and go on
                            results[case.name] = Result("mqtt", case.name, "unclear", None, 0.0, 0.0,
                                                        detail=f"harness error: {type(exc).__name__}: {exc}")
                        if not door.alive():
                            door.stop()
                            door.start(client)
                    peak = door.stop()
                    last = live[-1].name
                    results[last].memory_mib = max(results[last].memory_mib, round(peak, 1))
        finally:
            door.stop()
            client.close()
    return [results[c.name] for c in cases]


def _live_case(case: Case, client: _Client, door: _Door, fixtures: Fixtures, work: Path) -> Result:
    suffix, payload, _ = case.mqtt
    topic = f"edge/{DEVICE}/{suffix}"
    log_offset = door.log.stat().st_size if door.log.exists() else 0
    mark = client.mark()
    start = time.monotonic()
    if not client.publish(topic, payload):
        return Result("mqtt", case.name, "unclear", None, round(time.monotonic() - start, 2), round(door.hwm(), 1),
                      detail="the broker refused the publish (e.g. an invalid topic): the door never saw it")
    answered = client.wait(lambda: _answered(client, mark, topic) or not door.alive(), ANSWER_WAIT) and door.alive()
    outcome, detail, status = "clear", "answered on error", None
    if not answered:
        if not door.alive():
            status = door.process.poll()
            outcome = "traceback"
            detail = _traceback_summary(door.stderr_tail(log_offset)) or f"door exited with status {status}"
        else:
            probe_mark = client.mark()
            probe = f"edge/{DEVICE}/command/remove"
            client.publish(probe, b"hostile-probe: not JSON")
            if client.wait(lambda: _answered(client, probe_mark, probe), PROBE_WAIT):
                outcome, detail = "accepted", "no answer on error; the door still answers"
            elif door.alive():
                outcome, detail = "hang", "neither the case nor a probe answered"
            else:
                outcome, detail = "traceback", _traceback_summary(door.stderr_tail(log_offset)) or "door exited"
    tail = door.stderr_tail(log_offset)
    if b"Traceback (most recent call last)" in tail and outcome != "traceback":
        outcome, detail = "traceback", _traceback_summary(tail) + " (logged; the door kept going)"
    wrong = 0
    enrollment = client.since(mark, "enrollment")
    if enrollment:
        wrong = 1
        detail += f"; enrollment started: {enrollment[0][:120]!r}"
        client.publish(f"edge/{DEVICE}/command/enroll_cancel", b"")
        time.sleep(0.5)
    lost = 0
    if "remove" in suffix.lower() or suffix.split("/")[-1] not in ("enroll", "set_name", "reload", "enroll_cancel"):
        rows = obama_rows(fixtures, work / "g", work)
        if rows is None or rows < 2:
            lost = 2 - (rows or 0)
            detail += f"; obama rows afterwards: {rows}"
            _restore(fixtures, work, door, client)
    return Result("mqtt", case.name, outcome, status, round(time.monotonic() - start, 2), round(door.hwm(), 1),
                  wrong, lost, detail[:300], bomb=case.bomb)


def _restore(fixtures: Fixtures, work: Path, door: _Door, client: _Client) -> None:
    """Put the base gallery back (a case removed obama) and restart the door on it."""
    door.stop()
    shutil.rmtree(work / "g", ignore_errors=True)
    shutil.copytree(fixtures.gallery, work / "g")
    door.start(client)


def _retained_case(case: Case, client: _Client, door: _Door, fixtures: Fixtures, work: Path) -> Result:
    suffix, payload, _ = case.mqtt
    topic = f"edge/{DEVICE}/{suffix}"
    start = time.monotonic()
    client.publish(topic, payload, retain=True)
    log_offset = door.log.stat().st_size if door.log.exists() else 0
    mark = client.mark()
    online = door.start(client)
    answered = online and client.wait(lambda: _answered(client, mark, topic), ANSWER_WAIT + 3)
    time.sleep(0.5)
    alive = door.alive()
    enrollment = client.since(mark, "enrollment")
    peak = door.stop()
    client.publish(topic, b"", retain=True)  # clear it (no door subscribed now)
    tail = door.stderr_tail(log_offset)
    if b"Traceback (most recent call last)" in tail:
        outcome, detail = "traceback", _traceback_summary(tail)
    elif not online or not alive:
        outcome, detail = "traceback", f"door did not stay up: {tail[-200:]!r}"
    elif answered:
        outcome, detail = "clear", "retained command refused on error"
    else:
        outcome, detail = "accepted", "no answer to the retained command"
    wrong = 1 if enrollment else 0
    if enrollment:
        detail += f"; enrollment started: {enrollment[0][:120]!r}"
    rows = obama_rows(fixtures, work / "g", work)
    lost = 0
    if rows is None or rows < 2:
        lost = 2 - (rows or 0)
        detail += f"; obama rows afterwards: {rows}"
        shutil.rmtree(work / "g", ignore_errors=True)
        shutil.copytree(fixtures.gallery, work / "g")
    return Result("mqtt", case.name, outcome, None, round(time.monotonic() - start, 2), round(peak, 1), wrong, lost, detail[:300], bomb=case.bomb)
