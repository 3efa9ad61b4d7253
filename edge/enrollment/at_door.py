"""Enrollment at the running door: sessions started by the GPIO button or an MQTT command.

The door loop hands its frames to ``DoorEnrollment.process`` while an
enrollment is active (nobody is recognized meanwhile); the samples are
judged by edge.enrollment.session and saved to the gallery when complete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.enrollment.session import EnrollmentSession, offer_frame, save
from edge.enrollment.settings import EnrollSettings
from edge.frames import Frame
from edge.gallery.store import Gallery
from edge.messages import EnrollmentMessage, EnrollmentProgress, EnrollmentState, EnrollmentStatus
from edge.perception.engine import FaceEngine


class DoorEnrollment:
    """Enrollment at the running door, started by the button or an MQTT command.

    ``request``/``cancel`` may be called from any thread (GPIO and MQTT
    callbacks); the door loop hands frames to ``process`` while ``active``.
    ``report`` hears EnrollmentProgress and EnrollmentStatus messages (the
    MQTT ``enrollment`` topic, the light). Without a name the person is enrolled as
    ``person_N`` (the first unused N), to be renamed later.
    """

    def __init__(
        self,
        engine: FaceEngine,
        gallery_path: Path,
        model_id: str,
        settings: EnrollSettings,
        match_threshold: float,
        report: Callable[[EnrollmentMessage], None],
        source_name: str = "door",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.gallery_path, self.model_id = engine, Path(gallery_path), model_id
        self.settings, self.report, self.source_name, self.clock = settings, report, source_name, clock
        self.match_threshold = match_threshold
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

    def process(self, frame: Frame) -> None:
        """Use one frame for the enrollment in progress (starting or ending it as asked)."""
        with self._lock:
            requested, self._requested = self._requested, None
            cancel, self._cancel = self._cancel, False
        if cancel and self._session is not None:
            self._finish("cancelled", "cancelled; nothing stored")
            return
        if requested is not None:
            name = requested[0] or self._automatic_name()
            self._session = EnrollmentSession(name, self.settings, self.match_threshold, started_at=self.clock())
            self._last_reason = None
            self.report(EnrollmentStatus("started", name, wanted=self.settings.samples, timeout=self.settings.timeout))
        session = self._session
        if session is None:
            return
        verdict = offer_frame(self.engine, session, frame.image, self.clock())
        if verdict.accepted or verdict.reason != self._last_reason:
            self._last_reason = verdict.reason
            self.report(EnrollmentProgress(session.name, verdict.taken, verdict.wanted, verdict.accepted, verdict.reason))
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

    def _finish(self, state: EnrollmentState, detail: str) -> None:
        session, self._session = self._session, None
        self.report(EnrollmentStatus(state, session.name if session else None, detail))

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
