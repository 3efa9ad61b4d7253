"""Enrollment from a camera: collect a few good, different samples of the one face in view.

    session = EnrollmentSession("alice", EnrollSettings(), match_threshold=MATCH_THRESHOLD, started_at=now)
    verdict = session.offer(faces, crop, embedding, now)   # per frame; crop/embedding of the one face
    session.state                                          # 'collecting', 'complete', 'timed_out' or 'stopped'
    session.finish()                                       # stop now: keep what was taken ('q' in edge enroll)

A frame gives a sample only when it shows exactly one face that is large
enough, sharp enough, roughly frontal and (``require_live``) live, not a
photo or a screen (edge.perception.liveness), of the same person as the first
sample, and not a near-duplicate of a sample already taken (so the person
turns their head a little: several angles). Nothing is stored until the
session is complete; a timeout or a cancel stores nothing.
``collect`` runs a session on a frame source; ``save`` appends the samples;
edge.enrollment.at_door runs sessions inside the door loop (button, MQTT).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.enrollment.settings import EnrollSettings
from edge.faces import Face
from edge.frames import FrameSource
from edge.gallery.store import Gallery
from edge.perception.engine import FaceEngine
from edge.perception.liveness import Liveness, LivenessChecker
from edge.perception.sharpness import laplacian_variance
from edge.similarity import is_match


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
    """One person's enrollment in progress; ``match_threshold`` tells the same person (edge.similarity)."""

    name: str
    settings: EnrollSettings
    match_threshold: float
    started_at: float
    embeddings: list[np.ndarray] = field(default_factory=list)
    qualities: list[float] = field(default_factory=list)
    state: str = "collecting"

    def offer(self, faces: list[Face], crop: np.ndarray | None, embedding: np.ndarray | None, now: float,
              liveness: Liveness | None = None) -> Verdict:
        """Judge one frame: ``faces`` all faces found; ``crop`` (aligned RGB), ``embedding``
        and ``liveness`` (None: not checked) of the single face when there is exactly one."""
        if self.state == "collecting" and now - self.started_at > self.settings.timeout:
            self.state = "timed_out"
        if self.state != "collecting":
            return self._verdict(False, self.state, faces)
        sharpness = None if crop is None else laplacian_variance(crop)
        reason = self._rejection(faces, sharpness, embedding, liveness)
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

    def _rejection(self, faces: list[Face], sharpness: float | None, embedding: np.ndarray | None,
                   liveness: Liveness | None) -> str | None:
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
        if s.require_live and (liveness is None or not liveness.live):
            if liveness is None:
                return "liveness not checked: no sample without it (require_live)"
            return f"not a live face (liveness {liveness.score:.2f}): a photo or a screen cannot enroll"
        if self.embeddings:
            similarities = np.stack(self.embeddings) @ embedding
            if not is_match(similarities[0], self.match_threshold):
                return "a different person than the first sample"
            if similarities.max() >= s.max_similarity:
                return "too like a sample already taken: turn your head a little"
        return None

    def _verdict(self, accepted: bool, reason: str, faces: list[Face]) -> Verdict:
        return Verdict(accepted, reason, len(self.embeddings), self.settings.samples, tuple(faces))


def offer_frame(engine: FaceEngine, session: EnrollmentSession, image: np.ndarray, now: float,
                liveness: LivenessChecker | None = None) -> Verdict:
    """Find the faces in one frame and offer them to ``session`` (the single face embedded, and
    checked for liveness when a checker is given)."""
    faces = engine.detect(image)
    crop = embedding = live = None
    if len(faces) == 1:
        crops = engine.align(image, faces)
        crop, embedding = crops[0], engine.embedder.embed(crops)[0]
        if liveness is not None:
            live = liveness.check(image, [faces[0].box])[0]
    return session.offer(faces, crop, embedding, now, live)


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
    liveness: LivenessChecker | None = None,
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
        action = watch(frame.image, offer_frame(engine, session, frame.image, clock(), liveness))
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
