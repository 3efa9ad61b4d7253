"""The Home Assistant harness against a real Home Assistant and a real Mosquitto, for both versions.

The discovery messages here are written by hand, as Home Assistant's MQTT
documentation describes them: this checks the harness (and what Home
Assistant does with such messages), not the edge package's discovery code.
The environments come from tests/hass/build.sh; without them these tests are
skipped (a failure with EDGE_REQUIRE_HOMEASSISTANT=1, as in CI).
"""

from __future__ import annotations

import json
import time
import struct
import zlib

import pytest

from broker import Mosquitto, Observer, mosquitto_binary
from hass.harness import FLAVOURS, HomeAssistant, ha_environment, wait_for_subscription

pytestmark = pytest.mark.slow  # a broker and a Home Assistant process

DEVICE = {"identifiers": ["harness-door"], "name": "Harness door", "manufacturer": "edge tests", "model": "by hand"}


@pytest.fixture(scope="module", params=FLAVOURS)
def home(request, tmp_path_factory):
    """(broker, ha, observer): one Home Assistant per flavour, shared by this module's tests."""
    environment = ha_environment(request.param)
    with Mosquitto(mosquitto_binary(), tmp_path_factory.mktemp("broker")) as broker:
        with HomeAssistant(environment, broker.host, broker.port) as ha:
            observer = Observer(broker, ["harness/#"])
            try:
                yield broker, ha, observer
            finally:
                observer.close()
        # Tidy after exit: HA gone, its config dir removed, nothing of the root left mounted on this host.
        assert ha.process is None and not ha.config_dir.exists()
        assert environment.host_mounts() == []


def entity_id_of(ha: HomeAssistant, unique_id: str, timeout: float = 30) -> str:
    """The entity_id HA gave the MQTT entity ``unique_id`` (from the entity registry), waiting for it."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in ha.entity_registry():
            if entry.get("platform") == "mqtt" and entry.get("unique_id") == unique_id:
                return entry["entity_id"]
        assert time.monotonic() < deadline, f"no MQTT entity {unique_id}\n{ha.log_tail()}"
        time.sleep(0.2)


def test_discovered_sensor_has_its_state_and_device(home):
    broker, ha, observer = home
    config = {
        "name": "Temperature",
        "unique_id": "harness-door-temperature",
        "state_topic": "harness/door/temperature",
        "unit_of_measurement": "°C",
        "device_class": "temperature",
        "device": DEVICE,
    }
    observer.publish("homeassistant/sensor/harness-door/temperature/config", json.dumps(config), retain=True)
    observer.publish("harness/door/temperature", "21.5", retain=True)

    entity_id = entity_id_of(ha, "harness-door-temperature")
    state = ha.wait_for_state(entity_id, lambda s: s["state"] == "21.5")
    assert state["attributes"]["unit_of_measurement"] == "°C"
    assert any(s["entity_id"] == entity_id for s in ha.states())

    devices = [d for d in ha.device_registry() if ["mqtt", "harness-door"] in d["identifiers"]]
    assert len(devices) == 1, ha.device_registry()
    assert devices[0]["name"] == "Harness door"
    assert devices[0]["manufacturer"] == "edge tests"
    (registered,) = [e for e in ha.entity_registry() if e["entity_id"] == entity_id]
    assert registered["device_id"] == devices[0]["id"]


def png(width: int = 2, height: int = 2) -> bytes:
    """A tiny valid PNG (grey pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack("!IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_event_binary_sensor_button_text_image_and_a_device_trigger_automation(home):
    """What the door announces: each kind of entity works, and a device trigger drives an automation."""
    broker, ha, observer = home
    node = "homeassistant/{}/harness-door/{}/config"
    configs = {
        node.format("event", "face"): {
            "name": "Face", "unique_id": "harness-door-face", "state_topic": "harness/door/event",
            "event_types": ["recognized", "unknown"], "device": DEVICE,
        },
        node.format("binary_sensor", "present"): {
            "name": "Present", "unique_id": "harness-door-present", "state_topic": "harness/door/present",
            "device_class": "occupancy", "device": DEVICE,
        },
        node.format("button", "enroll"): {
            "name": "Enroll", "unique_id": "harness-door-enroll", "command_topic": "harness/door/enroll",
            "device": DEVICE,
        },
        node.format("text", "label"): {
            "name": "Label", "unique_id": "harness-door-label", "command_topic": "harness/door/label/set",
            "state_topic": "harness/door/label", "device": DEVICE,
        },
        node.format("image", "snapshot"): {
            "name": "Snapshot", "unique_id": "harness-door-snapshot", "image_topic": "harness/door/snapshot",
            "content_type": "image/png", "device": DEVICE,
        },
        node.format("device_automation", "recognized"): {
            "automation_type": "trigger", "topic": "harness/door/trigger", "type": "recognized", "subtype": "anyone",
            "device": DEVICE,
        },
    }
    for topic, config in configs.items():
        observer.publish(topic, json.dumps(config), retain=True)

    face = entity_id_of(ha, "harness-door-face")
    present = entity_id_of(ha, "harness-door-present")
    enroll = entity_id_of(ha, "harness-door-enroll")
    label = entity_id_of(ha, "harness-door-label")
    snapshot = entity_id_of(ha, "harness-door-snapshot")
    assert (face.split(".")[0], present.split(".")[0], enroll.split(".")[0], label.split(".")[0], snapshot.split(".")[0]) == (
        "event", "binary_sensor", "button", "text", "image")

    for topic in ("harness/door/event", "harness/door/present", "harness/door/label", "harness/door/snapshot"):
        wait_for_subscription(broker, topic)
    observer.publish("harness/door/event", json.dumps({"event_type": "recognized", "name": "obama"}))
    event = ha.wait_for_state(face, lambda s: s["attributes"].get("event_type") == "recognized")
    assert event["attributes"]["name"] == "obama"

    with ha.websocket() as ws:  # a subscription sees the change as it happens
        ws.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
        assert ws.recv_json()["success"]
        observer.publish("harness/door/present", "ON")
        change = ws.recv_json()
        while change.get("type") != "event" or change["event"]["data"]["entity_id"] != present:
            change = ws.recv_json()
    assert change["event"]["data"]["new_state"]["state"] == "on"
    assert ha.state(present)["state"] == "on"

    ha.call_service("button", "press", {"entity_id": enroll})
    assert observer.wait_for("harness/door/enroll")[0].payload == b"PRESS"

    observer.publish("harness/door/label", "front")
    ha.wait_for_state(label, lambda s: s["state"] == "front")
    ha.call_service("text", "set_value", {"entity_id": label, "value": "back"})
    assert observer.wait_for("harness/door/label/set")[0].payload == b"back"

    picture = png()
    observer.publish("harness/door/snapshot", picture)
    ha.wait_for_state(snapshot, lambda s: s["state"] not in ("unknown", "unavailable"))
    status, body = ha.rest("GET", f"/api/image_proxy/{snapshot}")
    assert (status, body) == (200, picture)

    (device,) = [d for d in ha.device_registry() if ["mqtt", "harness-door"] in d["identifiers"]]
    triggers = [t for t in ha.device_triggers(device["id"]) if t.get("domain") == "mqtt"]
    assert [(t["type"], t["subtype"]) for t in triggers] == [("recognized", "anyone")]
    automation = ha.create_automation({
        "alias": "Harness door recognized",
        "triggers": [triggers[0]],
        "actions": [{"action": "mqtt.publish", "data": {"topic": "harness/automation", "payload": "ran"}}],
    })
    assert ha.wait_for_state(automation)["state"] == "on"
    wait_for_subscription(broker, "harness/door/trigger")
    observer.publish("harness/door/trigger", "anything")
    assert observer.wait_for("harness/automation")[0].payload == b"ran"
    ha.wait_for_state(automation, lambda s: s["attributes"].get("last_triggered") is not None)
