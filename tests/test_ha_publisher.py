"""edge.adapters.homeassistant: what the door publishes for Home Assistant, over a recording link."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import cv2
import numpy as np
import pytest

from edge.adapters.discovery import Topics, person_key
from edge.adapters.homeassistant import FACE_MAX_BYTES, HomeAssistantPublisher, face_jpeg
from edge.adapters.settings import MqttSettings
from edge.faces import BBox
from edge.messages import CameraStatus, EnrollmentProgress, EnrollmentStatus, Event, GalleryProblem, State


class Link:
    """Records what the publisher asks the link to send; ``retained`` is what a broker would hold."""

    def __init__(self) -> None:
        self.topics, self.device_name, self.sw_version = Topics("edge", "door"), "Front door", "1.2.3"
        self.retained: dict[str, bytes] = {}
        self.states: list[State] = []
        self.events, self.faces, self.errors, self.discovery = [], [], [], []

    def publish_event(self, event):
        self.events.append(event)

    def publish_state(self, state):
        self.states.append(state)

    def publish_retained(self, topic, payload):
        if payload:
            self.retained[topic] = payload
        else:
            self.retained.pop(topic, None)

    def publish_face_image(self, jpeg):
        self.faces.append(jpeg)

    def publish_enrollment(self, message):
        pass

    def publish_error(self, topic, message):
        self.errors.append((topic, message))

    def set_discovery(self, messages):
        self.discovery = messages


def event(name, face=None):
    kind = "unknown" if name is None else "recognized"
    return Event(kind, name, 0.7, 1, "door", "cam", BBox(10, 10, 110, 130), datetime.now(timezone.utc), face)


@pytest.fixture
def link():
    return Link()


def test_nobody_is_present_and_enrollment_is_idle_from_the_start(link):
    HomeAssistantPublisher(link, MqttSettings(host="b"), camera="cam")
    assert link.states == [State((), None, "door", "cam")]
    assert json.loads(link.retained["edge/door/enrollment_state"]) == {"status": "idle"}
    assert "edge/door/last_person" not in link.retained  # Home Assistant shows "unknown" until someone is seen
    assert "edge/door/enroll_name" not in link.retained


def test_camera_state_rides_in_the_retained_state_message(link):
    publisher = HomeAssistantPublisher(link, MqttSettings(host="b"), camera="cam")
    publisher.publish_camera(CameraStatus(True))
    assert len(link.states) == 1  # nothing from the loop to merge the camera into yet
    publisher.publish_state(State(("obama",), "obama", "door", "cam"))
    publisher.publish_camera(CameraStatus(False, "camera unplugged"))
    assert link.states[-1] == State(("obama",), "obama", "door", "cam", False, "camera unplugged")
    publisher.publish_camera(CameraStatus(True))
    assert link.states[-1].camera_online is True and link.states[-1].present == ("obama",)


def test_a_gallery_problem_goes_to_the_error_topic(link):
    HomeAssistantPublisher(link, MqttSettings(host="b"), "cam").publish_problem(
        GalleryProblem("g: 1 damaged gallery rows left out of matching: 3", (3,)))
    assert link.errors == [("gallery", "g: 1 damaged gallery rows left out of matching: 3")]


def test_each_person_has_a_presence_topic_that_follows_the_state_and_goes_with_them(link):
    publisher = HomeAssistantPublisher(link, MqttSettings(host="b"), "cam")
    alice, bob = (link.topics.presence(person_key(n)) for n in ("alice", "bob"))
    publisher.publish_people(("alice", "bob"))
    assert (link.retained[alice], link.retained[bob]) == (b"OFF", b"OFF")
    assert {p["subtype"] for _, p in link.discovery if p and p.get("automation_type")} == {"any", "alice", "bob"}
    publisher.publish_state(State(("alice",), "alice", "door", "cam"))
    assert (link.retained[alice], link.retained[bob]) == (b"ON", b"OFF")
    publisher.publish_event(event("alice"))
    assert link.retained["edge/door/last_person"] == b"alice"
    publisher.publish_people(("bob",))  # alice removed
    assert alice not in link.retained and "edge/door/last_person" not in link.retained
    assert {p["subtype"] for _, p in link.discovery if p and p.get("automation_type")} == {"any", "bob"}


def test_without_person_entities_only_the_any_triggers(link):
    publisher = HomeAssistantPublisher(link, MqttSettings(host="b", person_entities=False), "cam")
    publisher.publish_people(("alice",))
    publisher.publish_state(State(("alice",), "alice", "door", "cam"))
    assert not [t for t in link.retained if "/present/" in t]
    assert [(p["type"], p["subtype"]) for _, p in link.discovery if p and p.get("automation_type")] == [
        ("recognized", "any"), ("unknown", "any"), ("spoof", "any")]


def test_enrollment_state_sums_up_the_enrollment(link):
    publisher = HomeAssistantPublisher(link, MqttSettings(host="b"), "cam")
    state = lambda: json.loads(link.retained["edge/door/enrollment_state"])  # noqa: E731
    publisher.publish_enrollment(EnrollmentStatus("started", "zoe", wanted=5, timeout=30.0))
    assert state() == {"status": "collecting", "name": "zoe", "taken": 0, "wanted": 5, "detail": ""}
    publisher.publish_enrollment(EnrollmentProgress("zoe", 2, 5, True, "ok"))
    assert (state()["status"], state()["taken"]) == ("collecting", 2)
    publisher.publish_enrollment(EnrollmentStatus("failed", "zoe", detail="two faces in view"))
    assert state() == {"status": "failed", "name": "zoe", "detail": "two faces in view"}


def test_the_enrollment_name_is_shown_and_cleared(link):
    publisher = HomeAssistantPublisher(link, MqttSettings(host="b"), "cam")
    publisher.publish_enroll_name("Zoë")
    assert link.retained["edge/door/enroll_name"] == "Zoë".encode()
    publisher.publish_enroll_name(None)
    assert "edge/door/enroll_name" not in link.retained


def test_face_images_only_when_enabled_and_bounded(link, photo):
    face = photo("obama.jpg")  # a whole 1000+ px portrait: scaled down and compressed
    HomeAssistantPublisher(link, MqttSettings(host="b"), "cam").publish_event(event("obama", face))
    assert link.faces == []
    HomeAssistantPublisher(link, MqttSettings(host="b", publish_face_image=True), "cam").publish_event(
        event("obama", face))
    (jpeg,) = link.faces
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) <= FACE_MAX_BYTES and max(decoded.shape[:2]) <= 256


def test_face_jpeg_lowers_quality_until_it_fits():
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)  # compresses badly
    assert len(face_jpeg(noise, max_bytes=40_000)) <= 40_000
    with pytest.raises(ValueError, match="does not fit"):
        face_jpeg(noise, max_bytes=1_000)
