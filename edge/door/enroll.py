"""Enrollment from a camera: collect a few good, different samples of the one face in view.

    session = EnrollmentSession("alice", EnrollSettings(), started_at=now)
    verdict = session.offer(faces, crop, embedding, now)   # per frame; crop/embedding of the one face
    session.state                                          # 'collecting', 'complete', 'timed_out' or 'stopped'
    session.finish()                                       # stop now: keep what was taken ('q' in edge enroll)

A frame gives a sample only when it shows exactly one face that is large
enough, sharp enough and roughly frontal, of the same person as the first
sample, and not a near-duplicate of a sample already taken (so the person
turns their head a little: several angles). Nothing is stored until the
session is complete; a timeout or a cancel stores nothing.
``collect`` runs a session on a frame source; ``save`` appends the samples;
``DoorEnrollment`` runs sessions inside the door loop (button, MQTT).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.door.runtime import laplacian_variance
from edge.door.sources import FrameSource
from edge.gallery.store import Gallery
from edge.perception.engine import FaceEngine
from edge.types import Face


@dataclass(frozen=True, slots=True)
class EnrollSettings:
    """What a good sample is and how long to try.

    samples: samples to collect. timeout: seconds before giving up (nothing stored).
    min_face_size: pixels (sqrt of box area). min_sharpness: variance of the
    Laplacian of the aligned 112x112 crop. max_turn: how far the nose may sit
    off the eyes' midpoint, as a fraction of the eye distance (0 = straight on).
    max_similarity: a sample at least this similar (cosine) to one already
    taken is a near-duplicate. min_same_person: cosine similarity to the first
    sample below which the face is someone else.
    """

    samples: int = 5
    timeout: float = 30.0
    min_face_size: float = 80.0
    min_sharpness: float = 30.0
    max_turn: float = 0.35
    max_similarity: float = 0.95
    min_same_person: float = 0.36

    def __post_init__(self) -> None:
        if not 1 <= self.samples <= 50:
            raise ValueError(f"samples must be 1..50, got {self.samples}")
        if not 1.0 <= self.timeout <= 600.0:
            raise ValueError(f"timeout must be 1..600 seconds, got {self.timeout}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one frame did: ``accepted`` a sample, or why not (``reason``); ``faces`` all faces found."""

    accepted: bool
    reason: str
    taken: int
    wanted: int
    faces: tuple[Face, ...] = ()


@dataclass
class EnrollmentSession:
    name: str
    settings: EnrollSettings
    started_at: float
    embeddings: list[np.ndarray] = field(default_factory=list)
    qualities: list[float] = field(default_factory=list)
    state: str = "collecting"

    def offer(self, faces: list[Face], crop: np.ndarray | None, embedding: np.ndarray | None, now: float) -> Verdict:
        """Judge one frame: ``faces`` all faces found; ``crop`` (aligned RGB) and
        ``embedding`` of the single face when there is exactly one."""
        if self.state == "collecting" and now - self.started_at > self.settings.timeout:
            self.state = "timed_out"
        if self.state != "collecting":
            return self._verdict(False, self.state, faces)
        sharpness = None if crop is None else laplacian_variance(crop)
        reason = self._rejection(faces, sharpness, embedding)
        if reason:
            return self._verdict(False, reason, faces)
        self.embeddings.append(embedding)
        self.qualities.append(sharpness)
        if len(self.embeddings) >= self.settings.samples:
            self.state = "complete"
        return self._verdict(True, "sample taken", faces)

    def finish(self) -> None:
        """End collecting now: 'complete' with the samples taken so far, or 'stopped' when there are none."""
        if self.state == "collecting":
            self.state = "complete" if self.embeddings else "stopped"

    def _rejection(self, faces: list[Face], sharpness: float | None, embedding: np.ndarray | None) -> str | None:
        s = self.settings
        if len(faces) != 1:
            return "no face" if not faces else f"{len(faces)} faces: only the person enrolling may be in view"
        face = faces[0]
        if face.box.size < s.min_face_size:
            return f"face too small ({face.box.size:.0f} px < {s.min_face_size:.0f}): come closer"
        if sharpness is None or embedding is None:
            return "face could not be embedded"
        if sharpness < s.min_sharpness:
            return "too blurred: hold still"
        if abs(turn(face)) > s.max_turn:
            return "face turned too far: look towards the camera"
        if self.embeddings:
            similarities = np.stack(self.embeddings) @ embedding
            if similarities[0] < s.min_same_person:
                return "a different person than the first sample"
            if similarities.max() >= s.max_similarity:
                return "too like a sample already taken: turn your head a little"
        return None

    def _verdict(self, accepted: bool, reason: str, faces: list[Face]) -> Verdict:
        return Verdict(accepted, reason, len(self.embeddings), self.settings.samples, tuple(faces))


def offer_frame(engine: FaceEngine, session: EnrollmentSession, image: np.ndarray, now: float) -> Verdict:
    """Find the faces in one frame and offer them to ``session`` (the single face embedded)."""
    faces = engine.detect(image)
    crop = embedding = None
    if len(faces) == 1:
        crops = engine.align(image, faces)
        crop, embedding = crops[0], engine.embedder.embed(crops)[0]
    return session.offer(faces, crop, embedding, now)


def turn(face: Face) -> float:
    """Head turn from the landmarks: the nose's x offset from the eyes' midpoint over the eye distance."""
    (lx, _), (rx, _), (nx, _) = face.landmarks[0], face.landmarks[1], face.landmarks[2]
    eye_distance = max(abs(rx - lx), 1e-6)
    return (nx - (lx + rx) / 2.0) / eye_distance


def collect(
    engine: FaceEngine,
    source: FrameSource,
    session: EnrollmentSession,
    watch: Callable[[np.ndarray, Verdict], str | None] = lambda image, verdict: None,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Feed frames to ``session`` until it is complete, times out, is stopped or cancelled, or the source ends.

    ``watch`` sees every frame with its verdict (progress lines, a preview)
    and may answer 'save' (finish now, keeping the samples taken so far) or
    'cancel' (store nothing). Returns the final state: 'complete',
    'timed_out', 'stopped' (saved with no sample), 'cancelled' or 'source_ended'.
    """
    while session.state == "collecting":
        frame = source.read()
        if frame is None:
            return "source_ended"
        action = watch(frame.image, offer_frame(engine, session, frame.image, clock()))
        if action == "cancel":
            return "cancelled"
        if action == "save":
            session.finish()
    return session.state


def save(session: EnrollmentSession, gallery_path: Path, model_id: str, source: str) -> range:
    """Append a complete session's samples to the gallery (all or none); their rows."""
    if session.state != "complete":
        raise ValueError(f"enrollment of {session.name!r} is {session.state}; nothing to save")
    gallery = Gallery.open(gallery_path, model_id, writable=True, lock_timeout=5.0)
    try:
        n = len(session.embeddings)
        return gallery.append(np.stack(session.embeddings), [session.name] * n, [source] * n, session.qualities)
    finally:
        gallery.close()


class DoorEnrollment:
    """Enrollment at the running door, started by the button or an MQTT command.

    ``request``/``cancel`` may be called from any thread (GPIO and MQTT
    callbacks); the door loop hands frames to ``process`` while ``active``.
    ``report(kind, message)`` hears 'progress' and 'status' messages (the
    MQTT ``enrollment`` topic). Without a name the person is enrolled as
    ``person_N`` (the first unused N), to be renamed later.
    """

    def __init__(
        self,
        engine: FaceEngine,
        gallery_path: Path,
        model_id: str,
        settings: EnrollSettings,
        report: Callable[[str, dict], None],
        source_name: str = "door",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.gallery_path, self.model_id = engine, Path(gallery_path), model_id
        self.settings, self.report, self.source_name, self.clock = settings, report, source_name, clock
        self._lock = threading.Lock()
        self._requested: tuple[str | None] | None = None
        self._cancel = False
        self._session: EnrollmentSession | None = None
        self._last_reason: str | None = None

    def request(self, name: str | None = None) -> None:
        with self._lock:
            self._requested = (name,)
            self._cancel = False

    def cancel(self) -> None:
        with self._lock:
            self._cancel = True
            self._requested = None

    def active(self) -> bool:
        with self._lock:
            return self._session is not None or self._requested is not None

    def process(self, frame) -> None:
        """Use one frame for the enrollment in progress (starting or ending it as asked)."""
        with self._lock:
            requested, self._requested = self._requested, None
            cancel, self._cancel = self._cancel, False
        if cancel and self._session is not None:
            self._finish("cancelled", "cancelled; nothing stored")
            return
        if requested is not None:
            name = requested[0] or self._automatic_name()
            self._session = EnrollmentSession(name, self.settings, started_at=self.clock())
            self._last_reason = None
            self.report("status", {"state": "started", "name": name, "wanted": self.settings.samples,
                                   "timeout": self.settings.timeout})
        session = self._session
        if session is None:
            return
        verdict = offer_frame(self.engine, session, frame.image, self.clock())
        if verdict.accepted or verdict.reason != self._last_reason:
            self._last_reason = verdict.reason
            self.report("progress", {"name": session.name, "taken": verdict.taken, "wanted": verdict.wanted,
                                     "accepted": verdict.accepted, "reason": verdict.reason})
        if session.state == "complete":
            try:
                rows = save(session, self.gallery_path, self.model_id, f"enroll:{self.source_name}")
            except Exception as exc:  # a locked or full gallery: say so, keep the door running
                self._finish("failed", f"could not save: {exc}")
                return
            self._finish("saved", f"{len(rows)} samples saved")
        elif session.state == "timed_out":
            self._finish("timed_out", f"only {verdict.taken} of {verdict.wanted} good samples "
                                      f"in {self.settings.timeout:.0f} s ({self._last_reason}); nothing stored")

    def _finish(self, state: str, detail: str) -> None:
        session, self._session = self._session, None
        self.report("status", {"state": state, "name": session.name if session else None, "detail": detail})

    def _automatic_name(self) -> str:
        gallery = Gallery.open(self.gallery_path, self.model_id)
        try:
            taken = set(gallery.identities())
        finally:
            gallery.close()
        n = 1
        while f"person_{n}" in taken:
            n += 1
        return f"person_{n}"
