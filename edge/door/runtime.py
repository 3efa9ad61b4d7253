"""The door loop: frames -> faces -> tracks -> gallery matches -> decisions -> events.

    loop = DoorLoop(engine, gallery, publisher, LoopSettings(), device="door1", camera="front")
    with source:
        loop.run(source)               # until the source ends or stop() is called

Per frame (faces are searched every ``detect_every``-th frame) each face
continues or starts a track. A track that is not yet recognized has its face
embedded and matched against the gallery (at most ``attempts_per_second``
times a second), and the attempt goes to the decision stage, which turns a
few agreeing attempts into one event per visit. The gallery is re-read when
another process enrolls someone (Gallery.view() notices), so the loop never
needs a restart for a new person.

The publisher hears events, the retained 'who is here' state and the camera
state; it is the MQTT link, or JSON lines on stdout when there is no broker.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import cv2
import numpy as np

from edge.door.mqtt import make_event
from edge.door.decision import Attempt, Decision, DecisionMaker, DecisionSettings
from edge.door.sources import Frame, FrameSource
from edge.door.tracking import Tracker
from edge.gallery.search import search
from edge.gallery.store import Gallery
from edge.perception.engine import FaceEngine
from edge.types import Face

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where the loop reports: the MQTT link or stdout."""

    def publish_event(self, event: dict) -> None: ...

    def publish_state(self, state: dict) -> None: ...

    def publish_camera(self, state: str, detail: str) -> None: ...

    def publish_enrollment(self, kind: str, message: dict) -> None: ...


class StdoutPublisher:
    """Events as JSON lines on stdout (the default without a broker); state changes to the log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def publish_event(self, event: dict) -> None:
        print(json.dumps(event), file=self.stream, flush=True)

    def publish_state(self, state: dict) -> None:
        log.info("present: %s", state.get("present"))

    def publish_camera(self, state: str, detail: str) -> None:
        log.info("camera %s %s", state, detail)

    def publish_enrollment(self, kind: str, message: dict) -> None:
        log.warning("enrollment %s: %s", kind, json.dumps(message))


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """How often to look, follow and match.

    detect_every: search for faces in every n-th frame (1 = every frame).
    attempts_per_second: most gallery matches per track per second of frame time.
    track_iou: box overlap (intersection over union, 0..1) that continues a track.
    track_gap: seconds a track may go unseen before it ends (the person left).
    unknown_recheck: seconds between matches of a track already announced
        unknown (it may still turn out to be someone, e.g. after turning round).
    """

    detect_every: int = 1
    attempts_per_second: float = 10.0
    track_iou: float = 0.3
    track_gap: float = 2.0
    unknown_recheck: float = 1.0
    decision: DecisionSettings = field(default_factory=DecisionSettings)


class DoorLoop:
    """Runs recognition on frames and reports decisions; one per camera."""

    def __init__(
        self,
        engine: FaceEngine,
        gallery: Gallery,
        publisher: Publisher,
        settings: LoopSettings = LoopSettings(),
        device: str = "edge",
        camera: str = "camera",
    ) -> None:
        self.engine, self.gallery, self.publisher = engine, gallery, publisher
        self.settings = settings
        self.device, self.camera = device, camera
        self.tracker = Tracker(settings.track_iou, settings.track_gap)
        self.decisions = DecisionMaker(settings.decision)
        self._last_attempt: dict[int, float] = {}
        self._recognized: set[int] = set()
        self._unknown: set[int] = set()
        self._present: list[str] = []
        self._last_person: str | None = None
        self._stop = threading.Event()
        self.enrollment = None
        """An edge.door.enroll.DoorEnrollment; while it is active, frames go to it instead."""

    def stop(self) -> None:
        """Ask run() to return after the current frame (from any thread)."""
        self._stop.set()

    def run(self, source: FrameSource, on_frame: Callable[[], None] = lambda: None) -> int:
        """Process frames until the source ends or stop(); returns the number of frames.

        ``on_frame`` is called after each frame (the service pings systemd's watchdog).
        """
        frames = 0
        self._publish_state(0.0, force=True)
        while not self._stop.is_set():
            frame = source.read()
            if frame is None:
                break
            self.process(frame)
            on_frame()
            frames += 1
        return frames

    def process(self, frame: Frame) -> list[Decision]:
        """One frame: track, match, decide; publishes and returns the decisions made."""
        if self.enrollment is not None and self.enrollment.active():
            self.enrollment.process(frame)
            return []
        if frame.index % self.settings.detect_every:
            return []
        faces = self.engine.detect(frame.image)
        step = self.tracker.update([f.box for f in faces], frame.time)
        for track_id in step.ended:
            self.decisions.forget(track_id)
            self._last_attempt.pop(track_id, None)
            self._recognized.discard(track_id)
            self._unknown.discard(track_id)
        due = [(face, track.track_id) for face, track in zip(faces, step.current) if self._due(track.track_id, frame.time)]
        made = []
        for attempt in self._attempts(frame, due):
            decision = self.decisions.observe(attempt)
            if decision is None:
                continue
            made.append(decision)
            if decision.event_type == "recognized":
                self._recognized.add(decision.track_id)
                self._unknown.discard(decision.track_id)
                self._last_person = decision.name
            else:
                self._unknown.add(decision.track_id)
            self.publisher.publish_event(self.event(decision))
        self._publish_state(frame.time)
        return made

    def event(self, decision: Decision) -> dict:
        """The published form of a decision (edge.door.mqtt.make_event)."""
        return make_event(
            decision.event_type,
            name=decision.name,
            similarity=decision.similarity,
            track_id=decision.track_id,
            device=self.device,
            camera=self.camera,
            box=decision.box.as_list(),
        )

    def _due(self, track_id: int, now: float) -> bool:
        """Whether this track's face should be matched in this frame."""
        if track_id in self._recognized:
            return False
        interval = 1.0 / self.settings.attempts_per_second
        if track_id in self._unknown:
            interval = max(interval, self.settings.unknown_recheck)
        last = self._last_attempt.get(track_id)
        # (a hair of tolerance, so that 10 attempts/s at 10 frames/s means every frame)
        if last is not None and now - last < 0.999 * interval:
            return False
        self._last_attempt[track_id] = now
        return True

    def _attempts(self, frame: Frame, due: list[tuple[Face, int]]) -> list[Attempt]:
        """Embed the due faces in one batch and match them in one gallery pass."""
        min_size = self.settings.decision.min_face_size
        usable = [face for face, _ in due if face.box.size >= min_size]  # smaller: not worth embedding
        found: list = []
        sharpness: list[float] = []
        if usable:
            crops = self.engine.align(frame.image, usable)
            sharpness = [laplacian_variance(crop) for crop in crops]
            found = search(self.gallery, self.engine.embedder.embed(crops), k=1)
        attempts, used = [], 0
        for face, track_id in due:
            name, similarity, sharp = None, -1.0, None
            if face.box.size >= min_size:
                best, sharp = found[used], sharpness[used]
                used += 1
                if best:
                    name, similarity = best[0].name, best[0].similarity
            attempts.append(Attempt(track_id, face.box, name, similarity, sharp, frame.time))
        return attempts

    def _publish_state(self, now: float, force: bool = False) -> None:
        present = self.decisions.present(now)
        if present != self._present or force:
            self._present = present
            self.publisher.publish_state({
                "present": present,
                "known_present": bool(present),
                "last_person": self._last_person,
                "device": self.device,
                "camera": self.camera,
            })


def laplacian_variance(crop_rgb: np.ndarray) -> float:
    """Sharpness of an aligned face crop: variance of its Laplacian (higher is sharper)."""
    gray = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
