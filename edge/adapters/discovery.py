"""The door's MQTT topics and its Home Assistant discovery payloads (pure: no I/O, no paho).

Topics under ``<topic_prefix>/<device_id>/`` (``edge/<device_id>/`` by default):

* ``availability`` -- ``online`` / ``offline``, retained; ``offline`` is also the last will.
* ``event`` -- one JSON object per decision (see ``edge.messages.Event``), QoS 1, not retained.
* ``state`` -- who is at the door now, JSON, retained; see ``STATE_FIELDS``.
* ``face`` -- the latest face crop as JPEG bytes, not retained; only when enabled.
* ``enrollment`` -- enrollment progress and outcome, JSON, not retained.
* ``error`` -- the answer to a command refused or failed, JSON (``topic``, ``error``), not retained.
* ``result`` -- the answer to a command carried out, JSON (``topic``, ``result``), not retained.
* ``command/<subtopic>`` -- commands; see ``edge.adapters.commands``.

Home Assistant discovery (retained, one topic per entity, all on one device):
``<discovery_prefix>/<component>/<device_id>/<key>/config`` for an ``event``
(event types ``recognized``/``unknown``), a ``sensor`` (last person), a
``binary_sensor`` (known person present), a ``button`` (start enrollment),
a ``text`` (name for the next enrollment) and, only if face images are
enabled, an ``image`` (latest face crop). Face crops are personal data, so
the image entity is off by default; while off, its config topic is cleared
(an empty retained message), which also removes an entity created earlier.

Entities set ``unique_id``, ``default_entity_id`` (``<component>.<object id>``:
the successor of the deprecated ``object_id``) and ``availability_topic``,
and share one ``device`` block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.adapters.settings import check_topic_prefix
from edge.messages import EVENT_TYPES
from edge.names import check_device_id


STATE_FIELDS = {
    "present": "names of the known people in view now, sorted",
    "unknown": "number of unknown faces in view now",
    "known_present": "true while at least one known person is in view (the binary sensor)",
    "last_person": "the last person recognized, or null (the sensor)",
    "timestamp": "ISO 8601 time with zone of this state",
    "device": "the door's device_id",
    "camera": "the camera's name (a stream is named by host, never with its credentials)",
    "camera_online": "false while the camera is gone and being reopened",
    "camera_detail": "why the camera is offline, or empty",
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


def discovery_messages(
    topics: Topics,
    *,
    device_name: str,
    discovery_prefix: str = "homeassistant",
    publish_face_image: bool = False,
    sw_version: str | None = None,
) -> list[tuple[str, dict[str, Any] | None]]:
    """Every discovery message for the device, as (config topic, payload).

    Publish each retained, the payload as JSON; a payload of ``None`` means
    "publish an empty retained message", which removes that entity (the image
    entity while face images are off).
    """
    check_topic_prefix(discovery_prefix)
    device_id = topics.device_id
    slug = device_id.lower().replace("-", "_")
    device = device_block(device_id, device_name, sw_version)

    def entity(component: str, key: str, name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        payload = {
            "name": name,
            "unique_id": f"edge_{device_id}_{key}",
            "default_entity_id": f"{component}.edge_{slug}_{key}",
            "availability_topic": topics.availability,
            "payload_available": PAYLOAD_ONLINE,
            "payload_not_available": PAYLOAD_OFFLINE,
            "device": device,
            "origin": {"name": "edge"},
            **fields,
        }
        return f"{discovery_prefix}/{component}/{device_id}/{key}/config", payload

    messages: list[tuple[str, dict[str, Any] | None]] = [
        entity(
            "event",
            "recognition",
            "Recognition",
            state_topic=topics.event,
            event_types=list(EVENT_TYPES),
            qos=1,
            icon="mdi:face-recognition",
        ),
        entity(
            "sensor",
            "last_person",
            "Last person",
            state_topic=topics.state,
            # A null last_person renders as "None", which the MQTT sensor reads as "unknown".
            value_template="{{ value_json.last_person }}",
            json_attributes_topic=topics.state,
            qos=1,
            icon="mdi:account",
        ),
        entity(
            "binary_sensor",
            "known_present",
            "Known person present",
            state_topic=topics.state,
            value_template="{{ 'ON' if value_json.known_present else 'OFF' }}",
            payload_on="ON",
            payload_off="OFF",
            device_class="presence",
            qos=1,
        ),
        entity(
            "button",
            "enroll",
            "Start enrollment",
            command_topic=topics.command("enroll"),
            payload_press="PRESS",
            qos=1,
            icon="mdi:account-plus",
        ),
        entity(
            "text",
            "enroll_name",
            "Enrollment name",
            command_topic=topics.command("set_name"),
            min=1,
            max=64,
            mode="text",
            pattern=r"^[^/\x00-\x1f\x7f]{1,64}$",
            qos=1,
            icon="mdi:form-textbox",
        ),
    ]
    image_topic, image_payload = entity(
        "image",
        "face",
        "Face",
        image_topic=topics.face,
        content_type="image/jpeg",
        icon="mdi:face-man",
    )
    messages.append((image_topic, image_payload if publish_face_image else None))
    return messages
