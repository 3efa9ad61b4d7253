"""The door loop: frames -> faces -> tracks -> gallery matches -> decisions -> events.

    loop = DoorLoop(engine, gallery, publisher, LoopSettings(device_id="door1"), match_threshold=MATCH_THRESHOLD, camera="front")
    with source:
        loop.run(source)               # until the source ends or stop() is called

Per frame (faces are searched every ``detect_every``-th frame, in an
empty doorway only when something moves or every ``motion.full_every``
seconds, and while someone is there near them unless something moves
elsewhere: edge.door.motion) each face continues or starts a track. A track that is not yet decided has its face
embedded and matched against the gallery (at most ``attempts_per_second``
times a second), and the attempt goes to the decision stage, which turns a
few agreeing attempts into one event per visit. A decided track is matched
again every ``recheck`` seconds, at once when its face changed abruptly
(the tracker's ``abrupt``), and at the full rate while in doubt: when the
decision stage finds someone else has taken its place (a Split), the
tracker gives the face a new track, the old person's presence ends and the
newcomer gets their own decision and event. The gallery is re-read when
another process enrolls someone (Gallery.view() notices), so the loop never
needs a restart for a new person, and reopened when a rebuilt gallery takes
its path's place.

Damaged gallery rows are left out of matching (edge.gallery.store), and a
gallery that is deleted or unreadable matches nobody (everyone is unknown)
while the loop keeps running. Each new such problem goes to the publisher
(a GalleryProblem: the log, and with MQTT the ``error`` topic).

The publisher hears events (each with its face cut from the frame), the
retained 'who is here' state, the camera state, gallery problems and who
is enrolled (at the start and whenever that changes); it is Home
Assistant over MQTT, or JSON lines on stdout when there is no broker.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from edge.door.decision import Attempt, Decision, DecisionMaker, Split
from edge.door.motion import MotionGate, Search
from edge.door.settings import LoopSettings
from edge.door.tracking import Track, Tracker
from edge.faces import BBox, Face
from edge.frames import Frame, FrameSource
from edge.gallery.errors import GalleryError
from edge.gallery.search import search
from edge.gallery.store import Gallery
from edge.messages import CameraStatus, EnrollmentMessage, Event, GalleryProblem, State
from edge.perception.engine import FaceEngine
from edge.perception.sharpness import laplacian_variance

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where the loop reports: the MQTT link or stdout (edge.adapters)."""

    def publish_event(self, event: Event) -> None: ...

    def publish_state(self, state: State) -> None: ...

    def publish_camera(self, status: CameraStatus) -> None: ...

    def publish_enrollment(self, message: EnrollmentMessage) -> None: ...

    def publish_problem(self, problem: GalleryProblem) -> None: ...

    def publish_people(self, people: tuple[str, ...]) -> None: ...


class LivenessScorer(Protocol):
    """Whether faces are live (edge.perception.liveness.LivenessChecker): one result per box,
    each with ``score`` (probability live, 0..1) and ``live`` (at or above its threshold)."""

    def check(self, image: np.ndarray, boxes: list[BBox]) -> list: ...


class Enrollment(Protocol):
    """An enrollment running inside the loop (edge.enrollment.at_door.DoorEnrollment)."""

    def active(self) -> bool: ...

    def process(self, frame: Frame) -> None: ...


def local_now() -> datetime:
    return datetime.now().astimezone()


class DoorLoop:
    """Runs recognition on frames and reports decisions; one per camera."""

    def __init__(
        self,
        engine: FaceEngine,
        gallery: Gallery,
        publisher: Publisher,
        settings: LoopSettings,
        match_threshold: float,
        camera: str = "camera",
        wall_clock: Callable[[], datetime] = local_now,
        liveness: LivenessScorer | None = None,
    ) -> None:
        """``liveness`` scores each attempt's face: given exactly when ``settings.liveness`` is on."""
        if settings.liveness != (liveness is not None):
            raise ValueError(f"[door] liveness is {'on' if settings.liveness else 'off'}: "
                             f"the loop needs {'a' if settings.liveness else 'no'} liveness checker")
        self.engine, self.gallery, self.publisher = engine, gallery, publisher
        self.liveness = liveness
        self.settings = settings
        self.device, self.camera = settings.device_id, camera
        self.tracker = Tracker(settings.tracker)
        self.motion = MotionGate(settings.motion)
        self.decisions = DecisionMaker(settings.decision, match_threshold)
        self._wall_clock = wall_clock
        self._last_attempt: dict[int, float] = {}
        self._present: tuple[str, ...] = ()
        self._last_person: str | None = None
        self._dropped = 0  # frames a live camera delivered that the loop had no time for
        self._stop = threading.Event()
        self._gallery_reported: tuple[str | None, frozenset[int]] = (None, frozenset())
        self._people_seen = -1  # the gallery's change count when the enrolled people were last told
        self.enrollment: Enrollment | None = None
        """While an enrollment is active, frames go to it instead."""

    def stop(self) -> None:
        """Ask run() to return after the current frame (from any thread)."""
        self._stop.set()

    def run(self, source: FrameSource, on_frame: Callable[[], None] = lambda: None) -> int:
        """Process frames until the source ends or stop(); returns the number of frames.

        ``on_frame`` is called after each frame (the service pings systemd's watchdog).
        """
        frames = 0
        self._publish_state(0.0, force=True)
        self._report_gallery()
        self._report_people()
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
        self._dropped += frame.dropped
        if self.enrollment is not None and self.enrollment.active():
            self.enrollment.process(frame)
            return []
        if frame.index % self.settings.detect_every:
            return []
        where = self.motion.search(frame.image, frame.time, near=[track.box for track in self.tracker.live])
        if where is None:
            self.follow_gallery()
            return []  # a still, empty doorway: nothing to search
        faces = faces_in(self.engine, frame.image, where)
        step = self.tracker.update([f.box for f in faces], frame.time)
        for track_id in step.ended:
            self.decisions.forget(track_id)
            self._last_attempt.pop(track_id, None)
        due = [(face, track.track_id) for face, track in zip(faces, step.current) if self._due(track, frame.time)]
        made = []
        for attempt in self._attempts(frame, due):
            outcome = self.decisions.observe(attempt)
            if isinstance(outcome, Split):
                made += self._split(outcome, frame.time)
            elif outcome is not None:
                made.append(outcome)
        for decision in made:
            if decision.event_type == "recognized":
                self._last_person = decision.name
            self.publisher.publish_event(self.event(decision, frame))
        self.follow_gallery()  # also without faces: notice a deleted or replaced gallery
        self._publish_state(frame.time)
        return made

    def event(self, decision: Decision, frame: Frame) -> Event:
        """The published form of a decision, stamped with the wall-clock time, with the face from ``frame``."""
        return Event(decision.event_type, decision.name, decision.similarity, decision.track_id,
                     self.device, self.camera, decision.box, self._wall_clock(),
                     face_with_margin(frame.image, decision.box), decision.live, decision.liveness)

    def _due(self, track: Track, now: float) -> bool:
        """Whether this track's face should be matched in this frame."""
        interval = 1.0 / self.settings.attempts_per_second
        if self.decisions.settled(track.track_id):
            interval = max(interval, self.settings.recheck)
        last = self._last_attempt.get(track.track_id)
        # (a hair of tolerance, so that 10 attempts/s at 10 frames/s means every frame)
        if not track.abrupt and last is not None and now - last < 0.999 * interval:
            return False
        self._last_attempt[track.track_id] = now
        return True

    def _split(self, split: Split, now: float) -> list[Decision]:
        """Someone else has taken a track's place: a new track for them, the old one ends."""
        track = self.tracker.split(split.track_id, now)
        self._last_attempt[track.track_id] = self._last_attempt.pop(split.track_id, now)
        log.info("track %d (%s) is someone else now: track %d", split.track_id, split.was or "not recognized",
                 track.track_id)
        return self.decisions.split(split, track.track_id)

    def _attempts(self, frame: Frame, due: list[tuple[Face, int]]) -> list[Attempt]:
        """Embed the due faces in one batch, score their liveness in one, match them in one gallery pass."""
        min_size = self.settings.decision.min_face_size
        usable = [face for face, _ in due if face.box.size >= min_size]  # smaller: not worth embedding
        found: list = []
        sharpness: list[float] = []
        lively: list = []  # liveness of each usable face, when scored
        if usable:
            crops = self.engine.align(frame.image, usable)
            sharpness = [laplacian_variance(crop) for crop in crops]
            embeddings = self.engine.embedder.embed(crops)
            if self.liveness is not None:
                lively = self.liveness.check(frame.image, [face.box for face in usable])
            try:
                found = search(self.gallery, embeddings, k=2)  # the runner-up tells a look-alike apart
            except GalleryError as exc:  # unreadable now: nobody is recognized; the loop goes on
                log.error("gallery search failed: %s", exc)
                self._gallery_problem(GalleryProblem(str(exc)))
                found = [[] for _ in usable]
            self._report_gallery()
        attempts, used = [], 0
        for face, track_id in due:
            if face.box.size < min_size:
                attempts.append(Attempt(track_id, face.box, None, -1.0, None, frame.time))
                continue
            best = found[used]
            name, similarity = (best[0].name, best[0].similarity) if best else (None, -1.0)
            others = tuple((m.name, m.similarity) for m in best[1:])
            live, liveness = (lively[used].live, lively[used].score) if lively else (None, None)
            attempts.append(Attempt(track_id, face.box, name, similarity, sharpness[used], frame.time,
                                    others, embeddings[used], live, liveness))
            used += 1
        return attempts

    def follow_gallery(self) -> None:
        """Notice gallery changes and report them (each frame, and without frames once a replay ended)."""
        try:
            self.gallery.refresh()  # microseconds; stat()s the path at most once a second
        except GalleryError as exc:
            log.error("gallery refresh failed: %s", exc)
            self._gallery_problem(GalleryProblem(str(exc)))
        self._report_gallery()
        self._report_people()

    def _report_people(self) -> None:
        """Tell the publisher who is enrolled, when that may have changed (any change of the gallery)."""
        if self.gallery.changes == self._people_seen:
            return
        self._people_seen = self.gallery.changes
        try:
            people = self.gallery.people()
        except GalleryError as exc:
            log.error("cannot list the enrolled people: %s", exc)
            return
        try:
            self.publisher.publish_people(people)
        except Exception:  # a report that fails must not stop the door
            log.exception("could not report the enrolled people")

    def _report_gallery(self) -> None:
        """Report what the gallery found wrong since the last report: its loss, new damaged rows."""
        problem = self.gallery.problem
        excluded = {e.row: e for e in self.gallery.excluded}
        last_problem, last_rows = self._gallery_reported
        self._gallery_reported = (problem, frozenset(excluded))
        if problem is not None and problem != last_problem:
            self._gallery_problem(GalleryProblem(problem))
        new = sorted(set(excluded) - last_rows)
        if new:
            shown = "; ".join(str(excluded[r]) for r in new[:10]) + (" ..." if len(new) > 10 else "")
            self._gallery_problem(GalleryProblem(f"{self.gallery.path}: {len(new)} damaged gallery rows left out "
                                                 f"of matching: {shown}", tuple(new)))

    def _gallery_problem(self, problem: GalleryProblem) -> None:
        try:
            self.publisher.publish_problem(problem)
        except Exception:  # a report that fails must not stop the door
            log.exception("could not report a gallery problem")

    def _publish_state(self, now: float, force: bool = False) -> None:
        present = tuple(self.decisions.present(now))
        if present != self._present or force:
            self._present = present
            self.publisher.publish_state(State(present, self._last_person, self.device, self.camera,
                                               frames_dropped=self._dropped))


FACE_MARGIN = 0.25
"""The face image of an event: the face box grown by this fraction of its size on each side."""


def faces_in(engine: FaceEngine, image: np.ndarray, where: Search) -> list[Face]:
    """The faces in ``image`` where the motion gate said to look, in the frame's pixels, most confident first."""
    if where.whole:
        return engine.detect(image)
    faces = []
    for region in where.regions:
        x, y = int(region.x1), int(region.y1)
        crop = image[y : int(region.y2), x : int(region.x2)]
        faces += [face.shifted(x, y) for face in engine.detect(crop)]
    return sorted(faces, key=lambda face: -face.score)


def face_with_margin(image: np.ndarray, box: BBox) -> np.ndarray:
    """The face ``box`` with a margin, cut from ``image`` (a copy, clipped to the image)."""
    dx, dy = FACE_MARGIN * box.width, FACE_MARGIN * box.height
    grown = box.grown(dx, dy).clipped(image.shape[1], image.shape[0])
    x1, y1 = int(grown.x1), int(grown.y1)
    x2, y2 = max(int(round(grown.x2)), x1 + 1), max(int(round(grown.y2)), y1 + 1)
    return image[y1:y2, x1:x2].copy()
