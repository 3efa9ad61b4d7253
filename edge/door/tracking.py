"""Which face in this frame is which face in the last one: a small IoU tracker.

    tracker = Tracker(TrackerSettings(iou=0.3, gap=1.0))
    step = tracker.update(boxes, now)     # now: seconds, any monotonic clock
    step.current                          # one Track per box, in the order of the boxes
    step.ended                            # ids of tracks unseen for more than gap seconds

Pure: no I/O and no clock of its own. A box continues the live track it
overlaps most (intersection over union, greedy, best pair first); a box
that overlaps no live track well enough starts a new track. Track ids are
ints counting up from 1 and are never reused by one Tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.door.settings import TrackerSettings
from edge.faces import BBox


@dataclass(frozen=True, slots=True)
class Track:
    """One face followed across frames; times are the ``now`` values given to update()."""

    track_id: int
    box: BBox
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class TrackerUpdate:
    """What one update() did: the tracks of this frame's boxes and the tracks that ended."""

    current: list[Track]
    """One per input box, in the order of the boxes (continued or new tracks)."""
    ended: list[int]
    """Ids of tracks unseen for more than ``gap`` seconds, oldest id first."""


class Tracker:
    """Assigns track ids to face boxes frame by frame (see TrackerSettings for iou and gap).

    A track unseen for longer than ``gap`` seconds ends; a face seen again
    after that starts a new track.
    """

    def __init__(self, settings: TrackerSettings) -> None:
        self.iou_threshold = settings.iou
        self.max_gap = settings.gap
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
                track = Track(self._next_id, box, now, now)
                self._next_id += 1
            else:
                track = Track(previous.track_id, box, previous.first_seen, now)
            self._live[track.track_id] = track
            current.append(track)
        return TrackerUpdate(current, ended)

    def expire(self, now: float) -> list[int]:
        """End the tracks unseen for more than ``max_gap`` at ``now``; their ids, ascending."""
        ended = sorted(tid for tid, track in self._live.items() if now - track.last_seen > self.max_gap)
        for tid in ended:
            del self._live[tid]
        return ended

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
            if overlap < self.iou_threshold:
                break
            if tid in taken or index in assigned:
                continue
            taken.add(tid)
            assigned[index] = self._live[tid]
        return assigned
