"""Home Assistant discovery payloads and the topic layout (pure, no broker)."""

from __future__ import annotations

import json
import re

import pytest

from edge.adapters.discovery import EVENT_TYPES, Topics, device_block, discovery_messages, people_messages, person_key
from edge.names import InvalidNameError, validate_name


def by_key(messages: list) -> dict:
    """(component, key) -> (topic, payload)."""
    return {(topic.split("/")[1], topic.split("/")[3]): (topic, payload) for topic, payload in messages}


def test_topics() -> None:
    t = Topics("edge", "front-door")
    assert t.availability == "edge/front-door/availability"
    assert t.event == "edge/front-door/event"
    assert t.state == "edge/front-door/state"
    assert t.face == "edge/front-door/face"
    assert t.enrollment == "edge/front-door/enrollment"
    assert t.error == "edge/front-door/error"
    assert t.command("remove") == "edge/front-door/command/remove"
    assert t.command_filter == "edge/front-door/command/+"
    assert Topics("site/a", "d").base == "site/a/d"


@pytest.mark.parametrize("device_id", ["", "a/b", "a+b", "a#", "with space", "x" * 65, "ümlaut"])
def test_bad_device_ids(device_id: str) -> None:
    with pytest.raises(ValueError, match="device_id"):
        Topics("edge", device_id)


@pytest.mark.parametrize("prefix", ["", "/edge", "edge/", "a//b", "ed+ge", "#"])
def test_bad_topic_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="topic prefix"):
        Topics(prefix, "door")


ENTITIES = {
    ("event", "recognition"), ("sensor", "last_person"), ("binary_sensor", "known_present"),
    ("sensor", "enrollment"), ("binary_sensor", "camera_problem"), ("button", "enroll"),
    ("button", "enroll_cancel"), ("text", "enroll_name"), ("image", "face"),
}


def test_entities_and_their_fields() -> None:
    topics = Topics("edge", "Front-Door")
    messages = discovery_messages(topics, device_name="Front door", sw_version="0.1.0")
    entities = by_key(messages)
    assert set(entities) == ENTITIES

    for (component, key), (topic, payload) in entities.items():
        if payload is None:
            continue
        assert topic == f"homeassistant/{component}/Front-Door/{key}/config"
        assert payload["unique_id"] == f"edge_Front-Door_{key}"
        # Entity ids are lower case; object_id for Home Assistant before 2025.10, default_entity_id after.
        assert payload["default_entity_id"] == f"{component}.edge_front_door_{key}"
        assert payload["object_id"] == f"edge_front_door_{key}"
        assert re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", payload["default_entity_id"])
        assert payload["availability_topic"] == "edge/Front-Door/availability"
        assert (payload["payload_available"], payload["payload_not_available"]) == ("online", "offline")
        assert payload["device"] == device_block("Front-Door", "Front door", "0.1.0")
        assert payload["device"]["sw_version"] == "0.1.0"
        assert payload["device"]["manufacturer"] == payload["device"]["model"] == "edge"
        assert not payload["name"].lower().startswith("front door"), "entity names exclude the device name"
        json.dumps(payload)  # serializable as is

    payload = lambda component, key: entities[component, key][1]  # noqa: E731
    assert payload("event", "recognition")["state_topic"] == topics.event
    assert payload("event", "recognition")["event_types"] == list(EVENT_TYPES) == ["recognized", "unknown", "spoof"]
    assert payload("sensor", "last_person")["state_topic"] == topics.last_person
    assert "value_template" not in payload("sensor", "last_person")  # the name as sent; nothing before someone
    assert payload("binary_sensor", "known_present")["state_topic"] == topics.state
    assert "known_present" in payload("binary_sensor", "known_present")["value_template"]
    assert payload("binary_sensor", "camera_problem")["device_class"] == "problem"
    assert payload("sensor", "enrollment")["state_topic"] == topics.enrollment_state
    assert payload("button", "enroll")["command_topic"] == topics.command("enroll")
    assert payload("button", "enroll_cancel")["command_topic"] == topics.command("enroll_cancel")
    text = payload("text", "enroll_name")
    assert (text["command_topic"], text["state_topic"]) == (topics.command("set_name"), topics.enroll_name)
    assert (text["min"], text["max"]) == (0, 64)
    categories = {key: p.get("entity_category") for (_, key), (_, p) in entities.items() if p}
    assert categories == {"recognition": None, "last_person": None, "known_present": None, "enrollment": "diagnostic",
                          "camera_problem": "diagnostic", "enroll": "config", "enroll_cancel": "config",
                          "enroll_name": "config"}
    unique_ids = [payload["unique_id"] for _, payload in messages if payload]
    assert len(set(unique_ids)) == len(unique_ids)


def test_text_pattern_matches_the_name_rule() -> None:
    text = by_key(discovery_messages(Topics("edge", "d"), device_name="D"))["text", "enroll_name"][1]
    pattern = re.compile(text["pattern"])
    assert pattern.match("Zoë Martin") and pattern.match("")  # empty: no name set
    for bad in ("a/b", "a\nb", "x" * 65, ".hidden"):
        assert not pattern.match(bad)
        with pytest.raises(InvalidNameError):
            validate_name(bad)


def test_image_entity_is_off_by_default_and_removed() -> None:
    topics = Topics("edge", "door")
    topic, payload = by_key(discovery_messages(topics, device_name="Door"))["image", "face"]
    assert topic == "homeassistant/image/door/face/config"
    assert payload is None  # published as an empty retained message: removes the entity


def test_image_entity_when_enabled() -> None:
    topics = Topics("edge", "door")
    _, payload = by_key(discovery_messages(topics, device_name="Door", publish_face_image=True))["image", "face"]
    assert payload["image_topic"] == "edge/door/face"
    assert payload["content_type"] == "image/jpeg"
    assert payload["default_entity_id"] == "image.edge_door_face"


def test_discovery_prefix() -> None:
    messages = discovery_messages(Topics("edge", "door"), device_name="Door", discovery_prefix="ha")
    messages += people_messages(Topics("edge", "door"), ["alice"], device_name="Door", discovery_prefix="ha")
    assert all(topic.startswith("ha/") and topic.endswith("/config") for topic, _ in messages)


def test_device_triggers_and_presence_per_person() -> None:
    topics = Topics("edge", "door")
    people = ["Zoë Martin", "zoe martin", 'Bob "the builder" {{ x }}']
    messages = by_key(people_messages(topics, people, device_name="Door", sw_version="1"))
    triggers = {key: p for (component, key), (_, p) in messages.items() if component == "device_automation"}
    assert (triggers["recognized_any"]["type"], triggers["recognized_any"]["subtype"]) == ("recognized", "any")
    assert (triggers["unknown_any"]["type"], triggers["unknown_any"]["payload"]) == ("unknown", "unknown")
    assert (triggers["spoof_any"]["type"], triggers["spoof_any"]["payload"]) == ("spoof", "spoof")
    for name in people:
        key = person_key(name)
        assert re.fullmatch(r"person_[a-z0-9_]+", key)
        trigger = triggers[f"{key}_recognized"]
        assert (trigger["automation_type"], trigger["type"], trigger["subtype"]) == ("trigger", "recognized", name)
        assert trigger["topic"] == topics.event and trigger["payload"] == f"recognized:{name}"
        assert name not in trigger["value_template"]  # names are compared, never templated
        presence = messages["binary_sensor", f"{key}_present"][1]
        assert presence["state_topic"] == topics.presence(key) and presence["device_class"] == "presence"
        assert presence["name"] == f"{name} present"
    assert len({person_key(n) for n in people}) == len(people)  # names that slug alike stay apart
    assert len(by_key(people_messages(topics, people, device_name="Door", per_person=False))) == 3


# The keys Home Assistant's MQTT discovery schemas accept for what edge sends, with their types
# (Home Assistant's MQTT integration docs and schemas, 2024.3 to 2026.11); unknown keys would be dropped.
COMMON = {"name": str, "unique_id": str, "object_id": str, "default_entity_id": str, "availability_topic": str,
          "payload_available": str, "payload_not_available": str, "device": dict, "origin": dict, "qos": int,
          "icon": str, "entity_category": str, "json_attributes_topic": str, "json_attributes_template": str}
SCHEMAS = {
    "event": {"state_topic": str, "event_types": list, "value_template": str, "device_class": str},
    "sensor": {"state_topic": str, "value_template": str, "device_class": str, "unit_of_measurement": str},
    "binary_sensor": {"state_topic": str, "value_template": str, "payload_on": str, "payload_off": str,
                      "device_class": str},
    "button": {"command_topic": str, "payload_press": str, "device_class": str},
    "text": {"command_topic": str, "state_topic": str, "min": int, "max": int, "mode": str, "pattern": str},
    "image": {"image_topic": str, "content_type": str, "url_topic": str},
    "device_automation": {"automation_type": str, "type": str, "subtype": str, "topic": str, "payload": str,
                          "value_template": str, "qos": int, "device": dict, "origin": dict},
}
DEVICE = {"identifiers": list, "name": str, "manufacturer": str, "model": str, "sw_version": str}
CATEGORIES = {"config", "diagnostic"}
DEVICE_CLASSES = {"binary_sensor": {"presence", "problem"}}


def test_every_payload_has_only_keys_and_types_home_assistant_accepts() -> None:
    topics = Topics("edge", "door")
    messages = discovery_messages(topics, device_name="Front door", publish_face_image=True, sw_version="0.1.0")
    messages += people_messages(topics, ["alice", "Zoë"], device_name="Front door", sw_version="0.1.0")
    for topic, payload in messages:
        component = topic.split("/")[1]
        allowed = SCHEMAS[component] if component == "device_automation" else {**COMMON, **SCHEMAS[component]}
        assert set(payload) <= set(allowed), (topic, set(payload) - set(allowed))
        for key, value in payload.items():
            assert isinstance(value, allowed[key]) and not isinstance(value, bool), (topic, key, value)
        assert set(payload["device"]) <= set(DEVICE) and all(isinstance(payload["device"][k], DEVICE[k])
                                                                for k in payload["device"])
        assert payload.get("entity_category", "config") in CATEGORIES
        if "device_class" in payload:
            assert payload["device_class"] in DEVICE_CLASSES[component]
        if component == "device_automation":
            assert payload["automation_type"] == "trigger" and payload["type"] and payload["subtype"]
        else:
            assert {"name", "unique_id", "availability_topic"} <= set(payload)
        if component == "text":
            assert 0 <= payload["min"] <= payload["max"] <= 255  # Home Assistant's limit on a state


def test_the_state_fields_documented_are_the_ones_sent() -> None:
    from edge.adapters.discovery import STATE_FIELDS
    from edge.messages import State

    assert set(STATE_FIELDS) == set(State((), None, "door", "cam").to_dict())
