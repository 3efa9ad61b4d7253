"""`edge run` on a real RTSP camera: GStreamer's RTSP server on 127.0.0.1 serving an H.264 video of faces.

edge runs as a subprocess, as a user would run it (events as JSON lines on
stdout, or over MQTT to a real Mosquitto); the server is stopped and started
again under it, and SIGTERM must end it within a second, whatever the camera
is doing. tests/rtsp.py makes the video and runs the server (Debian packages;
skipped where missing, a failure with EDGE_REQUIRE_RTSP=1).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker import Mosquitto, Observer, mosquitto_binary
from edge import demo
from rtsp import RtspServer, Scene, make_video, require_rtsp

pytestmark = pytest.mark.slow  # an RTSP server, edge subprocesses, a broker

STOP_WITHIN = 1.0
"""Seconds SIGTERM may take to end edge run."""
RESUME_WITHIN = 5.0
"""Seconds from the stream's return to an event."""
OUTAGE = 2.0
"""Seconds the RTSP server is down in the restart test."""
TIMEOUT = 60.0
"""Seconds a test waits for something that should come in a few."""


@dataclass(frozen=True)
class Door:
    gallery: Path
    scene: Scene
    config: Path


@pytest.fixture(scope="module")
def door(tmp_path_factory) -> Door:
    """A gallery enrolling obama; the video: 1 s empty, obama 1.5 s, 2.5 s empty, biden 1.5 s, 2.5 s empty, repeated."""
    require_rtsp()
    work = tmp_path_factory.mktemp("rtsp-door")
    people = demo.write_dataset(work / "people")
    built = subprocess.run([sys.executable, "-m", "edge.cli", "gallery", "build", str(people), "--gallery",
                            str(work / "gallery")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    scene = make_video(work / "video", lead_in=30, frames_per_visit=45, empty_frames=75, seconds=120)
    config = work / "door.toml"
    config.write_text("[door.decision]\ncooldown = 0  # obama is announced on each visit, also after a restart\n")
    return Door(work / "gallery", scene, config)


@pytest.fixture
def camera(door, tmp_path):
    with RtspServer(door.scene.video, tmp_path / "rtsp") as server:
        yield server


@pytest.fixture
def mosquitto(tmp_path):
    with Mosquitto(mosquitto_binary(), tmp_path / "broker") as broker:
        yield broker


class EdgeRun:
    """`edge run` as a subprocess; its stdout (events) and stderr (log) lines, stamped with time.monotonic()."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", *map(str, args)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[tuple[float, dict]] = []
        self.killed = False
        self.log: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, events: bool) -> None:
        for line in stream:
            with self._cond:
                if events:
                    self.events.append((time.monotonic(), json.loads(line)))
                else:
                    self.log.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()

    def wait_for_event(self, event_type: str, name: str | None = None, after: float = 0.0,
                       timeout: float = TIMEOUT) -> float:
        """When the first such event after ``after`` came (time.monotonic())."""
        return self._wait(lambda: [t for t, e in self.events
                                   if t >= after and e["event_type"] == event_type and e["name"] == name],
                          timeout, f"a {event_type} {name} event")

    def wait_for_log(self, text: str, after: float = 0.0, timeout: float = TIMEOUT) -> float:
        return self._wait(lambda: [t for t, line in self.log if t >= after and text in line], timeout, repr(text))

    def _wait(self, found, timeout: float, what: str) -> float:
        with self._cond:
            self._cond.wait_for(lambda: found() or self.process.poll() is not None, timeout)
            hits = found()
        assert hits, f"no {what} within {timeout} s (exit status {self.process.poll()}):\n{self.stderr()[-3000:]}"
        return hits[0]

    def stderr(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.log)

    def terminate(self, wait: float = 30.0) -> float:
        """SIGTERM; the seconds until the process ended (SIGKILL after ``wait`` s: ``killed``)."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            self.killed = True
            self.process.kill()
            self.process.wait()
        took = time.monotonic() - sent
        for reader in self._readers:
            reader.join(5)
        return took

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def runs():
    """EdgeRun(...) for a test; each killed at the end if still running."""
    started: list[EdgeRun] = []

    def start(*args: str) -> EdgeRun:
        started.append(EdgeRun(*args))
        return started[-1]

    yield start
    for run in started:
        run.kill()


def assert_ended_cleanly(run: EdgeRun, took: float) -> None:
    assert not run.killed, f"edge run still running {took:.1f} s after SIGTERM (killed):\n{run.stderr()[-3000:]}"
    print(f"SIGTERM ended edge run in {took:.3f} s")
    assert took < STOP_WITHIN, f"SIGTERM took {took:.2f} s to end edge run:\n{run.stderr()[-3000:]}"
    assert run.process.returncode == 0, run.stderr()[-3000:]
    assert "Traceback" not in run.stderr(), run.stderr()


def test_recognizes_the_enrolled_person_and_announces_the_stranger_on_an_rtsp_stream(door, camera, runs):
    run = runs("--source", camera.url, "--gallery", door.gallery)  # the default config: one 'recognized' per visitor
    run.wait_for_event("unknown")
    events = [(e["event_type"], e["name"]) for _, e in run.events]
    assert events[:2] == [("recognized", "obama"), ("unknown", None)], events
    assert run.events[0][1]["similarity"] > 0.5 and run.events[1][1]["similarity"] < 0.5
    assert_ended_cleanly(run, run.terminate())


def test_sigterm_ends_the_door_at_once_while_it_streams(door, camera, runs):
    run = runs("--source", camera.url, "--gallery", door.gallery)
    run.wait_for_event("recognized", "obama")  # the camera is open and the loop busy with a face
    time.sleep(0.3)
    assert run.process.poll() is None
    assert_ended_cleanly(run, run.terminate())


def test_a_camera_restart_is_reported_and_recognition_resumes(door, camera, mosquitto, runs):
    """The server goes away mid-run and comes back on the same port: offline, online, events again, no crash."""
    state_topic, event_topic = "edge/door1/state", "edge/door1/event"
    observer = Observer(mosquitto, [state_topic, event_topic])
    try:
        run = runs("--source", camera.url, "--gallery", door.gallery, "--config", door.config,
                   "--mqtt", f"mqtt://{mosquitto.host}:{mosquitto.port}", "--device-id", "door1")
        first = observer.wait_for(event_topic, timeout=TIMEOUT)[0].json()
        assert (first["event_type"], first["name"]) == ("recognized", "obama")
        assert observer.on(state_topic)[-1].json()["camera_online"] is True

        stopped = time.monotonic()
        camera.stop()
        run.wait_for_log(f"camera {camera.url} failed: ", after=stopped, timeout=10)
        run.wait_for_log(f"camera {camera.url} unavailable (", after=stopped, timeout=10)
        _wait_for_state(observer, state_topic, online=False)
        late = Observer(mosquitto, [state_topic])  # what Home Assistant would be given on connecting now
        try:
            offline = late.wait_for(state_topic)[0]
            assert offline.retain and offline.json()["camera_online"] is False, offline
            assert offline.json()["camera_detail"], offline
        finally:
            late.close()
        events_before = len(observer.on(event_topic))
        time.sleep(max(0.0, stopped + OUTAGE - time.monotonic()))
        assert run.process.poll() is None, run.stderr()[-3000:]

        camera.start()
        returned = time.monotonic()
        _wait_for_state(observer, state_topic, online=True)
        resumed = _wait_for_new_event(observer, event_topic, events_before, returned + RESUME_WITHIN + 10)
        print(f"first event {resumed - returned:.2f} s after the stream returned")
        assert resumed - returned < RESUME_WITHIN, f"first event {resumed - returned:.1f} s after the stream returned"
        again = observer.on(event_topic)[events_before].json()
        assert (again["event_type"], again["name"]) == ("recognized", "obama"), again  # the stream starts over
        late = Observer(mosquitto, [state_topic])
        try:
            online = late.wait_for(state_topic)[0]
            assert online.retain and online.json()["camera_online"] is True, online
        finally:
            late.close()
        time.sleep(0.5)
        assert run.process.poll() is None, run.stderr()[-3000:]
        assert "Traceback" not in run.stderr(), run.stderr()
        assert_ended_cleanly(run, run.terminate())
    finally:
        observer.close()


def test_sigterm_ends_the_door_at_once_while_it_waits_for_the_camera(door, camera, runs):
    run = runs("--source", camera.url, "--gallery", door.gallery)
    run.wait_for_event("recognized", "obama")
    stopped = time.monotonic()
    camera.stop()
    run.wait_for_log(f"camera {camera.url} failed: ", after=stopped, timeout=10)
    # The first reopen fails at once ('retrying in 1 s'), the next after 1 s ('retrying in 2 s'): now it waits.
    run.wait_for_log("; retrying in 2 s", after=stopped, timeout=10)
    time.sleep(0.3)
    assert run.process.poll() is None, run.stderr()[-3000:]
    assert_ended_cleanly(run, run.terminate())


def test_sigterm_ends_the_door_at_once_while_the_stream_stalls(door, camera, runs):
    run = runs("--source", camera.url, "--gallery", door.gallery)
    run.wait_for_event("recognized", "obama")
    camera.process.send_signal(signal.SIGSTOP)  # the server freezes: its connections stay open, nothing comes
    try:
        time.sleep(1.0)
        took = run.terminate(wait=STOP_WITHIN + 1.0)
    finally:
        camera.process.send_signal(signal.SIGCONT)
    assert_ended_cleanly(run, took)


def test_sigterm_ends_the_door_at_once_while_it_opens_a_camera_that_does_not_answer(door, runs):
    """A camera that takes the connection and says nothing (hung firmware): its RTSP handshake never ends."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(TIMEOUT)
        run = runs("--source", f"rtsp://127.0.0.1:{silent.getsockname()[1]}/door", "--gallery", door.gallery)
        connection, _ = silent.accept()  # edge is in the camera's open now, waiting for an answer
        with connection:
            time.sleep(0.5)
            assert run.process.poll() is None, run.stderr()[-3000:]
            took = run.terminate(wait=STOP_WITHIN + 1.0)
    assert_ended_cleanly(run, took)


def _wait_for_state(observer: Observer, topic: str, online: bool, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = observer.on(topic)
        if states and states[-1].json()["camera_online"] is online:
            return
        time.sleep(0.02)
    last = [m.json() for m in observer.on(topic)][-3:]
    raise AssertionError(f"no state with camera_online {online} in {timeout} s: {last}")


def _wait_for_new_event(observer: Observer, topic: str, seen: int, deadline: float) -> float:
    """When (time.monotonic()) the observer got an event beyond the first ``seen``."""
    while time.monotonic() < deadline:
        if len(observer.on(topic)) > seen:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"no event after the stream returned: {[m.json() for m in observer.on(topic)]}")
