"""The door's MQTT topics and its Home Assistant discovery payloads (pure: no I/O, no paho).

Topics under ``<topic_prefix>/<device_id>/`` (``edge/<device_id>/`` by default):

* ``availability`` -- ``online`` / ``offline``, retained; ``offline`` is also the last will.
* ``event`` -- one JSON object per decision (see ``edge.messages.Event``), QoS 1, not retained.
* ``state`` -- who is at the door now, JSON, retained; see ``STATE_FIELDS``.
* ``last_person`` -- the name of the last person recognized, plain text, retained (never
  published before someone is recognized; cleared when that person is removed).
* ``present/<person key>`` -- ``ON``/``OFF``, retained: whether that enrolled person is at the door.
* ``face`` -- a JPEG of the face of each event, not retained; only when enabled.
* ``enrollment`` -- enrollment progress and outcome, JSON, not retained.
* ``enrollment_state`` -- the enrollment's status now, JSON (``status``, ``name``, ``taken``,
  ``wanted``, ``detail``), retained.
* ``enroll_name`` -- the name edge holds for the next enrollment, plain text, retained.
* ``error`` -- the answer to a command refused or failed, JSON (``topic``, ``error``), not retained.
* ``result`` -- the answer to a command carried out, JSON (``topic``, ``result``), not retained.
* ``command/<subtopic>`` -- commands; see ``edge.adapters.commands``.

Home Assistant discovery (retained, one topic per entity, all on one device):
``<discovery_prefix>/<component>/<device_id>/<key>/config``. The device's
entities: an ``event`` (``recognized``/``unknown``/``spoof``), a last-person
``sensor``, a known-person-present ``binary_sensor``, an enrollment-status
``sensor``, a camera-problem ``binary_sensor``, start and cancel
enrollment ``button``s, the enrollment-name ``text`` and, only when face
images are enabled, an ``image``. Face crops are personal data, so the
image entity is off by default; while off, its config topic is cleared
(an empty retained message), which also removes an entity created earlier.

Per enrolled person (``people_messages``; off with ``person_entities =
false``, for large galleries): a presence ``binary_sensor`` and a device
trigger ``recognized`` / <name>; for everyone, device triggers
``recognized`` / ``any``, ``unknown`` / ``any`` and ``spoof`` / ``any`` (a
face that matches someone enrolled but is not live: a photo or a screen), so
that automations can start from "Alice recognized at Front door" in Home
Assistant's editor.

Entities set ``unique_id``, both ``object_id`` (what Home Assistant before
2025.10 reads) and ``default_entity_id`` (its successor), so the entity ids
are ``<component>.edge_<device_id>_<key>`` on every supported version, and
``availability_topic``; they share one ``device`` block.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edge.adapters.settings import MqttSettings, check_topic_prefix
from edge.messages import EVENT_TYPES
from edge.names import MAX_NAME_CHARS, check_device_id


STATE_FIELDS = {
    "present": "names of the known people in view now, sorted",
    "known_present": "true while at least one known person is in view (the binary sensor)",
    "last_person": "the last person recognized, or null (the sensor)",
    "timestamp": "ISO 8601 time with zone of this state",
    "device": "the door's device_id",
    "camera": "the camera's name (a stream is named by host, never with its credentials)",
    "camera_online": "false while the camera is gone and being reopened",
    "camera_detail": "why the camera is offline, or empty",
    "frames_dropped": "frames of a live camera the door had no time for since it started (it takes the newest)",
}
"""The fields of a ``state`` message; ``known_present`` and ``last_person`` are required."""

PAYLOAD_ONLINE = "online"
PAYLOAD_OFFLINE = "offline"
MANUFACTURER = "edge"
MODEL = "edge"

@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one door device: ``<prefix>/<device_id>/...``."""

    prefix: str
    device_id: str

    def __post_init__(self) -> None:
        check_topic_prefix(self.prefix)
        check_device_id(self.device_id)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def face(self) -> str:
        return f"{self.base}/face"

    @property
    def last_person(self) -> str:
        return f"{self.base}/last_person"

    def presence(self, key: str) -> str:
        """Whether the person with this key (``person_key``) is at the door: ON/OFF."""
        return f"{self.base}/present/{key}"

    @property
    def presence_filter(self) -> str:
        return f"{self.base}/present/+"

    @property
    def enrollment_state(self) -> str:
        return f"{self.base}/enrollment_state"

    @property
    def enroll_name(self) -> str:
        return f"{self.base}/enroll_name"

    @property
    def enrollment(self) -> str:
        return f"{self.base}/enrollment"

    @property
    def error(self) -> str:
        return f"{self.base}/error"

    @property
    def result(self) -> str:
        return f"{self.base}/result"

    @property
    def command_base(self) -> str:
        """Commands are ``<command_base>/<subtopic>``."""
        return f"{self.base}/command"

    @property
    def command_filter(self) -> str:
        """The subscription that receives every command."""
        return f"{self.command_base}/+"

    def command(self, subtopic: str) -> str:
        return f"{self.command_base}/{subtopic}"


def device_block(device_id: str, device_name: str, sw_version: str | None = None) -> dict[str, Any]:
    """The ``device`` block shared by every entity of the door."""
    block: dict[str, Any] = {
        "identifiers": [f"edge_{device_id}"],
        "name": device_name,
        "manufacturer": MANUFACTURER,
        "model": MODEL,
    }
    if sw_version:
        block["sw_version"] = sw_version
    return block


def person_key(name: str) -> str:
    """A key for a person in topics, unique ids and entity ids: ``person_<ascii slug>_<hash>``.

    The slug keeps the name readable in entity ids; the hash (of the exact
    name) keeps two names that slug alike apart.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name).strip("_")[:24]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"person_{slug}_{digest}" if slug else f"person_{digest}"


ENROLLMENT_STATUS_TEMPLATE = (
    "{% if value_json.status == 'collecting' %}collecting {{ value_json.taken }} of {{ value_json.wanted }}"
    "{% else %}{{ value_json.status }}{% endif %}"
)
"""The enrollment sensor's state: idle, collecting n of N, saved, cancelled, timed_out or failed."""


class _Entities:
    """Builds the payloads of one door's entities (see the module docstring)."""

    def __init__(self, topics: Topics, device_name: str, discovery_prefix: str, sw_version: str | None) -> None:
        check_topic_prefix(discovery_prefix)
        self.topics, self.prefix = topics, discovery_prefix
        self.slug = topics.device_id.lower().replace("-", "_")
        self.device = device_block(topics.device_id, device_name, sw_version)

    def entity(self, component: str, key: str, name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        object_id = f"edge_{self.slug}_{key}"
        payload = {
            "name": name,
            "unique_id": f"edge_{self.topics.device_id}_{key}",
            "object_id": object_id,
            "default_entity_id": f"{component}.{object_id}",
            "availability_topic": self.topics.availability,
            "payload_available": PAYLOAD_ONLINE,
            "payload_not_available": PAYLOAD_OFFLINE,
            "device": self.device,
            "origin": {"name": "edge"},
            "qos": 1,
            **fields,
        }
        return self.config_topic(component, key), payload

    def trigger(self, key: str, trigger_type: str, subtype: str, template: str, payload: str) -> tuple[str, dict[str, Any]]:
        return self.config_topic("device_automation", key), {
            "automation_type": "trigger",
            "type": trigger_type,
            "subtype": subtype,
            "topic": self.topics.event,
            "value_template": template,
            "payload": payload,
            "qos": 1,
            "device": self.device,
            "origin": {"name": "edge"},
        }

    def config_topic(self, component: str, key: str) -> str:
        return f"{self.prefix}/{component}/{self.topics.device_id}/{key}/config"


def discovery_messages(
    topics: Topics,
    *,
    device_name: str,
    discovery_prefix: str = "homeassistant",
    publish_face_image: bool = False,
    sw_version: str | None = None,
) -> list[tuple[str, dict[str, Any] | None]]:
    """The discovery message of each of the device's own entities, as (config topic, payload).

    Publish each retained, the payload as JSON; a payload of ``None`` means
    "publish an empty retained message", which removes that entity (the image
    entity while face images are off). People's entities: ``people_messages``.
    """
    e = _Entities(topics, device_name, discovery_prefix, sw_version)
    t = topics
    messages: list[tuple[str, dict[str, Any] | None]] = [
        e.entity("event", "recognition", "Recognition", state_topic=t.event, event_types=list(EVENT_TYPES),
                 icon="mdi:face-recognition"),
        # A topic of its own, published only once someone is recognized: before that HA shows "unknown".
        e.entity("sensor", "last_person", "Last person", state_topic=t.last_person, icon="mdi:account"),
        e.entity("binary_sensor", "known_present", "Known person present", state_topic=t.state,
                 value_template="{{ 'ON' if value_json.known_present else 'OFF' }}", payload_on="ON",
                 payload_off="OFF", device_class="presence"),
        e.entity("sensor", "enrollment", "Enrollment", state_topic=t.enrollment_state,
                 value_template=ENROLLMENT_STATUS_TEMPLATE, json_attributes_topic=t.enrollment_state,
                 icon="mdi:account-plus", entity_category="diagnostic"),
        e.entity("binary_sensor", "camera_problem", "Camera", state_topic=t.state,
                 value_template="{{ 'OFF' if value_json.camera_online else 'ON' }}", payload_on="ON",
                 payload_off="OFF", device_class="problem", entity_category="diagnostic",
                 json_attributes_topic=t.state,
                 json_attributes_template="{{ {'detail': value_json.camera_detail} | tojson }}"),
        e.entity("button", "enroll", "Start enrollment", command_topic=t.command("enroll"), payload_press="PRESS",
                 icon="mdi:account-plus", entity_category="config"),
        e.entity("button", "enroll_cancel", "Cancel enrollment", command_topic=t.command("enroll_cancel"),
                 payload_press="PRESS", icon="mdi:account-cancel", entity_category="config"),
        # min 0: "no name set" is a state too (edge then picks person_N).
        e.entity("text", "enroll_name", "Enrollment name", command_topic=t.command("set_name"),
                 state_topic=t.enroll_name, min=0, max=MAX_NAME_CHARS, mode="text",
                 pattern=rf"^([^/.\x00-\x1f\x7f][^/\x00-\x1f\x7f]{{0,{MAX_NAME_CHARS - 1}}})?$",
                 icon="mdi:form-textbox", entity_category="config"),
    ]
    image_topic, image_payload = e.entity("image", "face", "Face", image_topic=t.face, content_type="image/jpeg",
                                          icon="mdi:face-man")
    del image_payload["qos"]  # the image entity has no qos option
    messages.append((image_topic, image_payload if publish_face_image else None))
    return messages


def people_messages(
    topics: Topics,
    people: Iterable[str],
    *,
    device_name: str,
    discovery_prefix: str = "homeassistant",
    per_person: bool = True,
    sw_version: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Device triggers (``recognized``/``any``, ``unknown``/``any``, ``spoof``/``any``) and, with ``per_person``,
    each person's presence binary_sensor and ``recognized``/<name> trigger."""
    e = _Entities(topics, device_name, discovery_prefix, sw_version)
    messages = [
        e.trigger("recognized_any", "recognized", "any", "{{ value_json.event_type }}", "recognized"),
        e.trigger("unknown_any", "unknown", "any", "{{ value_json.event_type }}", "unknown"),
        e.trigger("spoof_any", "spoof", "any", "{{ value_json.event_type }}", "spoof"),
    ]
    if not per_person:
        return messages
    for name in sorted(set(people)):
        key = person_key(name)
        messages.append(e.entity("binary_sensor", f"{key}_present", f"{name} present",
                                 state_topic=topics.presence(key), payload_on="ON", payload_off="OFF",
                                 device_class="presence"))
        # The name is compared as plain text, never put inside a template.
        messages.append(e.trigger(f"{key}_recognized", "recognized", name,
                                  "{{ value_json.event_type }}:{{ value_json.name }}", f"recognized:{name}"))
    return messages


def door_discovery(
    topics: Topics, settings: MqttSettings, device_name: str, sw_version: str | None,
    people: Iterable[str] | None = None,
) -> list[tuple[str, dict[str, Any] | None]]:
    """All of the door's discovery messages under ``settings``: its own entities and, once the
    enrolled ``people`` are known, the device triggers and people's entities."""
    messages = discovery_messages(topics, device_name=device_name, discovery_prefix=settings.discovery_prefix,
                                  publish_face_image=settings.publish_face_image, sw_version=sw_version)
    if people is not None:
        messages += people_messages(topics, people, device_name=device_name, sw_version=sw_version,
                                    discovery_prefix=settings.discovery_prefix, per_person=settings.person_entities)
    return messages
