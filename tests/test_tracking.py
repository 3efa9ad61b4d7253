"""edge.door.tracking: ids follow faces across frames."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.door.settings import TrackerSettings
from edge.door.tracking import Track, Tracker
from edge.faces import BBox


def box(x, y, side=100.0):
    return BBox(x, y, x + side, y + side)


def ids(step):
    return [track.track_id for track in step.current]


def test_a_slowly_moving_box_keeps_its_id():
    tracker = Tracker(TrackerSettings())
    seen = [ids(tracker.update([box(100 + 5 * i, 50 + 3 * i)], now=0.1 * i)) for i in range(20)]
    assert seen == [[1]] * 20
    (track,) = tracker.live
    assert track == Track(1, box(195, 107), first_seen=0.0, last_seen=pytest.approx(1.9))


def test_two_separated_boxes_get_two_ids_in_box_order():
    tracker = Tracker(TrackerSettings())
    assert ids(tracker.update([box(0, 0), box(400, 0)], now=0.0)) == [1, 2]
    # Same faces, listed the other way round: each keeps its own id.
    assert ids(tracker.update([box(405, 0), box(5, 0)], now=0.1)) == [2, 1]


def test_a_gap_longer_than_max_gap_ends_the_track_and_starts_a_new_id():
    tracker = Tracker(TrackerSettings(gap=1.0))
    tracker.update([box(0, 0)], now=0.0)
    assert tracker.update([], now=0.9).ended == []
    step = tracker.update([box(0, 0)], now=1.5)
    assert step.ended == [1]
    assert ids(step) == [2]
    assert step.current[0].first_seen == 1.5


def test_a_gap_within_max_gap_keeps_the_id():
    tracker = Tracker(TrackerSettings(gap=1.0))
    tracker.update([box(0, 0)], now=0.0)
    step = tracker.update([box(2, 2)], now=1.0)
    assert ids(step) == [1] and step.ended == []


def test_an_empty_frame_reports_ended_tracks_once():
    tracker = Tracker(TrackerSettings(gap=0.5))
    tracker.update([box(0, 0), box(400, 0)], now=0.0)
    tracker.update([box(400, 0)], now=0.4)
    assert tracker.update([], now=0.6).ended == [1]
    assert tracker.update([], now=1.0).ended == [2]
    assert tracker.update([], now=5.0).ended == []
    assert tracker.live == []


def test_greedy_assignment_gives_the_track_to_the_box_that_overlaps_it_most():
    tracker = Tracker(TrackerSettings(iou=0.3))
    tracker.update([box(0, 0)], now=0.0)
    far, near = box(40, 0), box(10, 0)  # both overlap track 1 enough; the nearer one wins
    assert box(0, 0).iou(far) >= 0.3 and box(0, 0).iou(near) > box(0, 0).iou(far)
    assert ids(tracker.update([far, near], now=0.1)) == [2, 1]


def test_overlap_below_the_threshold_starts_a_new_track():
    tracker = Tracker(TrackerSettings(iou=0.5))
    tracker.update([box(0, 0)], now=0.0)
    assert ids(tracker.update([box(60, 0)], now=0.1)) == [2]  # IoU 0.25


def test_ids_are_never_reused():
    tracker = Tracker(TrackerSettings(gap=0.0))
    got = [ids(tracker.update([box(0, 0)], now=float(t)))[0] for t in range(5)]
    assert got == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("kwargs", [{"iou": 0.0}, {"iou": 1.5}, {"gap": -1.0},
                                    {"gap": float("inf")}, {"iou": float("nan")}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        TrackerSettings(**kwargs)


coordinate = st.floats(0, 300, allow_nan=False)
boxes = st.builds(lambda x, y, w, h: BBox(x, y, x + w, y + h), coordinate, coordinate,
                  st.floats(1, 150), st.floats(1, 150))


@given(st.lists(st.lists(boxes, max_size=6), min_size=1, max_size=8))
def test_no_id_is_given_to_two_boxes_of_one_frame(frames):
    tracker = Tracker(TrackerSettings())
    for t, frame in enumerate(frames):
        step = tracker.update(frame, now=0.1 * t)
        assert len(step.current) == len(frame)
        assert [track.box for track in step.current] == frame
        assert len(set(ids(step))) == len(frame)
        assert {track.track_id for track in tracker.live} >= set(ids(step))
