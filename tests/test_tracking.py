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


def abrupt(step):
    return [track.abrupt for track in step.current]


def test_walking_is_not_abrupt():
    tracker = Tracker(TrackerSettings())
    steps = [tracker.update([box(100 + 8 * i, 50, side=100 + 3 * i)], now=0.1 * i) for i in range(20)]
    assert [abrupt(step) for step in steps] == [[False]] * 20


def test_a_face_that_reappears_after_missed_detections_is_abrupt():
    tracker = Tracker(TrackerSettings(lost_frames=1))
    tracker.update([box(0, 0)], now=0.0)
    tracker.update([], now=0.1)
    assert abrupt(tracker.update([box(0, 0)], now=0.2)) == [False]  # one miss: allowed by lost_frames=1
    tracker.update([], now=0.3)
    tracker.update([], now=0.4)
    step = tracker.update([box(0, 0)], now=0.5)
    assert ids(step) == [1] and abrupt(step) == [True]
    assert abrupt(tracker.update([box(0, 0)], now=0.6)) == [False]  # only on the sighting after the loss
    assert tracker.live[0].missed == 0


def test_by_default_any_missed_detection_makes_the_next_sighting_abrupt():
    tracker = Tracker(TrackerSettings())
    tracker.update([box(0, 0)], now=0.0)
    tracker.update([], now=0.1)
    assert tracker.live[0].missed == 1
    assert abrupt(tracker.update([box(0, 0)], now=0.2)) == [True]


@pytest.mark.parametrize("new, expected", [
    (box(0, 0, side=125), False),   # 1.25x: within scale_jump 1.3
    (box(0, 0, side=140), True),    # 1.4x larger
    (box(10, 10, side=70), True),   # 1.43x smaller
    (box(45, 0), False),            # moved 0.45 face sizes (IoU 0.38)
    (box(52, 0), True),             # moved 0.52 face sizes (IoU 0.32)
])
def test_a_size_or_position_jump_is_abrupt(new, expected):
    tracker = Tracker(TrackerSettings(iou=0.3, scale_jump=1.3, jump=0.5))
    tracker.update([box(0, 0)], now=0.0)
    step = tracker.update([new], now=0.1)
    assert ids(step) == [1] and abrupt(step) == [expected]


def test_split_gives_the_face_a_new_id_and_ends_the_old_track():
    tracker = Tracker(TrackerSettings())
    tracker.update([box(0, 0), box(300, 0)], now=0.0)
    track = tracker.split(1, now=0.5)
    assert (track.track_id, track.box, track.first_seen) == (3, box(0, 0), 0.5)
    assert [t.track_id for t in tracker.live] == [2, 3]
    assert ids(tracker.update([box(2, 0), box(300, 0)], now=0.6)) == [3, 2]


@pytest.mark.parametrize("kwargs", [{"iou": 0.0}, {"iou": 1.5}, {"gap": -1.0},
                                    {"gap": float("inf")}, {"iou": float("nan")},
                                    {"lost_frames": -1}, {"scale_jump": 1.0}, {"jump": 0.0}])
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
