"""Who is at the door: turns per-frame recognition attempts into a few events.

    maker = DecisionMaker(DecisionSettings(), match_threshold=MATCH_THRESHOLD)
    outcome = maker.observe(Attempt(track_id, box, name, similarity, sharpness, now, ...))
    if isinstance(outcome, Decision): publish(outcome)   # 'recognized', 'spoof' or 'unknown', once per visit
    if isinstance(outcome, Split):                       # someone else took this track's place
        decisions = maker.split(outcome, new_track_id)   # their own track and decision
    maker.settled(track_id)                 # announced and not in doubt: match it only now and then
    maker.forget(track_id)                  # when the tracker ends the track
    maker.present(now)                      # names recognized on live tracks

Pure: no I/O and no clock of its own; times are seconds on the caller's
clock (the ``time`` of each attempt, the ``now`` of each call).

One attempt is one face of one tracked person matched against the gallery.
Per track the last ``window`` usable attempts are kept; a face too small or
too blurred is not usable and is ignored. A track is **recognized** once
``min_agreeing`` of them name the same person with a match
(edge.similarity.is_match with ``match_threshold``), and **unknown** once
``min_unknown`` of them are below ``unknown_threshold``, or once a full
window holds no match at all (a stranger who looks a little like someone
enrolled is still a stranger; one attempt in between counts for neither). Events are announced at most once per visit: a
track announces once, and a person's name is not announced again within
``cooldown`` seconds of their last event, even on a new track.

Liveness: an attempt may carry whether its face looked live (a real face,
not a photo or a screen; edge.perception.liveness decides). Of the
attempts that name a person, at least ``min_live`` must be live, and more
of them live than not, for the person to be **recognized**; when as many
are not live (and more than are), the track is a **spoof**: a face that
matches the person but is not live. With ``require_live`` off, the person
is recognized either way and the event says whether they looked live. A
spoof is announced once per track, never counts as present, and does not
start the person's cooldown.

A track is one person. Each attempt is also compared with the track's own
earlier faces (their embeddings), and with what was announced for it: an
attempt **disagrees** when its face is not like the track's recent faces
(cosine similarity below ``unknown_threshold`` to every one of them), when
a recognized person's similarity falls below ``unknown_threshold`` or
someone else matches better by ``split_margin``, or when a track announced
unknown now matches someone. A disagreeing attempt puts the track in doubt
and does not vote; ``split_after`` of them in a row end in a Split: the
track's person has left (their presence ends), and the face gets a new
track whose decision starts from the disagreeing attempts. One attempt that
agrees again ends the doubt (it was a bad frame).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from edge.door.settings import DecisionSettings
from edge.faces import BBox
from edge.messages import EventType
from edge.similarity import is_match



@dataclass(frozen=True, slots=True)
class Attempt:
    """One recognition attempt on one tracked face.

    name: the most similar enrolled person, or None when the gallery gave no match at all.
    similarity: cosine similarity to that person (-1..1).
    sharpness: variance of the Laplacian of the face crop, or None if not measured
        (an unmeasured face passes the sharpness check).
    time: seconds on the caller's clock.
    others: the next most similar enrolled people after ``name``, best first, with
        their similarities (the search's runners-up).
    embedding: the face's unit embedding, or None when not known (then the face
        is not compared with the track's earlier faces).
    live: whether the face looked live, or None when liveness was not scored;
        liveness: its probability of being live (0..1), or None.
    """

    track_id: int
    box: BBox
    name: str | None
    similarity: float
    sharpness: float | None
    time: float
    others: tuple[tuple[str, float], ...] = ()
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)
    live: bool | None = None
    liveness: float | None = None

    def similarity_to(self, person: str) -> float:
        """This face's similarity to ``person``, or a bound above it when they were not among those found.

        A search returns the most similar people, so anyone not listed is at
        most as similar as the last one listed; -1 when nobody was found.
        """
        found = [(self.name, self.similarity), *self.others] if self.name is not None else []
        for name, similarity in found:
            if name == person:
                return similarity
        return min((similarity for _, similarity in found), default=-1.0)


@dataclass(frozen=True, slots=True)
class Decision:
    """An event to announce.

    name: the person for 'recognized', the person the face claims to be for
        'spoof', None for 'unknown'.
    similarity: for 'recognized' and 'spoof' the best of the agreeing attempts;
        for 'unknown' the best similarity the track's usable attempts reached.
    box: the deciding attempt's box; timestamp: its time (seconds).
    live: whether the face was judged live (None: not scored); liveness: the
        mean probability of a live face over the attempts that decided (0..1).
    """

    event_type: EventType
    name: str | None
    similarity: float
    track_id: int
    box: BBox
    timestamp: float
    live: bool | None = None
    liveness: float | None = None


@dataclass(frozen=True, slots=True)
class Split:
    """The face on ``track_id`` is no longer the person announced for it.

    was: who the track had been announced as (None for unknown or undecided);
    attempts: the disagreeing attempts, oldest first: the newcomer's.
    """

    track_id: int
    was: str | None
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True)
class _Vote:
    accepted: str | None  # the person this attempt counts for, if any
    stranger: bool
    similarity: float
    live: bool | None
    liveness: float | None


@dataclass(slots=True)
class _TrackState:
    votes: deque[_Vote]
    faces: deque[np.ndarray]  # embeddings of the track's recent agreeing attempts
    best_similarity: float = -math.inf
    recognized: str | None = None
    spoofed: str | None = None  # the person a face that was not live claimed to be
    announced_unknown: bool = False
    doubts: list[Attempt] = field(default_factory=list)

    @property
    def announced(self) -> bool:
        return self.recognized is not None or self.spoofed is not None or self.announced_unknown

    @property
    def claimed(self) -> str | None:
        """The person this track was announced as, recognized or spoof."""
        return self.recognized or self.spoofed


class DecisionMaker:
    """Per-track decisions from attempts; see the module docstring for the rules."""

    def __init__(self, settings: DecisionSettings, match_threshold: float) -> None:
        settings.check_against(match_threshold)
        self.settings = settings
        self.match_threshold = match_threshold
        self._tracks: dict[int, _TrackState] = {}
        self._last_event: dict[str, float] = {}  # name -> time of their last 'recognized' event

    def observe(self, attempt: Attempt) -> Decision | Split | None:
        """Count one attempt: the event it triggers, a Split, or None (also for unusable faces)."""
        if not self._usable(attempt):
            return None
        s = self.settings
        state = self._tracks.get(attempt.track_id)
        if state is None:
            state = self._tracks[attempt.track_id] = _TrackState(deque(maxlen=s.window), deque(maxlen=s.window))
        if self._disagrees(state, attempt):
            state.doubts.append(attempt)
            if len(state.doubts) >= s.split_after:
                return Split(attempt.track_id, state.recognized, tuple(state.doubts))
            return None
        state.doubts.clear()
        if attempt.embedding is not None:
            state.faces.append(attempt.embedding)
        accepted = attempt.name if attempt.name is not None and is_match(attempt.similarity, self.match_threshold) else None
        stranger = attempt.name is None or attempt.similarity < s.unknown_threshold
        state.votes.append(_Vote(accepted, stranger, attempt.similarity, attempt.live, attempt.liveness))
        state.best_similarity = max(state.best_similarity, attempt.similarity)

        if state.announced:
            return None  # decided: later attempts only watch that it is still the same person
        if accepted is not None:
            agreeing = [v for v in state.votes if v.accepted == accepted]
            if len(agreeing) >= s.min_agreeing:
                return self._announce_person(state, attempt, accepted, agreeing)
        no_match = len(state.votes) == s.window and all(v.accepted is None for v in state.votes)
        if sum(v.stranger for v in state.votes) >= s.min_unknown or no_match:
            state.announced_unknown = True
            live, liveness = self._liveness(list(state.votes))
            return Decision("unknown", None, state.best_similarity, attempt.track_id, attempt.box, attempt.time,
                            live, liveness)
        return None

    def split(self, split: Split, new_track_id: int) -> list[Decision]:
        """End the split track (its person's presence ends) and start ``new_track_id`` from its
        disagreeing attempts; the events those already decide (at most one, in practice)."""
        self.forget(split.track_id)
        made = []
        for attempt in split.attempts:
            outcome = self.observe(replace(attempt, track_id=new_track_id))
            if isinstance(outcome, Decision):
                made.append(outcome)
        return made

    def settled(self, track_id: int) -> bool:
        """Whether the track is announced and not in doubt (its face needs only an occasional check)."""
        state = self._tracks.get(track_id)
        return state is not None and state.announced and not state.doubts

    def forget(self, track_id: int) -> None:
        """Drop an ended track (its name's cooldown is kept); unknown ids are ignored."""
        self._tracks.pop(track_id, None)

    def present(self, now: float) -> list[str]:
        """Names recognized on tracks not forgotten yet, sorted, each once.

        ``now`` (seconds) only serves housekeeping: cooldowns over by then are dropped.
        """
        self._last_event = {n: t for n, t in self._last_event.items() if now - t < self.settings.cooldown}
        return sorted({state.recognized for state in self._tracks.values() if state.recognized is not None})

    def _disagrees(self, state: _TrackState, attempt: Attempt) -> bool:
        """Whether this attempt says the track's face is not the person it has been."""
        s = self.settings
        if attempt.embedding is not None and state.faces:
            likeness = max(float(np.dot(face, attempt.embedding)) for face in state.faces)
            if likeness < s.unknown_threshold:
                return True
        matched = attempt.name is not None and bool(is_match(attempt.similarity, self.match_threshold))
        if state.claimed is not None:
            own = attempt.similarity_to(state.claimed)
            someone_else = matched and attempt.name != state.claimed and attempt.similarity - own >= s.split_margin
            return own < s.unknown_threshold or someone_else
        return state.announced_unknown and matched

    def _usable(self, attempt: Attempt) -> bool:
        s = self.settings
        if attempt.box.size < s.min_face_size:
            return False
        blurred = attempt.sharpness is not None and attempt.sharpness < s.min_sharpness
        return not (s.min_sharpness > 0.0 and blurred)

    def _announce_person(self, state: _TrackState, attempt: Attempt, name: str, agreeing: list[_Vote]) -> Decision | None:
        """Enough attempts name ``name``: recognized, spoof, or (liveness undecided) not yet."""
        live, liveness = self._liveness(agreeing)
        if self.settings.require_live and not live:
            if live is None:
                return None  # not live enough yet, not a spoof yet: wait for more attempts
            state.spoofed = name
            kind: EventType = "spoof"
        else:
            state.recognized = name
            last = self._last_event.get(name)
            if last is not None and attempt.time - last < self.settings.cooldown:
                return None  # the same visit: the track counts as recognized, but quietly
            self._last_event[name] = attempt.time
            kind = "recognized"
        similarity = max(v.similarity for v in agreeing)
        return Decision(kind, name, similarity, attempt.track_id, attempt.box, attempt.time, live, liveness)

    def _liveness(self, votes: list[_Vote]) -> tuple[bool | None, float | None]:
        """Whether these attempts' face is live: True when at least ``min_live`` of them are live and
        more are live than not, False when as many are not live (and more than are), None when
        neither (or none was scored); and their mean probability of live (None: none scored)."""
        scored = [v for v in votes if v.live is not None]
        if not scored:
            return None, None
        live = sum(bool(v.live) for v in scored)
        not_live = len(scored) - live
        mean = sum(v.liveness for v in scored if v.liveness is not None) / len(scored)
        if live >= self.settings.min_live and live > not_live:
            return True, mean
        if not_live >= self.settings.min_live and not_live > live:
            return False, mean
        return None, mean
