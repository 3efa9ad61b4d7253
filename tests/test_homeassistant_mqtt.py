"""What Home Assistant gets over a real Mosquitto from `edge run`: per-person presence and device triggers
that follow the gallery, the last person, face images, enrollment status and name; stale configs cleared."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from broker import Mosquitto, Observer, mosquitto_binary
from edge import demo
from edge.adapters.discovery import person_key

pytestmark = pytest.mark.slow  # a broker and edge subprocesses

BASE = "edge/door1"
OBAMA = person_key("obama")


@pytest.fixture
def mosquitto(tmp_path):
    with Mosquitto(mosquitto_binary(), tmp_path / "broker") as broker:
        yield broker


def edge(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def door(mosquitto, tmp_path):
    """A running `edge run` over a folder where Obama comes, with face images on; and an observer."""
    people = demo.write_dataset(tmp_path / "people")
    assert edge("gallery", "build", people, "--gallery", tmp_path / "g").returncode == 0
    frames = demo.write_frames(tmp_path / "frames", visitors=("obama3.jpg",), frames_per_visit=15, empty_frames=30)
    config = tmp_path / "edge.toml"
    config.write_text(f"""
[gallery]
path = "{tmp_path / 'g'}"
[camera]
source = "{frames}"
[door]
device_id = "door1"
device_name = "Front door"
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
publish_face_image = true
remote_admin = true
""")
    # A person removed while the door was down left a trigger and a presence topic behind.
    stale = Observer(mosquitto, ["edge/#"])
    stale.publish("homeassistant/device_automation/door1/person_gone_12345678_recognized/config",
                  json.dumps({"automation_type": "trigger"}), retain=True)
    stale.publish(f"{BASE}/present/person_gone_12345678", "ON", retain=True)
    stale.close()
    observer = Observer(mosquitto, [f"{BASE}/#", "homeassistant/#"])
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield observer, process, tmp_path
    finally:
        process.terminate()
        process.wait(30)
        observer.close()


def payloads(observer, topic):
    return [m.payload for m in observer.on(topic)]


def test_home_assistant_sees_the_people_their_presence_the_last_person_and_the_face(door, engine):
    observer, process, _ = door
    trigger = f"homeassistant/device_automation/door1/{OBAMA}_recognized/config"
    presence = f"{BASE}/present/{OBAMA}"
    wait_until(lambda: b"OFF" in payloads(observer, presence) and b"ON" in payloads(observer, presence)
               and payloads(observer, presence)[-1] == b"OFF", "obama present, then gone")
    assert payloads(observer, presence) == [b"OFF", b"ON", b"OFF"]
    config = json.loads(observer.wait_for(trigger)[0].payload)
    assert (config["type"], config["subtype"], config["payload"]) == ("recognized", "obama", "recognized:obama")
    assert payloads(observer, f"{BASE}/last_person") == [b"obama"]
    assert [m.json()["name"] for m in observer.on(f"{BASE}/event")] == ["obama"]
    (jpeg,) = payloads(observer, f"{BASE}/face")  # one event, one face
    face = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert len(jpeg) <= 50_000 and max(face.shape[:2]) <= 256
    assert len(engine.detect(face)) == 1  # the face, with a margin around it
    # What the earlier run left behind is gone; edge's own configs stay.
    assert observer.on("homeassistant/device_automation/door1/person_gone_12345678_recognized/config")[-1].payload == b""
    assert observer.on(f"{BASE}/present/person_gone_12345678")[-1].payload == b""
    assert json.loads(observer.on(f"{BASE}/enrollment_state")[-1].payload) == {"status": "idle"}
    assert process.poll() is None


def test_the_enrollment_name_text_shows_what_the_door_holds(door):
    observer, _, _ = door
    observer.wait_for(f"{BASE}/availability")
    deadline = time.monotonic() + 60
    while not payloads(observer, f"{BASE}/enroll_name"):  # again until the door has subscribed to commands
        assert time.monotonic() < deadline, "set_name never answered"
        observer.publish(f"{BASE}/command/set_name", "Zoë")
        time.sleep(0.5)
    wait_until(lambda: set(payloads(observer, f"{BASE}/enroll_name")) == {"Zoë".encode()}, "the name shown")
    shown = len(payloads(observer, f"{BASE}/enroll_name"))
    observer.publish(f"{BASE}/command/set_name", ".hidden")  # refused: the text goes back to Zoë
    error = observer.wait_for(f"{BASE}/error")[0].json()
    assert error["topic"].endswith("/set_name") and "start with '.'" in error["error"]
    wait_until(lambda: len(payloads(observer, f"{BASE}/enroll_name")) > shown, "the name put back")
    assert set(payloads(observer, f"{BASE}/enroll_name")) == {"Zoë".encode()}
    observer.publish(f"{BASE}/command/set_name", "")
    wait_until(lambda: payloads(observer, f"{BASE}/enroll_name")[-1] == b"", "the name cleared")


def test_people_entities_follow_the_gallery(door):
    observer, _, tmp_path = door
    trigger = f"homeassistant/device_automation/door1/{OBAMA}_recognized/config"
    observer.wait_for(trigger)
    observer.wait_for(f"{BASE}/last_person", timeout=60)
    biden = tmp_path / "biden"
    biden.mkdir()
    (biden / "biden.jpg").write_bytes((demo.samples_dir() / "biden.jpg").read_bytes())
    assert edge("gallery", "add", biden, "--gallery", tmp_path / "g").returncode == 0
    key = person_key("biden")
    config = observer.wait_for(f"homeassistant/binary_sensor/door1/{key}_present/config", timeout=30)[0].json()
    assert config["name"] == "biden present"
    observer.wait_for(f"homeassistant/device_automation/door1/{key}_recognized/config")
    observer.publish(f"{BASE}/command/remove", json.dumps({"name": "obama"}))
    wait_until(lambda: observer.on(trigger)[-1].payload == b"", "obama's trigger cleared", timeout=30)
    assert observer.on(f"{BASE}/present/{OBAMA}")[-1].payload == b""
    assert observer.on(f"homeassistant/binary_sensor/door1/{OBAMA}_present/config")[-1].payload == b""
    wait_until(lambda: observer.on(f"{BASE}/last_person") and observer.on(f"{BASE}/last_person")[-1].payload == b"",
               "the removed person's name cleared from last_person")
