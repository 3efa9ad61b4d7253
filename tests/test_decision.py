"""edge.door.decision: per-track recognized/unknown events from recognition attempts."""

import pytest

from edge.door.decision import Attempt, Decision, DecisionMaker
from edge.door.settings import DecisionSettings
from edge.faces import BBox

FACE = BBox(100, 100, 200, 200)  # 100 px: well above min_face_size


def attempt(track, name, similarity, t, box=FACE, sharpness=None):
    return Attempt(track, box, name, similarity, sharpness, t)


def feed(maker, attempts):
    """The decisions the attempts trigger, in order (Nones dropped)."""
    return [d for d in (maker.observe(a) for a in attempts) if d is not None]


def test_a_steady_known_face_is_recognized_once_after_min_agreeing_attempts():
    maker = DecisionMaker(DecisionSettings(min_agreeing=3), 0.36)
    results = [maker.observe(attempt(1, "alice", 0.5 + 0.01 * i, 0.1 * i)) for i in range(10)]
    assert results[:2] == [None, None]
    assert results[2] == Decision("recognized", "alice", pytest.approx(0.52), 1, FACE, pytest.approx(0.2))
    assert results[3:] == [None] * 7
    assert maker.present(1.0) == ["alice"]


def test_recognized_similarity_is_the_best_of_the_agreeing_attempts():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    (decision,) = feed(maker, [attempt(1, "alice", s, t) for t, s in enumerate([0.40, 0.70, 0.10, 0.45])])
    assert decision.similarity == pytest.approx(0.70)
    assert decision.timestamp == 3


def test_flickering_between_two_names_never_recognizes():
    maker = DecisionMaker(DecisionSettings(window=4, min_agreeing=3), 0.36)
    names = ["alice", "bob"] * 10  # any 4 in a row hold 2 of each
    assert feed(maker, [attempt(1, n, 0.6, 0.1 * i) for i, n in enumerate(names)]) == []
    assert maker.present(5.0) == []


def test_flickering_with_unclear_attempts_never_recognizes_with_defaults():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    pattern = [("alice", 0.6), ("bob", 0.6), ("alice", 0.3)] * 10  # 0.3: neither accepted nor a stranger
    assert feed(maker, [attempt(1, n, s, 0.1 * i) for i, (n, s) in enumerate(pattern)]) == []


def test_names_that_differ_do_not_add_up():
    maker = DecisionMaker(DecisionSettings(window=5, min_agreeing=3), 0.36)
    names = ["alice", "bob", "carol", "alice", "bob", "carol", "alice", "bob"]
    assert feed(maker, [attempt(1, n, 0.9, i) for i, n in enumerate(names)]) == []
    assert maker.present(10.0) == []


def test_old_attempts_leave_the_window():
    maker = DecisionMaker(DecisionSettings(window=3, min_agreeing=3, min_unknown=3), 0.36)
    names = ["alice", "alice", "bob", "alice", "alice", "bob"]  # never 3 alices within 3 attempts
    assert feed(maker, [attempt(1, n, 0.9, i) for i, n in enumerate(names)]) == []


def test_a_stranger_gives_one_unknown_event():
    maker = DecisionMaker(DecisionSettings(min_unknown=4), 0.36)
    sims = [0.10, 0.20, 0.05, 0.15, 0.12, 0.18, 0.02]
    results = [maker.observe(attempt(1, "alice", s, 0.1 * i)) for i, s in enumerate(sims)]
    assert results[:3] == [None] * 3
    assert results[3] == Decision("unknown", None, pytest.approx(0.20), 1, FACE, pytest.approx(0.3))
    assert results[4:] == [None] * 3
    assert maker.present(1.0) == []


def test_no_gallery_match_counts_as_a_stranger():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    (decision,) = feed(maker, [attempt(1, None, -1.0, i) for i in range(4)])
    assert decision.event_type == "unknown" and decision.name is None


def test_attempts_between_the_thresholds_count_for_nobody():
    maker = DecisionMaker(DecisionSettings(unknown_threshold=0.25), 0.36)
    assert feed(maker, [attempt(1, "alice", 0.30, i) for i in range(20)]) == []


def test_an_unknown_track_can_still_be_recognized():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    strangers = [attempt(1, "alice", 0.1, i) for i in range(4)]
    known = [attempt(1, "alice", 0.6, 4 + i) for i in range(3)]
    assert [d.event_type for d in feed(maker, strangers + known)] == ["unknown", "recognized"]
    assert maker.present(10.0) == ["alice"]


def test_a_recognized_track_never_flips_to_unknown():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    known = [attempt(1, "alice", 0.6, i) for i in range(3)]
    strangers = [attempt(1, "alice", 0.1, 3 + i) for i in range(10)]
    others = [attempt(1, "bob", 0.9, 13 + i) for i in range(5)]
    assert [d.event_type for d in feed(maker, known + strangers + others)] == ["recognized"]
    assert maker.present(20.0) == ["alice"]


def test_a_returning_person_within_cooldown_is_not_announced_again():
    maker = DecisionMaker(DecisionSettings(cooldown=60.0), 0.36)
    assert len(feed(maker, [attempt(1, "alice", 0.6, t) for t in (0, 1, 2)])) == 1
    maker.forget(1)
    assert maker.present(10.0) == []
    assert feed(maker, [attempt(2, "alice", 0.6, t) for t in (30, 31, 32)]) == []
    assert maker.present(33.0) == ["alice"]  # quietly recognized: still 'here'
    maker.forget(2)
    (again,) = feed(maker, [attempt(3, "alice", 0.6, t) for t in (61, 62, 63)])
    assert (again.event_type, again.name, again.track_id, again.timestamp) == ("recognized", "alice", 3, 63)


def test_cooldown_is_per_name():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    alice = feed(maker, [attempt(1, "alice", 0.6, t) for t in (0, 1, 2)])
    bob = feed(maker, [attempt(2, "bob", 0.6, t) for t in (3, 4, 5)])
    assert [d.name for d in alice + bob] == ["alice", "bob"]
    assert maker.present(6.0) == ["alice", "bob"]


def test_two_tracks_are_decided_independently():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    interleaved = []
    for i in range(4):
        interleaved += [attempt(1, "alice", 0.6, i), attempt(2, "alice", 0.1, i)]
    assert [(d.event_type, d.track_id) for d in feed(maker, interleaved)] == [("recognized", 1), ("unknown", 2)]


def test_each_track_announces_unknown_once_and_a_new_track_again():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    assert len(feed(maker, [attempt(1, None, -1.0, i) for i in range(12)])) == 1
    maker.forget(1)
    assert len(feed(maker, [attempt(2, None, -1.0, 20 + i) for i in range(12)])) == 1


def test_small_faces_are_ignored():
    maker = DecisionMaker(DecisionSettings(min_face_size=60), 0.36)
    small = BBox(0, 0, 50, 50)
    assert feed(maker, [attempt(1, "alice", 0.9, i, box=small) for i in range(10)]) == []
    # Ignored attempts were not counted: three good ones are still needed.
    assert feed(maker, [attempt(1, "alice", 0.9, 10 + i) for i in range(2)]) == []
    assert len(feed(maker, [attempt(1, "alice", 0.9, 12)])) == 1


def test_blurred_faces_are_ignored_when_sharpness_is_checked():
    on = DecisionMaker(DecisionSettings(min_sharpness=100.0), 0.36)
    assert feed(on, [attempt(1, "alice", 0.9, i, sharpness=20.0) for i in range(10)]) == []
    assert len(feed(on, [attempt(2, "alice", 0.9, i, sharpness=150.0) for i in range(3)])) == 1
    unmeasured = DecisionMaker(DecisionSettings(min_sharpness=100.0), 0.36)
    assert len(feed(unmeasured, [attempt(1, "alice", 0.9, i, sharpness=None) for i in range(3)])) == 1
    off = DecisionMaker(DecisionSettings(min_sharpness=0.0), 0.36)
    assert len(feed(off, [attempt(1, "alice", 0.9, i, sharpness=0.0) for i in range(3)])) == 1


def test_forgetting_an_unknown_track_is_harmless():
    maker = DecisionMaker(DecisionSettings(), 0.36)
    maker.forget(42)
    assert maker.present(0.0) == []


def test_defaults():
    s = DecisionSettings()
    assert s.unknown_threshold == 0.30
    assert (s.window, s.min_agreeing, s.min_unknown) == (5, 3, 4)
    assert (s.cooldown, s.min_face_size, s.min_sharpness) == (60.0, 60.0, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"unknown_threshold": float("nan")},
        {"unknown_threshold": -1.5},
        {"window": 0},
        {"window": 2.5},
        {"min_agreeing": 0},
        {"min_agreeing": 6},  # more than the window
        {"min_unknown": 6},
        {"min_unknown": True},
        {"cooldown": -1.0},
        {"cooldown": float("inf")},
        {"min_face_size": -5.0},
        {"min_sharpness": float("nan")},
    ],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        DecisionSettings(**kwargs)


@pytest.mark.parametrize("match_threshold", [0.2, 0.29])
def test_an_unknown_threshold_above_the_match_threshold_is_refused(match_threshold):
    with pytest.raises(ValueError, match="must not exceed match_threshold"):
        DecisionMaker(DecisionSettings(unknown_threshold=0.30), match_threshold)
