"""The door's reports without a broker: events as JSON lines on stdout, the rest to the log."""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

from edge.messages import CameraStatus, EnrollmentMessage, Event, GalleryProblem, State

log = logging.getLogger(__name__)


class StdoutPublisher:
    """Events as JSON lines on ``stream`` (default stdout); state, camera, enrollment, people and problems to the log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def publish_event(self, event: Event) -> None:
        print(json.dumps(event.to_dict()), file=self.stream, flush=True)

    def publish_state(self, state: State) -> None:
        log.info("present: %s", list(state.present))

    def publish_camera(self, status: CameraStatus) -> None:
        log.info("camera %s %s", "online" if status.online else "offline", status.detail)

    def publish_enrollment(self, message: EnrollmentMessage) -> None:
        log.warning("enrollment: %s", json.dumps(message.to_dict()))

    def publish_problem(self, problem: GalleryProblem) -> None:
        log.warning("gallery: %s", problem.detail)

    def publish_people(self, people: tuple[str, ...]) -> None:
        log.info("%d people enrolled", len(people))
