"""Home Assistant discovery payloads and the topic layout (pure, no broker)."""

from __future__ import annotations

import json
import re

import pytest

from edge.adapters.discovery import EVENT_TYPES, Topics, device_block, discovery_messages


def by_component(messages: list) -> dict:
    return {topic.split("/")[1]: (topic, payload) for topic, payload in messages}


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


def test_entities_and_their_fields() -> None:
    topics = Topics("edge", "Front-Door")
    messages = discovery_messages(topics, device_name="Front door", sw_version="0.1.0")
    entities = by_component(messages)
    assert set(entities) == {"event", "sensor", "binary_sensor", "button", "text", "image"}

    expected_keys = {
        "event": "recognition",
        "sensor": "last_person",
        "binary_sensor": "known_present",
        "button": "enroll",
        "text": "enroll_name",
    }
    for component, key in expected_keys.items():
        topic, payload = entities[component]
        assert topic == f"homeassistant/{component}/Front-Door/{key}/config"
        assert payload["unique_id"] == f"edge_Front-Door_{key}"
        # Entity ids are lower case; default_entity_id replaces the deprecated object_id.
        assert payload["default_entity_id"] == f"{component}.edge_front_door_{key}"
        assert re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", payload["default_entity_id"])
        assert "object_id" not in payload
        assert payload["availability_topic"] == "edge/Front-Door/availability"
        assert (payload["payload_available"], payload["payload_not_available"]) == ("online", "offline")
        assert payload["device"] == device_block("Front-Door", "Front door", "0.1.0")
        assert payload["device"]["manufacturer"] == payload["device"]["model"] == "edge"
        assert not payload["name"].lower().startswith("front door"), "entity names exclude the device name"
        json.dumps(payload)  # serializable as is

    assert entities["event"][1]["state_topic"] == topics.event
    assert entities["event"][1]["event_types"] == list(EVENT_TYPES) == ["recognized", "unknown"]
    assert entities["sensor"][1]["state_topic"] == topics.state
    assert "last_person" in entities["sensor"][1]["value_template"]
    assert entities["binary_sensor"][1]["state_topic"] == topics.state
    assert "known_present" in entities["binary_sensor"][1]["value_template"]
    assert entities["button"][1]["command_topic"] == topics.command("enroll")
    assert entities["text"][1]["command_topic"] == topics.command("set_name")
    assert (entities["text"][1]["min"], entities["text"][1]["max"]) == (1, 64)
    unique_ids = [payload["unique_id"] for _, payload in messages if payload]
    assert len(set(unique_ids)) == len(unique_ids)


def test_text_pattern_matches_the_command_rules() -> None:
    text = by_component(discovery_messages(Topics("edge", "d"), device_name="D"))["text"][1]
    pattern = re.compile(text["pattern"])
    assert pattern.match("Zoë Martin")
    assert not pattern.match("a/b")
    assert not pattern.match("a\nb")
    assert not pattern.match("x" * 65)


def test_image_entity_is_off_by_default_and_removed() -> None:
    topics = Topics("edge", "door")
    topic, payload = by_component(discovery_messages(topics, device_name="Door"))["image"]
    assert topic == "homeassistant/image/door/face/config"
    assert payload is None  # published as an empty retained message: removes the entity


def test_image_entity_when_enabled() -> None:
    topics = Topics("edge", "door")
    entities = by_component(discovery_messages(topics, device_name="Door", publish_face_image=True))
    _, payload = entities["image"]
    assert payload["image_topic"] == "edge/door/face"
    assert payload["content_type"] == "image/jpeg"
    assert payload["default_entity_id"] == "image.edge_door_face"


def test_discovery_prefix() -> None:
    messages = discovery_messages(Topics("edge", "door"), device_name="Door", discovery_prefix="ha")
    assert all(topic.startswith("ha/") and topic.endswith("/config") for topic, _ in messages)
    with pytest.raises(ValueError):
        discovery_messages(Topics("edge", "door"), device_name="Door", discovery_prefix="ha/#")
