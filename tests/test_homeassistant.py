"""edge against a real Home Assistant Core and a real Mosquitto: every advertised entity, end to end.

Home Assistant is started by tests/hass (the current release in a Debian
root, the oldest supported one in a venv here; built by tests/hass/build.sh,
skipped where not built unless EDGE_REQUIRE_HOMEASSISTANT=1). `edge run`
runs as a user would run it, over frame folders:

1. an empty doorway: every advertised entity appears on one device with the
   documented entity id; the last person is unknown; HA's text and buttons
   reach edge; the device triggers are listed; an automation on "obama
   recognized" is created;
2. Obama comes (edge restarted on that folder): the event entity, his
   presence entity, the known-person sensor, the last person and the image
   entity (a real JPEG through /api/image_proxy/) change; the automation fires;
3. kill -9: every entity becomes unavailable; a restart shows nobody present
   without a stale "on" in between (watched on HA's websocket).

The run prints a table entity by entity: advertised, created, state seen.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from broker import Mosquitto, mosquitto_binary
from edge import demo
from edge.adapters.discovery import Topics, discovery_messages, people_messages, person_key
from hass.harness import FLAVOURS, HomeAssistant, ha_environment

pytestmark = pytest.mark.slow

DEVICE, NAME = "front_door", "Front door"
OBAMA = f"binary_sensor.edge_{DEVICE}_{person_key('obama')}_present"


def advertised() -> dict[str, str]:
    """entity id -> discovery key of every entity edge advertises here (face images on, obama enrolled)."""
    topics = Topics("edge", DEVICE)
    messages = discovery_messages(topics, device_name=NAME, publish_face_image=True)
    messages += people_messages(topics, ["obama"], device_name=NAME)
    return {p["default_entity_id"]: topic.split("/")[3] for topic, p in messages if p and "default_entity_id" in p}


class StateWatcher:
    """Records (entity_id, new state) of every state change HA reports on its websocket, in order."""

    def __init__(self, ha: HomeAssistant) -> None:
        self.changes: list[tuple[str, str | None]] = []
        self._ws = ha.websocket()
        self._ws.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                message = self._ws.recv_json()
            except Exception:
                return
            if message.get("type") == "event":
                data = message["event"]["data"]
                self.changes.append((data["entity_id"], (data.get("new_state") or {}).get("state")))

    def close(self) -> None:
        self._stop = True
        self._ws.close()


@pytest.fixture(params=FLAVOURS)
def ha(request, tmp_path):
    environment = ha_environment(request.param)
    with Mosquitto(mosquitto_binary(), tmp_path / "broker") as broker, \
            HomeAssistant(environment, broker.host, broker.port) as home_assistant:
        yield home_assistant, broker


def test_every_advertised_entity_works_in_home_assistant(ha, tmp_path, capsys):
    home_assistant, broker = ha
    people = demo.write_dataset(tmp_path / "people")
    built = subprocess.run([sys.executable, "-m", "edge.cli", "gallery", "build", str(people), "--gallery",
                            str(tmp_path / "g")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    blank = demo.write_stills(tmp_path / "blank", ("blank",) * 1200)  # 2 minutes, played in real time
    visit = demo.write_frames(tmp_path / "visit", visitors=("obama3.jpg",), frames_per_visit=20, empty_frames=0)

    def run_edge(frames: Path) -> subprocess.Popen:
        config = tmp_path / f"{frames.name}.toml"
        config.write_text(f"""
[gallery]
path = "{tmp_path / 'g'}"
[camera]
source = "{frames}"
folder_realtime = {'true' if frames == blank else 'false'}
[door]
device_id = "{DEVICE}"
device_name = "{NAME}"
[enrollment]
timeout = 60
[mqtt]
host = "{broker.host}"
port = {broker.port}
publish_face_image = true
""")
        return subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    expected = advertised()
    seen: dict[str, set[str]] = {entity: set() for entity in expected}

    def note(entity: str, timeout: float = 60, predicate=None) -> dict:
        state = home_assistant.wait_for_state(entity, predicate, timeout=timeout)
        seen[entity].add(state["state"])
        return state

    door = run_edge(blank)
    try:
        # 1. Every entity on one device, with the documented ids.
        for entity in expected:
            note(entity, predicate=lambda s: s["state"] != "unavailable")
        registry = {e["entity_id"]: e for e in home_assistant.entity_registry() if e["platform"] == "mqtt"}
        assert set(expected) <= set(registry)
        devices = {registry[e]["device_id"] for e in expected}
        assert len(devices) == 1
        (device_id,) = devices
        (device,) = [d for d in home_assistant.device_registry() if d["id"] == device_id]
        assert device["name"] == NAME and device["sw_version"] and device["manufacturer"] == "edge"
        assert home_assistant.state(f"sensor.edge_{DEVICE}_last_person")["state"] == "unknown"
        assert home_assistant.state(f"binary_sensor.edge_{DEVICE}_known_present")["state"] == "off"
        assert home_assistant.state(f"binary_sensor.edge_{DEVICE}_camera_problem")["state"] == "off"
        assert home_assistant.state(f"sensor.edge_{DEVICE}_enrollment")["state"] == "idle"
        assert home_assistant.state(OBAMA)["state"] == "off"
        categories = {e: registry[e].get("entity_category") for e in expected}
        assert categories[f"button.edge_{DEVICE}_enroll"] == "config"
        assert categories[f"binary_sensor.edge_{DEVICE}_camera_problem"] == "diagnostic"

        # Device triggers, and an automation using "obama recognized".
        ours = [t for t in home_assistant.device_triggers(device_id) if t.get("domain") == "mqtt"]
        assert {(t["type"], t["subtype"]) for t in ours} == {("recognized", "any"), ("unknown", "any"),
                                                            ("spoof", "any"), ("recognized", "obama")}
        (obama_trigger,) = [t for t in ours if t["subtype"] == "obama"]
        automation = home_assistant.create_automation({
            "alias": "obama at the door",
            "triggers": [{**obama_trigger, "trigger": "device"} if "platform" not in obama_trigger
                         else {("trigger" if k == "platform" else k): v for k, v in obama_trigger.items()}],
            "actions": [{"event": "edge_test_obama_arrived"}],
        })
        assert home_assistant.state(automation)["attributes"].get("last_triggered") is None

        # HA's text and buttons reach edge, and edge's answers reach HA.
        home_assistant.call_service("text", "set_value", {"entity_id": f"text.edge_{DEVICE}_enroll_name",
                                                           "value": "Zoë"})
        note(f"text.edge_{DEVICE}_enroll_name", predicate=lambda s: s["state"] == "Zoë")
        home_assistant.call_service("button", "press", {"entity_id": f"button.edge_{DEVICE}_enroll"})
        note(f"sensor.edge_{DEVICE}_enrollment", predicate=lambda s: s["state"] == "collecting 0 of 5")
        home_assistant.call_service("button", "press", {"entity_id": f"button.edge_{DEVICE}_enroll_cancel"})
        note(f"sensor.edge_{DEVICE}_enrollment", predicate=lambda s: s["state"] == "cancelled")
        for entity in (f"button.edge_{DEVICE}_enroll", f"button.edge_{DEVICE}_enroll_cancel"):
            seen[entity].add("pressed")
    finally:
        door.send_signal(signal.SIGTERM)
        door.wait(60)
    note(f"binary_sensor.edge_{DEVICE}_known_present", predicate=lambda s: s["state"] == "unavailable")

    # 2. Obama comes.
    door = run_edge(visit)
    try:
        event = note(f"event.edge_{DEVICE}_recognition", predicate=lambda s: s["state"] not in ("unknown", "unavailable"))
        assert event["attributes"]["event_type"] == "recognized" and event["attributes"]["name"] == "obama"
        assert 0.36 <= event["attributes"]["similarity"] <= 1.0
        note(OBAMA, predicate=lambda s: s["state"] == "on")
        note(f"binary_sensor.edge_{DEVICE}_known_present", predicate=lambda s: s["state"] == "on")
        note(f"sensor.edge_{DEVICE}_last_person", predicate=lambda s: s["state"] == "obama")
        face = note(f"image.edge_{DEVICE}_face", predicate=lambda s: s["state"] not in ("unknown", "unavailable"))
        status, body = home_assistant.rest("GET", f"/api/image_proxy/image.edge_{DEVICE}_face")
        assert status == 200 and body[:2] == b"\xff\xd8", (status, body[:100])
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and max(image.shape[:2]) <= 256 and len(body) <= 50_000
        assert face["state"]
        fired = home_assistant.wait_for_state(automation, lambda s: s["attributes"].get("last_triggered"))
        assert fired["attributes"]["last_triggered"]

        # 3. kill -9: everything unavailable; a restart shows nobody, with no stale "on" in between.
        door.send_signal(signal.SIGKILL)
        door.wait(30)
        for entity in expected:
            note(entity, timeout=30, predicate=lambda s: s["state"] == "unavailable")
    finally:
        if door.poll() is None:
            door.kill()
    watcher = StateWatcher(home_assistant)
    door = run_edge(blank)
    try:
        note(f"binary_sensor.edge_{DEVICE}_known_present", predicate=lambda s: s["state"] == "off")
        note(OBAMA, predicate=lambda s: s["state"] == "off")
        time.sleep(1.0)
    finally:
        watcher.close()
        door.send_signal(signal.SIGTERM)
        door.wait(60)
    presence = [(e, s) for e, s in watcher.changes if e in (OBAMA, f"binary_sensor.edge_{DEVICE}_known_present")]
    assert presence and all(state != "on" for _, state in presence), presence
    assert home_assistant.state(f"sensor.edge_{DEVICE}_last_person")["state"] in ("obama", "unavailable")

    with capsys.disabled():
        print(f"\nHome Assistant {home_assistant.version}: entity, advertised key, created, states seen")
        for entity, key in sorted(expected.items()):
            print(f"  {entity:58s} {key:34s} {'yes' if entity in registry else 'NO':4s} "
                  f"{', '.join(sorted(seen[entity]))}")
