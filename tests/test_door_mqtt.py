"""The issue's acceptance run: `edge gallery build` then `edge run ... --mqtt` against a real broker.

Both commands run as subprocesses, as a user would run them; an observer
client records everything the door publishes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from broker import Mosquitto, Observer, mosquitto_binary
from edge import demo

pytestmark = pytest.mark.slow  # a broker and edge subprocesses


@pytest.fixture
def mosquitto(tmp_path):
    with Mosquitto(mosquitto_binary(), tmp_path / "broker") as broker:
        yield broker


def edge(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_door_announces_enrolled_people_and_strangers_over_mqtt(mosquitto, tmp_path):
    people = demo.write_dataset(tmp_path / "people")
    frames = demo.write_frames(tmp_path / "frames")
    gallery = tmp_path / "door.gallery"
    built = edge("gallery", "build", people, "--gallery", gallery, "--json")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["enrolled"] == {"obama": 2}

    observer = Observer(mosquitto, ["edge/door1/#", "homeassistant/#"])
    try:
        run = edge("run", "--source", frames, "--gallery", gallery, "--mqtt", f"mqtt://{mosquitto.host}:{mosquitto.port}",
                   "--device-id", "door1", "--exit-at-end")
        assert run.returncode == 0, run.stderr
        observer.wait_for("edge/door1/availability", 2)  # online, then offline at the end
        events = [m.json() for m in observer.on("edge/door1/event")]
        states = [m.json() for m in observer.on("edge/door1/state")]
        availability = [m.payload for m in observer.on("edge/door1/availability")]
        discovery = {m.topic: m for m in observer.messages if m.topic.startswith("homeassistant/")}
    finally:
        observer.close()

    assert [(e["event_type"], e["name"]) for e in events] == [("recognized", "obama"), ("unknown", None)]
    assert all(e["device"] == "door1" for e in events)
    assert availability == [b"online", b"offline"]
    assert any(s["known_present"] and s["last_person"] == "obama" for s in states)
    assert not states[-1]["known_present"]
    components = {topic.split("/")[1] for topic, m in discovery.items() if m.payload}
    assert {"event", "sensor", "binary_sensor", "button", "text"} <= components
    assert "image" not in components  # face images stay off unless enabled
    # Retained: a client that subscribes afterwards (Home Assistant restarting) still gets them.
    late = Observer(mosquitto, ["edge/door1/availability", "homeassistant/#"])
    try:
        late.wait_for("edge/door1/availability")
        assert late.on("edge/door1/availability")[0].payload == b"offline"
        for topic in (topic for topic, m in discovery.items() if m.payload):
            assert late.wait_for(topic)[0].retain
    finally:
        late.close()


def test_run_without_a_broker_prints_events_as_json_lines(tmp_path):
    people = demo.write_dataset(tmp_path / "people")
    frames = demo.write_frames(tmp_path / "frames", visitors=("obama3.jpg",))
    assert edge("gallery", "build", people, "--gallery", tmp_path / "g").returncode == 0
    run = edge("run", "--source", frames, "--gallery", tmp_path / "g", "--exit-at-end")
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(e["event_type"], e["name"]) for e in events] == [("recognized", "obama")]


def test_after_a_crash_the_first_state_says_nobody_is_present_before_online(mosquitto, tmp_path):
    """kill -9 while a resident is present; on restart the retained state is replaced before `online`."""
    people = demo.write_dataset(tmp_path / "people")
    assert edge("gallery", "build", people, "--gallery", tmp_path / "g").returncode == 0
    present = demo.write_frames(tmp_path / "present", visitors=("obama3.jpg",), frames_per_visit=20, empty_frames=0)
    empty = demo.write_stills(tmp_path / "empty", ("blank",) * 5)
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}"

    def start(frames):  # no --exit-at-end: after its frames the door stays up, serving commands
        return subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--source", str(frames), "--gallery",
                                 str(tmp_path / "g"), "--mqtt", url, "--device-id", "door1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    observer = Observer(mosquitto, ["edge/door1/state", "edge/door1/availability"])
    first = start(present)
    try:
        deadline = time.monotonic() + 120
        while not any(m.json()["present"] == ["obama"] for m in observer.on("edge/door1/state")):
            assert time.monotonic() < deadline and first.poll() is None, first.stderr.read().decode()[-2000:]
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        observer.wait_for("edge/door1/availability", 2)  # online, then the last will's offline
        assert observer.on("edge/door1/availability")[-1].payload == b"offline"
        observer.clear()

        second = start(empty)
        try:
            observer.wait_for("edge/door1/availability", timeout=120)
            arrived = [(m.topic.rsplit("/", 1)[-1], m.payload) for m in observer.messages]
        finally:
            second.terminate()
            second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
        observer.close()
    (kind, payload), online = arrived[0], arrived.index(("availability", b"online"))
    assert kind == "state" and json.loads(payload)["present"] == [] and online > 0, arrived
    assert not json.loads(payload)["known_present"] and json.loads(payload)["last_person"] is None
    late = Observer(mosquitto, ["edge/door1/state"])  # and what a client connecting now is given
    try:
        assert late.wait_for("edge/door1/state")[0].json()["present"] == []
    finally:
        late.close()
