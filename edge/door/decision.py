"""Who is at the door: turns per-frame recognition attempts into a few events.

    maker = DecisionMaker(DecisionSettings(), match_threshold=MATCH_THRESHOLD)
    decision = maker.observe(Attempt(track_id, box, name, similarity, sharpness, now))
    if decision: publish(decision)          # 'recognized' or 'unknown', at most once per visit
    maker.forget(track_id)                  # when the tracker ends the track
    maker.present(now)                      # names recognized on live tracks

Pure: no I/O and no clock of its own; times are seconds on the caller's
clock (the ``time`` of each attempt, the ``now`` of each call).

One attempt is one face of one tracked person matched against the gallery.
Per track the last ``window`` usable attempts are kept; a face too small or
too blurred is not usable and is ignored. A track is **recognized** once
``min_agreeing`` of them name the same person with a match
(edge.similarity.is_match with ``match_threshold``), and **unknown** once ``min_unknown`` of them are
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

from edge.door.settings import DecisionSettings
from edge.faces import BBox
from edge.similarity import is_match

EventType = Literal["recognized", "unknown"]


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

    def __init__(self, settings: DecisionSettings, match_threshold: float) -> None:
        settings.check_against(match_threshold)
        self.settings = settings
        self.match_threshold = match_threshold
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
        accepted = attempt.name if attempt.name is not None and is_match(attempt.similarity, self.match_threshold) else None
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
