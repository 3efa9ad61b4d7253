"""What the door tells the world: typed, frozen messages, and their wire form.

Producers (the door loop, enrollment at the door, the camera) build these;
publishers (MQTT, stdout, the enrollment light) consume them. ``to_dict``
gives each message's JSON fields; the topics they travel on are in
edge.adapters.discovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from edge.faces import BBox

EventType = Literal["recognized", "unknown", "spoof"]
EVENT_TYPES: tuple[EventType, ...] = ("recognized", "unknown", "spoof")


def iso_time(moment: datetime | None = None) -> str:
    """``moment`` (default: now, local time) as ISO 8601 with its UTC offset, to the millisecond."""
    moment = moment or datetime.now().astimezone()
    if moment.tzinfo is None:
        raise ValueError("a message time needs a time zone")
    return moment.isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Event:
    """One decision announced: ``recognized`` (``name`` set), ``unknown`` (``name`` None), or
    ``spoof``: a face that matches ``name`` but did not look live (a photo or a screen).

    similarity: cosine similarity of the best match (-1..1). box: the face in
    pixels of the camera frame. time: when it was decided (with a zone).
    live: whether the face looked live, None when liveness was not scored;
    liveness: its probability of being live (0..1) over the deciding attempts.
    face: the face cut from the frame with a margin (BGR uint8), for a
    publisher that shows it; never part of the JSON.
    """

    event_type: EventType
    name: str | None
    similarity: float
    track_id: int
    device: str
    camera: str
    box: BBox
    time: datetime
    face: np.ndarray | None = field(default=None, compare=False, repr=False)
    live: bool | None = None
    liveness: float | None = None

    def __post_init__(self) -> None:
        if self.event_type not in EVENT_TYPES:
            raise ValueError(f"event_type {self.event_type!r} is not one of {EVENT_TYPES}")
        if (self.name is None) != (self.event_type == "unknown"):
            raise ValueError("a recognized or spoof event needs a name and an unknown one has none")
        if self.time.tzinfo is None:
            raise ValueError("an event time needs a time zone")

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "name": self.name,
            "similarity": round(float(self.similarity), 4),
            "track_id": int(self.track_id),
            "device": self.device,
            "camera": self.camera,
            "timestamp": iso_time(self.time),
            "box": self.box.as_list(),
            "live": self.live,
            "liveness": None if self.liveness is None else round(float(self.liveness), 4),
        }


@dataclass(frozen=True, slots=True)
class State:
    """Who is at the door now (retained on MQTT).

    present: names of the known people in view, sorted. last_person: the last
    person recognized, or None. camera_online / camera_detail: whether the
    camera delivers frames, and why not. frames_dropped: frames of a live
    camera the door had no time for since it started (it always takes the
    newest).
    """

    present: tuple[str, ...]
    last_person: str | None
    device: str
    camera: str
    camera_online: bool = True
    camera_detail: str = ""
    frames_dropped: int = 0

    @property
    def known_present(self) -> bool:
        return bool(self.present)

    def to_dict(self) -> dict[str, Any]:
        return {
            "present": list(self.present),
            "known_present": self.known_present,
            "last_person": self.last_person,
            "device": self.device,
            "camera": self.camera,
            "camera_online": self.camera_online,
            "camera_detail": self.camera_detail,
            "frames_dropped": self.frames_dropped,
            "timestamp": iso_time(),
        }


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """The camera came back (``online``) or went away (``detail`` says why)."""

    online: bool
    detail: str = ""


EnrollmentState = Literal["started", "saved", "cancelled", "timed_out", "failed"]


@dataclass(frozen=True, slots=True)
class EnrollmentProgress:
    """One frame's verdict during an enrollment: a sample ``accepted``, or the ``reason`` why not."""

    name: str
    taken: int
    wanted: int
    accepted: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "progress", "name": self.name, "taken": self.taken, "wanted": self.wanted,
                "accepted": self.accepted, "reason": self.reason, "timestamp": iso_time()}


@dataclass(frozen=True, slots=True)
class EnrollmentStatus:
    """An enrollment started (with ``wanted`` samples in ``timeout`` seconds) or ended (``detail`` says how)."""

    state: EnrollmentState
    name: str | None
    detail: str = ""
    wanted: int | None = None
    timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"type": "status", "state": self.state, "name": self.name}
        if self.state == "started":
            fields.update(wanted=self.wanted, timeout=self.timeout)
        else:
            fields["detail"] = self.detail
        return {**fields, "timestamp": iso_time()}


EnrollmentMessage = EnrollmentProgress | EnrollmentStatus


@dataclass(frozen=True, slots=True)
class GalleryProblem:
    """The door's gallery cannot be trusted whole (for the ``error`` topic).

    detail: one line saying what is wrong. rows: damaged rows left out of
    matching (numbered as in the gallery now); empty when the whole gallery
    is gone or unreadable, in which case nobody is recognized until it is back.
    """

    detail: str
    rows: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"topic": "gallery", "error": self.detail, "rows": list(self.rows), "timestamp": iso_time()}
