"""What the door tells Home Assistant, over the MQTT link: the loop's publisher when there is a broker.

    publisher = HomeAssistantPublisher(link, MqttSettings(...), camera="front")
    loop = DoorLoop(engine, gallery, publisher, ...)      # events, state, people, enrollment

The link (edge.adapters.mqtt) moves bytes; this gives them meaning on the
topics of edge.adapters.discovery:

- events go out as they are; with ``publish_face_image`` a JPEG of the face
  (the face box with a margin, at most FACE_SIDE pixels a side and
  FACE_MAX_BYTES, never written to disk) follows each event on ``face``;
- the retained state carries the camera's status (``camera_online``,
  ``camera_detail``) merged in;
- ``last_person`` (retained) names the last person recognized; it is
  cleared when that person is no longer enrolled;
- each enrolled person's ``present/<key>`` (retained ON/OFF) follows the
  state; the people's discovery (presence entities, device triggers) is
  re-sent whenever the enrolled people change, and a removed person's
  entities, trigger and presence topic are cleared;
- ``enrollment_state`` (retained) sums up the enrollment: idle, collecting
  n of N, saved, cancelled, timed_out or failed (with the reason);
- ``enroll_name`` (retained) shows the name edge holds for the next enrollment.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, Protocol

import cv2
import numpy as np

from edge.adapters.discovery import Topics, door_discovery, person_key
from edge.adapters.settings import MqttSettings
from edge.messages import (
    CameraStatus,
    EnrollmentMessage,
    EnrollmentProgress,
    EnrollmentStatus,
    Event,
    GalleryProblem,
    State,
)

log = logging.getLogger(__name__)

FACE_SIDE = 256
"""Pixels: the longest side of a published face image."""
FACE_MAX_BYTES = 50_000
"""A published face image is at most this large (JPEG quality is lowered until it fits)."""


class Link(Protocol):
    """The transport (edge.adapters.mqtt.MqttLink)."""

    topics: Topics
    device_name: str
    sw_version: str | None

    def publish_event(self, event: Event) -> None: ...

    def publish_state(self, state: State) -> None: ...

    def publish_retained(self, topic: str, payload: bytes) -> None: ...

    def publish_face_image(self, jpeg: bytes) -> None: ...

    def publish_enrollment(self, message: EnrollmentMessage) -> None: ...

    def publish_error(self, source_topic: str, message: str) -> None: ...

    def set_discovery(self, messages: list) -> None: ...


def face_jpeg(face: np.ndarray, max_side: int = FACE_SIDE, max_bytes: int = FACE_MAX_BYTES) -> bytes:
    """A BGR face image as JPEG bytes: scaled down to ``max_side`` pixels, at most ``max_bytes``."""
    scale = max_side / max(face.shape[:2])
    if scale < 1.0:
        face = cv2.resize(face, (max(1, round(face.shape[1] * scale)), max(1, round(face.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    for quality in (85, 70, 50, 30, 15):
        ok, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(data) <= max_bytes:
            return data.tobytes()
    raise ValueError(f"a {face.shape[1]}x{face.shape[0]} face does not fit in {max_bytes} bytes as JPEG")


class HomeAssistantPublisher:
    """The door loop's publisher over MQTT (see the module docstring)."""

    def __init__(self, link: Link, settings: MqttSettings, camera: str) -> None:
        self.link, self.settings, self.topics = link, settings, link.topics
        self._camera = CameraStatus(True)
        self._state: State | None = None  # the loop's last, before the camera's status is merged in
        self._people: tuple[str, ...] | None = None
        self._presence: dict[str, bool] = {}  # person -> the ON/OFF last published
        self._last_person: str | None = None
        self.link.publish_state(State((), None, self.topics.device_id, camera))  # nobody yet: before "online"
        self._publish_enrollment_state({"status": "idle"})
        self.publish_enroll_name(None)

    # --- the loop's Publisher -----------------------------------------------

    def publish_event(self, event: Event) -> None:
        self.link.publish_event(event)
        if event.name is not None and event.name != self._last_person:
            self._last_person = event.name
            self.link.publish_retained(self.topics.last_person, event.name.encode("utf-8"))
        if self.settings.publish_face_image and event.face is not None:
            try:
                self.link.publish_face_image(face_jpeg(event.face))
            except ValueError as exc:
                log.warning("face image not sent: %s", exc)

    def publish_state(self, state: State) -> None:
        self._state = state
        self._send_state()

    def publish_camera(self, status: CameraStatus) -> None:
        self._camera = status
        self._send_state()

    def publish_enrollment(self, message: EnrollmentMessage) -> None:
        self.link.publish_enrollment(message)
        if isinstance(message, EnrollmentProgress):
            summary: dict[str, Any] = {"status": "collecting", "name": message.name, "taken": message.taken,
                                       "wanted": message.wanted, "detail": message.reason}
        elif isinstance(message, EnrollmentStatus) and message.state == "started":
            summary = {"status": "collecting", "name": message.name, "taken": 0, "wanted": message.wanted,
                       "detail": ""}
        else:
            summary = {"status": message.state, "name": message.name, "detail": message.detail}
        self._publish_enrollment_state(summary)

    def publish_problem(self, problem: GalleryProblem) -> None:
        log.warning("gallery: %s", problem.detail)
        self.link.publish_error("gallery", problem.detail)

    def publish_people(self, people: tuple[str, ...]) -> None:
        """The enrolled people changed (or are known for the first time)."""
        if people == self._people:
            return
        self._people = people
        self.link.set_discovery(door_discovery(self.topics, self.settings, self.link.device_name,
                                               self.link.sw_version, people))
        for gone in set(self._presence) - set(people):
            self.link.publish_retained(self.topics.presence(person_key(gone)), b"")
            del self._presence[gone]
        if self._last_person is not None and self._last_person not in people:
            self._last_person = None  # a removed person's name leaves the broker too
            self.link.publish_retained(self.topics.last_person, b"")
        self._send_presence()

    # --- enrollment name (the text entity) -----------------------------------

    def publish_enroll_name(self, name: str | None) -> None:
        """Show the name edge holds for the next enrollment ('' for none)."""
        self.link.publish_retained(self.topics.enroll_name, (name or "").encode("utf-8"))

    # --- internals ---------------------------------------------------------

    def _send_state(self) -> None:
        if self._state is None:
            return
        self.link.publish_state(replace(self._state, camera_online=self._camera.online,
                                        camera_detail=self._camera.detail))
        self._send_presence()

    def _send_presence(self) -> None:
        if self._people is None or not self.settings.person_entities:
            return
        here = set(self._state.present) if self._state is not None else set()
        for person in self._people:
            present = person in here
            if self._presence.get(person) != present:
                self._presence[person] = present
                self.link.publish_retained(self.topics.presence(person_key(person)), b"ON" if present else b"OFF")

    def _publish_enrollment_state(self, summary: dict[str, Any]) -> None:
        self.link.publish_retained(self.topics.enrollment_state,
                                   json.dumps(summary, ensure_ascii=False).encode("utf-8"))
