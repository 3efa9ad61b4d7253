"""The issue's acceptance run: `edge gallery build` then `edge run ... --mqtt` against a real broker.

Both commands run as subprocesses, as a user would run them; an observer
client records everything the door publishes.
"""

from __future__ import annotations

import json
import subprocess
import sys

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
