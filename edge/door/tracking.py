"""Which face in this frame is which face in the last one: a small IoU tracker.

    tracker = Tracker(TrackerSettings())
    step = tracker.update(boxes, now)     # now: seconds, any monotonic clock
    step.current                          # one Track per box, in the order of the boxes
    step.ended                            # ids of tracks unseen for more than gap seconds
    track = tracker.split(track_id, now)  # the face on a track is someone else: a new id

Pure: no I/O and no clock of its own. A box continues the live track it
overlaps most (intersection over union, greedy, best pair first); a box
that overlaps no live track well enough starts a new track. Track ids are
ints counting up from 1 and are never reused by one Tracker.

Overlap alone cannot tell people apart: the next person in a queue steps
into the spot the last one left. So a continued track is marked
``abrupt`` when its face changed in a way walking does not explain (its
size or position jumped, or it reappears after detection missed it more
than ``lost_frames`` times in a row); the door loop then matches that face
again at once, and splits the track when it is someone else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edge.door.settings import TrackerSettings
from edge.faces import BBox


@dataclass(frozen=True, slots=True)
class Track:
    """One face followed across frames; times are the ``now`` values given to update().

    missed: detection passes in a row, up to this one, that did not find the face.
    abrupt: the face changed abruptly in this update (see the module docstring):
        its identity is worth checking again.
    """

    track_id: int
    box: BBox
    first_seen: float
    last_seen: float
    missed: int = 0
    abrupt: bool = False


@dataclass(frozen=True, slots=True)
class TrackerUpdate:
    """What one update() did: the tracks of this frame's boxes and the tracks that ended."""

    current: list[Track]
    """One per input box, in the order of the boxes (continued or new tracks)."""
    ended: list[int]
    """Ids of tracks unseen for more than ``gap`` seconds, oldest id first."""


class Tracker:
    """Assigns track ids to face boxes frame by frame (see TrackerSettings).

    A track unseen for longer than ``gap`` seconds ends; a face seen again
    after that starts a new track.
    """

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self._live: dict[int, Track] = {}
        self._next_id = 1

    @property
    def live(self) -> list[Track]:
        """The tracks not ended yet, by id."""
        return sorted(self._live.values(), key=lambda track: track.track_id)

    def update(self, boxes: Sequence[BBox], now: float) -> TrackerUpdate:
        """Take one frame's boxes seen at ``now`` (seconds); an empty frame only ages the tracks."""
        ended = self.expire(now)
        assigned = self._assign(boxes)
        current: list[Track] = []
        for index, box in enumerate(boxes):
            previous = assigned.get(index)
            if previous is None:
                track = self._new_track(box, now)
            else:
                track = Track(previous.track_id, box, previous.first_seen, now,
                              abrupt=self._abrupt(previous, box))
            self._live[track.track_id] = track
            current.append(track)
        seen = {track.track_id for track in current}
        for tid, track in self._live.items():
            if tid not in seen:
                self._live[tid] = Track(tid, track.box, track.first_seen, track.last_seen, track.missed + 1)
        return TrackerUpdate(current, ended)

    def split(self, track_id: int, now: float) -> Track:
        """End live track ``track_id`` and give its face a new track (new id, first seen ``now``)."""
        old = self._live.pop(track_id)
        track = self._new_track(old.box, now)
        self._live[track.track_id] = track
        return track

    def expire(self, now: float) -> list[int]:
        """End the tracks unseen for more than ``gap`` at ``now``; their ids, ascending."""
        ended = sorted(tid for tid, track in self._live.items() if now - track.last_seen > self.settings.gap)
        for tid in ended:
            del self._live[tid]
        return ended

    def _new_track(self, box: BBox, now: float) -> Track:
        track = Track(self._next_id, box, now, now)
        self._next_id += 1
        return track

    def _abrupt(self, previous: Track, box: BBox) -> bool:
        """Whether ``box`` continuing ``previous`` is a change walking does not explain."""
        s = self.settings
        if previous.missed > s.lost_frames:
            return True
        old_size, new_size = max(previous.box.size, 1.0), max(box.size, 1.0)
        if max(old_size, new_size) / min(old_size, new_size) > s.scale_jump:
            return True
        (ox, oy), (nx, ny) = previous.box.center, box.center
        return math.hypot(nx - ox, ny - oy) > s.jump * old_size

    def _assign(self, boxes: Sequence[BBox]) -> dict[int, Track]:
        """Box index -> the live track it continues, best overlapping pairs first."""
        pairs = [
            (box.iou(track.box), tid, index)
            for index, box in enumerate(boxes)
            for tid, track in self._live.items()
        ]
        # Highest IoU first; ties go to the older track, then the earlier box, so runs repeat exactly.
        pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
        assigned: dict[int, Track] = {}
        taken: set[int] = set()
        for overlap, tid, index in pairs:
            if overlap < self.settings.iou:
                break
            if tid in taken or index in assigned:
                continue
            taken.add(tid)
            assigned[index] = self._live[tid]
        return assigned
