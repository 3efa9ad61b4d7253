"""Who is at the door: turns per-frame recognition attempts into a few events.

    maker = DecisionMaker(DecisionSettings())
    decision = maker.observe(Attempt(track_id, box, name, similarity, sharpness, now))
    if decision: publish(decision)          # 'recognized' or 'unknown', at most once per visit
    maker.forget(track_id)                  # when the tracker ends the track
    maker.present(now)                      # names recognized on live tracks

Pure: no I/O and no clock of its own; times are seconds on the caller's
clock (the ``time`` of each attempt, the ``now`` of each call).

One attempt is one face of one tracked person matched against the gallery.
Per track the last ``window`` usable attempts are kept; a face too small or
too blurred is not usable and is ignored. A track is **recognized** once
``min_agreeing`` of them name the same person at or above
``accept_threshold``, and **unknown** once ``min_unknown`` of them are
below ``unknown_threshold`` (attempts in between count for neither).
A recognized track stays recognized; an unknown one can still become
recognized later. Events are announced at most once per visit: a track
announces each outcome once, and a person's name is not announced again
within ``cooldown`` seconds of their last event, even on a new track.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from edge.types import BBox

EventType = Literal["recognized", "unknown"]


@dataclass(frozen=True, slots=True)
class DecisionSettings:
    """Thresholds of the decision stage. Similarities are cosine similarities (-1..1).

    accept_threshold: similarity at or above which an attempt counts for the person it names.
    unknown_threshold: similarity below which an attempt counts as a stranger
        (an attempt with no gallery match at all always does); <= accept_threshold.
    window: how many recent usable attempts per track are considered.
    min_agreeing: attempts in the window that must name the same person at or
        above accept_threshold to decide 'recognized'.
    min_unknown: attempts in the window below unknown_threshold to decide 'unknown'.
    cooldown: seconds after a person's last event during which their name is not
        announced again (one event per person per visit).
    min_face_size: pixels; faces whose box size (sqrt of width x height) is smaller are ignored.
    min_sharpness: variance of the Laplacian; sharper faces only; 0 turns the check off.
    """

    accept_threshold: float = 0.36
    unknown_threshold: float = 0.30
    window: int = 5
    min_agreeing: int = 3
    min_unknown: int = 4
    cooldown: float = 60.0
    min_face_size: float = 60.0
    min_sharpness: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.accept_threshold <= 1.0):
            raise ValueError(f"accept_threshold must be in 0..1, got {self.accept_threshold}")
        if not (-1.0 <= self.unknown_threshold <= self.accept_threshold):
            raise ValueError(
                f"unknown_threshold must be in -1..accept_threshold ({self.accept_threshold}), "
                f"got {self.unknown_threshold}"
            )
        for name in ("window", "min_agreeing", "min_unknown"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("min_agreeing", "min_unknown"):
            if getattr(self, name) > self.window:
                raise ValueError(f"{name} ({getattr(self, name)}) cannot exceed window ({self.window})")
        for name in ("cooldown", "min_face_size", "min_sharpness"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recognition attempt on one tracked face.

    name: the most similar enrolled person, or None when the gallery gave no match at all.
    similarity: cosine similarity to that person (-1..1).
    sharpness: variance of the Laplacian of the face crop, or None if not measured
        (an unmeasured face passes the sharpness check).
    time: seconds on the caller's clock.
    """

    track_id: int
    box: BBox
    name: str | None
    similarity: float
    sharpness: float | None
    time: float


@dataclass(frozen=True, slots=True)
class Decision:
    """An event to announce.

    name: the person for 'recognized', None for 'unknown'.
    similarity: for 'recognized' the best of the agreeing attempts; for 'unknown'
        the best similarity the track's usable attempts ever reached.
    box: the deciding attempt's box; timestamp: its time (seconds).
    """

    event_type: EventType
    name: str | None
    similarity: float
    track_id: int
    box: BBox
    timestamp: float


@dataclass(frozen=True, slots=True)
class _Vote:
    accepted: str | None  # the person this attempt counts for, if any
    stranger: bool
    similarity: float


@dataclass(slots=True)
class _TrackState:
    votes: deque[_Vote]
    best_similarity: float = -math.inf
    recognized: str | None = None
    announced_unknown: bool = False


class DecisionMaker:
    """Per-track decisions from attempts; see the module docstring for the rules."""

    def __init__(self, settings: DecisionSettings | None = None) -> None:
        self.settings = settings or DecisionSettings()
        self._tracks: dict[int, _TrackState] = {}
        self._last_event: dict[str, float] = {}  # name -> time of their last 'recognized' event

    def observe(self, attempt: Attempt) -> Decision | None:
        """Count one attempt; the event it triggers, if any (None for unusable faces)."""
        if not self._usable(attempt):
            return None
        s = self.settings
        state = self._tracks.get(attempt.track_id)
        if state is None:
            state = self._tracks[attempt.track_id] = _TrackState(deque(maxlen=s.window))
        accepted = attempt.name if attempt.name is not None and attempt.similarity >= s.accept_threshold else None
        stranger = attempt.name is None or attempt.similarity < s.unknown_threshold
        state.votes.append(_Vote(accepted, stranger, attempt.similarity))
        state.best_similarity = max(state.best_similarity, attempt.similarity)

        if state.recognized is not None:
            return None  # decided for good: no flip to unknown, no second name
        if accepted is not None:
            agreeing = [v.similarity for v in state.votes if v.accepted == accepted]
            if len(agreeing) >= s.min_agreeing:
                state.recognized = accepted
                return self._announce_recognized(attempt, accepted, max(agreeing))
        if not state.announced_unknown and sum(v.stranger for v in state.votes) >= s.min_unknown:
            state.announced_unknown = True
            return Decision("unknown", None, state.best_similarity, attempt.track_id, attempt.box, attempt.time)
        return None

    def forget(self, track_id: int) -> None:
        """Drop an ended track (its name's cooldown is kept); unknown ids are ignored."""
        self._tracks.pop(track_id, None)

    def present(self, now: float) -> list[str]:
        """Names recognized on tracks not forgotten yet, sorted, each once.

        ``now`` (seconds) only serves housekeeping: cooldowns over by then are dropped.
        """
        self._last_event = {n: t for n, t in self._last_event.items() if now - t < self.settings.cooldown}
        return sorted({state.recognized for state in self._tracks.values() if state.recognized is not None})

    def _usable(self, attempt: Attempt) -> bool:
        s = self.settings
        if attempt.box.size < s.min_face_size:
            return False
        blurred = attempt.sharpness is not None and attempt.sharpness < s.min_sharpness
        return not (s.min_sharpness > 0.0 and blurred)

    def _announce_recognized(self, attempt: Attempt, name: str, similarity: float) -> Decision | None:
        last = self._last_event.get(name)
        if last is not None and attempt.time - last < self.settings.cooldown:
            return None  # the same visit: the track counts as recognized, but quietly
        self._last_event[name] = attempt.time
        return Decision("recognized", name, similarity, attempt.track_id, attempt.box, attempt.time)
