"""Enrollment at the running door: sessions started by the GPIO button or an MQTT command.

The door loop hands its frames to ``DoorEnrollment.process`` while an
enrollment is active: nobody is recognized meanwhile, so a session is
bounded by ``[enrollment] timeout`` and announced (status ``started`` with
its timeout, then ``saved``, ``cancelled``, ``timed_out`` or ``failed``).
The samples are judged by edge.enrollment.session and saved to the gallery
when complete.

The rules of who may be enrolled live here, once: one session at a time
(a request while one runs or is about to start is refused, never replaces
it), and a name already enrolled is refused unless the request says
``append`` (whoever asks decides whether they may: see
edge.service.CommandHandler). An append is announced on the enrollment
messages; a name that someone enrolled while the session ran is not
silently merged: the save fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.enrollment.session import EnrollmentSession, offer_frame, save
from edge.enrollment.settings import EnrollSettings
from edge.frames import Frame
from edge.gallery.store import Gallery
from edge.messages import EnrollmentMessage, EnrollmentProgress, EnrollmentState, EnrollmentStatus
from edge.perception.engine import FaceEngine
from edge.perception.liveness import LivenessChecker


class EnrollmentRefused(ValueError):
    """A request that cannot start a session; the message says why (one line, for whoever asked)."""


@dataclass(frozen=True, slots=True)
class _Request:
    name: str | None
    append: bool


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
        liveness: LivenessChecker | None = None,
    ) -> None:
        """``liveness`` checks each sample's face; needed when ``settings.require_live``."""
        if settings.require_live and liveness is None:
            raise ValueError("[enrollment] require_live needs a liveness checker")
        self.engine, self.gallery_path, self.model_id = engine, Path(gallery_path), model_id
        self.settings, self.report, self.source_name, self.clock = settings, report, source_name, clock
        self.match_threshold = match_threshold
        self.liveness = liveness
        self._lock = threading.Lock()
        self._requested: _Request | None = None
        self._cancel = False
        self._session: EnrollmentSession | None = None
        self._append = False  # the running session may add to a person already enrolled
        self._existing = 0  # samples the person had when the session started (an append)
        self._last_reason: str | None = None

    def request(self, name: str | None = None, append: bool = False) -> None:
        """Ask for a session of ``name`` (None: an automatic ``person_N``), started with the next frame.

        Raises EnrollmentRefused while a session runs or is about to start,
        and for a name already enrolled unless ``append``.
        """
        enrolled = self.samples_of(name) if name is not None else 0
        with self._lock:
            running = self._session.name if self._session is not None else None
            if running is None and self._requested is not None:
                running = self._requested.name or "a new person"
            if running is not None:
                raise EnrollmentRefused(f"an enrollment ({running!r}) is already running; wait for it to end or "
                                        "cancel it (enroll_cancel, or hold the button)")
            if enrolled and not append:
                raise EnrollmentRefused(f"{name!r} is already enrolled ({enrolled} samples); choose another name "
                                        'or ask explicitly to add samples ("append": true)')
            self._requested = _Request(name, append)
            self._cancel = False

    def samples_of(self, name: str) -> int:
        """How many samples ``name`` has in the gallery now (0: not enrolled)."""
        return self._identities().get(name, 0)

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
            name = requested.name or self._automatic_name()
            self._session = EnrollmentSession(name, self.settings, self.match_threshold, started_at=self.clock())
            self._append, self._last_reason = requested.append, None
            self.report(EnrollmentStatus("started", name, wanted=self.settings.samples, timeout=self.settings.timeout))
            self._existing = self.samples_of(name) if requested.append else 0
            if self._existing:
                self.report(EnrollmentProgress(name, 0, self.settings.samples, False,
                                               f"adding samples to {name!r}, already enrolled with {self._existing}"))
        session = self._session
        if session is None:
            return
        verdict = offer_frame(self.engine, session, frame.image, self.clock(), self.liveness)
        if verdict.accepted or verdict.reason != self._last_reason:
            self._last_reason = verdict.reason
            self.report(EnrollmentProgress(session.name, verdict.taken, verdict.wanted, verdict.accepted, verdict.reason))
        if session.state == "complete":
            try:
                if not self._append and self.samples_of(session.name):
                    self._finish("failed", f"{session.name!r} was enrolled by someone else meanwhile; nothing stored")
                    return
                rows = save(session, self.gallery_path, self.model_id, f"enroll:{self.source_name}")
            except Exception as exc:  # a locked or full gallery: say so, keep the door running
                self._finish("failed", f"could not save: {exc}")
                return
            added = f", added to the {self._existing} of {session.name!r}" if self._existing else ""
            self._finish("saved", f"{len(rows)} samples saved{added}")
        elif session.state == "timed_out":
            self._finish("timed_out", f"only {verdict.taken} of {verdict.wanted} good samples "
                                      f"in {self.settings.timeout:.0f} s ({self._last_reason}); nothing stored")

    def _finish(self, state: EnrollmentState, detail: str) -> None:
        session, self._session = self._session, None
        self.report(EnrollmentStatus(state, session.name if session else None, detail))

    def _identities(self) -> dict[str, int]:
        gallery = Gallery.open(self.gallery_path, self.model_id)
        try:
            return gallery.identities()
        finally:
            gallery.close()

    def _automatic_name(self) -> str:
        taken = set(self._identities())
        n = 1
        while f"person_{n}" in taken:
            n += 1
        return f"person_{n}"
