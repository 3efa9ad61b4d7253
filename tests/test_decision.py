"""edge.door.decision: per-track recognized/unknown/spoof events from recognition attempts."""

from dataclasses import replace

import numpy as np
import pytest

from edge.door.decision import Attempt, Decision, DecisionMaker, Split
from edge.door.settings import DecisionSettings
from edge.faces import BBox

FACE = BBox(100, 100, 200, 200)  # 100 px: well above min_face_size


def settings(**values):
    """DecisionSettings for the tests about names: liveness not required (it has tests of its own below)."""
    return DecisionSettings(**{"require_live": False, **values})


def attempt(track, name, similarity, t, box=FACE, sharpness=None):
    return Attempt(track, box, name, similarity, sharpness, t)


def feed(maker, attempts):
    """The decisions the attempts trigger, in order, as the door loop takes them: a Split moves
    the rest of its track's attempts to a new track (id + 100)."""
    made, moved = [], {}
    for a in attempts:
        track = moved.get(a.track_id, a.track_id)
        outcome = maker.observe(replace(a, track_id=track))
        if isinstance(outcome, Split):
            moved[a.track_id] = track + 100
            made += maker.split(outcome, track + 100)
        elif outcome is not None:
            made.append(outcome)
    return made


def face(seed):
    """A unit embedding; different seeds are different people (near-orthogonal in 128 dimensions)."""
    vector = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def near(seed, amount=0.3, jitter=1):
    """The face of ``seed`` seen again: a little different."""
    vector = face(seed) + amount * face(1000 * seed + jitter)
    return vector / np.linalg.norm(vector)


def test_a_steady_known_face_is_recognized_once_after_min_agreeing_attempts():
    maker = DecisionMaker(settings(min_agreeing=3), 0.36)
    results = [maker.observe(attempt(1, "alice", 0.5 + 0.01 * i, 0.1 * i)) for i in range(10)]
    assert results[:2] == [None, None]
    assert results[2] == Decision("recognized", "alice", pytest.approx(0.52), 1, FACE, pytest.approx(0.2))
    assert results[3:] == [None] * 7
    assert maker.present(1.0) == ["alice"]


def test_recognized_similarity_is_the_best_of_the_agreeing_attempts():
    maker = DecisionMaker(settings(), 0.36)
    (decision,) = feed(maker, [attempt(1, "alice", s, t) for t, s in enumerate([0.40, 0.70, 0.10, 0.45])])
    assert decision.similarity == pytest.approx(0.70)
    assert decision.timestamp == 3


def test_flickering_between_two_names_never_recognizes():
    maker = DecisionMaker(settings(window=4, min_agreeing=3), 0.36)
    names = ["alice", "bob"] * 10  # any 4 in a row hold 2 of each
    assert feed(maker, [attempt(1, n, 0.6, 0.1 * i) for i, n in enumerate(names)]) == []
    assert maker.present(5.0) == []


def test_flickering_with_unclear_attempts_never_recognizes_with_defaults():
    maker = DecisionMaker(settings(), 0.36)
    pattern = [("alice", 0.6), ("bob", 0.6), ("alice", 0.3)] * 10  # 0.3: neither accepted nor a stranger
    assert feed(maker, [attempt(1, n, s, 0.1 * i) for i, (n, s) in enumerate(pattern)]) == []


def test_names_that_differ_do_not_add_up():
    maker = DecisionMaker(settings(window=5, min_agreeing=3), 0.36)
    names = ["alice", "bob", "carol", "alice", "bob", "carol", "alice", "bob"]
    assert feed(maker, [attempt(1, n, 0.9, i) for i, n in enumerate(names)]) == []
    assert maker.present(10.0) == []


def test_old_attempts_leave_the_window():
    maker = DecisionMaker(settings(window=3, min_agreeing=3, min_unknown=3), 0.36)
    names = ["alice", "alice", "bob", "alice", "alice", "bob"]  # never 3 alices within 3 attempts
    assert feed(maker, [attempt(1, n, 0.9, i) for i, n in enumerate(names)]) == []


def test_a_stranger_gives_one_unknown_event():
    maker = DecisionMaker(settings(min_unknown=4), 0.36)
    sims = [0.10, 0.20, 0.05, 0.15, 0.12, 0.18, 0.02]
    results = [maker.observe(attempt(1, "alice", s, 0.1 * i)) for i, s in enumerate(sims)]
    assert results[:3] == [None] * 3
    assert results[3] == Decision("unknown", None, pytest.approx(0.20), 1, FACE, pytest.approx(0.3))
    assert results[4:] == [None] * 3
    assert maker.present(1.0) == []


def test_no_gallery_match_counts_as_a_stranger():
    maker = DecisionMaker(settings(), 0.36)
    (decision,) = feed(maker, [attempt(1, None, -1.0, i) for i in range(4)])
    assert decision.event_type == "unknown" and decision.name is None


def test_attempts_between_the_thresholds_count_for_nobody_but_a_full_window_without_a_match_is_a_stranger():
    maker = DecisionMaker(settings(unknown_threshold=0.25, window=5), 0.36)
    (event,) = feed(maker, [attempt(1, "alice", 0.30, i) for i in range(20)])
    assert (event.event_type, event.timestamp, event.similarity) == ("unknown", 4, 0.30)
    maker = DecisionMaker(settings(unknown_threshold=0.25, window=5), 0.36)
    one_match = [attempt(2, "alice", 0.40 if i % 5 == 2 else 0.30, i) for i in range(20)]  # a match in every window
    assert feed(maker, one_match) == []


def test_an_unknown_track_that_matches_someone_is_split_and_they_are_recognized_on_their_own_track():
    maker = DecisionMaker(settings(), 0.36)
    strangers = [attempt(1, "alice", 0.1, i) for i in range(4)]
    known = [attempt(1, "alice", 0.6, 4 + i) for i in range(3)]
    assert [(d.event_type, d.track_id) for d in feed(maker, strangers + known)] == [("unknown", 1), ("recognized", 101)]
    assert maker.present(10.0) == ["alice"]


def test_a_recognized_track_whose_face_stops_matching_is_split_and_the_newcomer_decided_alone():
    maker = DecisionMaker(settings(), 0.36)
    known = [attempt(1, "alice", 0.6, i) for i in range(3)]
    strangers = [attempt(1, "alice", 0.1, 3 + i) for i in range(10)]
    others = [attempt(1, "bob", 0.9, 13 + i) for i in range(5)]
    events = feed(maker, known + strangers)
    assert [(d.event_type, d.name, d.track_id, d.timestamp) for d in events] == [
        ("recognized", "alice", 1, 2), ("unknown", None, 101, 6)]  # split after 2, unknown after 4 strangers
    assert maker.present(14.0) == []  # alice's presence ended with the split
    events = feed(maker, [replace(a, track_id=101) for a in others])
    assert [(d.event_type, d.name, d.track_id) for d in events] == [("recognized", "bob", 201)]
    assert maker.present(20.0) == ["bob"]


def test_one_bad_frame_does_not_split_a_track():
    maker = DecisionMaker(settings(split_after=2), 0.36)
    good = [attempt(1, "alice", 0.6, i) for i in range(3)]
    flicker = [attempt(1, "alice", 0.1 if i % 2 else 0.6, 3 + i) for i in range(21)]
    assert [d.name for d in feed(maker, good + flicker)] == ["alice"]
    assert maker.present(30.0) == ["alice"] and maker.settled(1)


def test_a_track_in_doubt_is_not_settled():
    maker = DecisionMaker(settings(split_after=3), 0.36)
    assert not maker.settled(1)
    feed(maker, [attempt(1, "alice", 0.6, i) for i in range(3)])
    assert maker.settled(1)
    assert maker.observe(attempt(1, "alice", 0.1, 3)) is None
    assert not maker.settled(1) and maker.present(3.0) == ["alice"]  # in doubt, still present
    maker.observe(attempt(1, "alice", 0.6, 4))
    assert maker.settled(1)


def test_someone_else_matching_better_by_the_margin_splits_a_look_alike_within_it_does_not():
    maker = DecisionMaker(settings(split_margin=0.1), 0.36)
    feed(maker, [attempt(1, "alice", 0.6, i) for i in range(3)])
    within = [Attempt(1, FACE, "bea", 0.55, None, 3 + i, others=(("alice", 0.5),)) for i in range(5)]
    assert feed(maker, within) == [] and maker.present(9.0) == ["alice"]
    beyond = [Attempt(1, FACE, "bea", 0.7, None, 9 + i, others=(("alice", 0.5),)) for i in range(3)]
    (event,) = feed(maker, beyond)
    assert (event.name, event.track_id) == ("bea", 101) and maker.present(12.0) == ["bea"]


def test_a_second_stranger_in_a_strangers_place_is_split_by_their_face_and_announced():
    maker = DecisionMaker(settings(), 0.36)
    first = [Attempt(1, FACE, "alice", 0.05, None, i, embedding=near(1, jitter=i)) for i in range(6)]
    second = [Attempt(1, FACE, "alice", 0.05, None, 6 + i, embedding=near(2, jitter=i)) for i in range(6)]
    events = feed(maker, first + second)
    assert [(d.event_type, d.track_id, d.timestamp) for d in events] == [("unknown", 1, 3), ("unknown", 101, 9)]


def test_the_same_face_from_another_angle_stays_on_its_track():
    maker = DecisionMaker(settings(), 0.36)
    same = [Attempt(1, FACE, "alice", 0.6, None, i, embedding=near(1, amount=0.8, jitter=i)) for i in range(20)]
    assert [d.track_id for d in feed(maker, same)] == [1]


def test_similarity_to_someone_not_found_is_bounded_by_the_last_found():
    a = Attempt(1, FACE, "bea", 0.7, None, 0.0, others=(("carl", 0.2),))
    assert a.similarity_to("bea") == 0.7 and a.similarity_to("carl") == 0.2 and a.similarity_to("alice") == 0.2
    assert Attempt(1, FACE, None, -1.0, None, 0.0).similarity_to("alice") == -1.0


def test_a_returning_person_within_cooldown_is_not_announced_again():
    maker = DecisionMaker(settings(cooldown=60.0), 0.36)
    assert len(feed(maker, [attempt(1, "alice", 0.6, t) for t in (0, 1, 2)])) == 1
    maker.forget(1)
    assert maker.present(10.0) == []
    assert feed(maker, [attempt(2, "alice", 0.6, t) for t in (30, 31, 32)]) == []
    assert maker.present(33.0) == ["alice"]  # quietly recognized: still 'here'
    maker.forget(2)
    (again,) = feed(maker, [attempt(3, "alice", 0.6, t) for t in (61, 62, 63)])
    assert (again.event_type, again.name, again.track_id, again.timestamp) == ("recognized", "alice", 3, 63)


def test_cooldown_is_per_name():
    maker = DecisionMaker(settings(), 0.36)
    alice = feed(maker, [attempt(1, "alice", 0.6, t) for t in (0, 1, 2)])
    bob = feed(maker, [attempt(2, "bob", 0.6, t) for t in (3, 4, 5)])
    assert [d.name for d in alice + bob] == ["alice", "bob"]
    assert maker.present(6.0) == ["alice", "bob"]


def test_two_tracks_are_decided_independently():
    maker = DecisionMaker(settings(), 0.36)
    interleaved = []
    for i in range(4):
        interleaved += [attempt(1, "alice", 0.6, i), attempt(2, "alice", 0.1, i)]
    assert [(d.event_type, d.track_id) for d in feed(maker, interleaved)] == [("recognized", 1), ("unknown", 2)]


def test_each_track_announces_unknown_once_and_a_new_track_again():
    maker = DecisionMaker(settings(), 0.36)
    assert len(feed(maker, [attempt(1, None, -1.0, i) for i in range(12)])) == 1
    maker.forget(1)
    assert len(feed(maker, [attempt(2, None, -1.0, 20 + i) for i in range(12)])) == 1


def test_small_faces_are_ignored():
    maker = DecisionMaker(settings(min_face_size=60), 0.36)
    small = BBox(0, 0, 50, 50)
    assert feed(maker, [attempt(1, "alice", 0.9, i, box=small) for i in range(10)]) == []
    # Ignored attempts were not counted: three good ones are still needed.
    assert feed(maker, [attempt(1, "alice", 0.9, 10 + i) for i in range(2)]) == []
    assert len(feed(maker, [attempt(1, "alice", 0.9, 12)])) == 1


def test_blurred_faces_are_ignored_when_sharpness_is_checked():
    on = DecisionMaker(settings(min_sharpness=100.0), 0.36)
    assert feed(on, [attempt(1, "alice", 0.9, i, sharpness=20.0) for i in range(10)]) == []
    assert len(feed(on, [attempt(2, "alice", 0.9, i, sharpness=150.0) for i in range(3)])) == 1
    unmeasured = DecisionMaker(settings(min_sharpness=100.0), 0.36)
    assert len(feed(unmeasured, [attempt(1, "alice", 0.9, i, sharpness=None) for i in range(3)])) == 1
    off = DecisionMaker(settings(min_sharpness=0.0), 0.36)
    assert len(feed(off, [attempt(1, "alice", 0.9, i, sharpness=0.0) for i in range(3)])) == 1


def test_forgetting_an_unknown_track_is_harmless():
    maker = DecisionMaker(settings(), 0.36)
    maker.forget(42)
    assert maker.present(0.0) == []


def test_defaults():
    s = DecisionSettings()
    assert s.unknown_threshold == 0.30
    assert (s.window, s.min_agreeing, s.min_unknown) == (5, 3, 4)
    assert (s.cooldown, s.min_face_size, s.min_sharpness) == (60.0, 60.0, 0.0)
    assert (s.split_after, s.split_margin) == (2, 0.1)


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
        {"split_after": 0},
        {"split_margin": -0.1},
    ],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        DecisionSettings(**kwargs)


@pytest.mark.parametrize("match_threshold", [0.2, 0.29])
def test_an_unknown_threshold_above_the_match_threshold_is_refused(match_threshold):
    with pytest.raises(ValueError, match="must not exceed match_threshold"):
        DecisionMaker(settings(unknown_threshold=0.30), match_threshold)


def scored(track, name, similarity, t, liveness, threshold=0.5):
    """An attempt whose face was scored for liveness (probability ``liveness``)."""
    return replace(attempt(track, name, similarity, t), live=liveness >= threshold, liveness=liveness)


def test_a_live_face_is_recognized_and_the_event_says_so():
    maker = DecisionMaker(DecisionSettings(min_agreeing=3, min_live=2), 0.36)
    made = feed(maker, [scored(1, "alice", 0.6, 0.1 * i, live) for i, live in enumerate([0.9, 0.3, 0.8])])
    assert made == [Decision("recognized", "alice", 0.6, 1, FACE, pytest.approx(0.2), True, pytest.approx(2.0 / 3))]
    assert maker.present(1.0) == ["alice"]


def test_a_photo_of_a_resident_is_a_spoof_never_present_and_not_recognized_later_on_its_track():
    maker = DecisionMaker(DecisionSettings(min_agreeing=3, min_live=2), 0.36)
    made = feed(maker, [scored(1, "alice", 0.6, 0.1 * i, live) for i, live in enumerate([0.1, 0.7, 0.2, 0.9, 0.9])])
    assert made == [Decision("spoof", "alice", 0.6, 1, FACE, pytest.approx(0.2), False, pytest.approx(1.0 / 3))]
    assert maker.present(1.0) == []


def test_undecided_liveness_waits_for_more_attempts():
    maker = DecisionMaker(DecisionSettings(window=5, min_agreeing=2, min_live=2), 0.36)
    made = feed(maker, [scored(1, "alice", 0.6, 0.0, 0.9), scored(1, "alice", 0.6, 0.1, 0.1)])
    assert made == []  # one live, one not: neither
    made = feed(maker, [scored(1, "alice", 0.6, 0.2, 0.8)])
    assert [(d.event_type, d.live) for d in made] == [("recognized", True)]


def test_a_spoof_does_not_hold_back_the_real_person_arriving_next():
    maker = DecisionMaker(DecisionSettings(min_agreeing=2, min_live=2, cooldown=60.0), 0.36)
    spoof = feed(maker, [scored(1, "alice", 0.6, 0.0, 0.1), scored(1, "alice", 0.6, 0.1, 0.2)])
    real = feed(maker, [scored(2, "alice", 0.6, 1.0, 0.9), scored(2, "alice", 0.6, 1.1, 0.9)])
    assert [d.event_type for d in spoof + real] == ["spoof", "recognized"]


def test_unscored_faces_are_never_recognized_when_liveness_is_required():
    maker = DecisionMaker(DecisionSettings(min_agreeing=2), 0.36)
    assert feed(maker, [attempt(1, "alice", 0.6, 0.1 * i) for i in range(5)]) == []


def test_without_require_live_a_face_that_is_not_live_is_recognized_and_the_event_says_so():
    maker = DecisionMaker(settings(min_agreeing=2, min_live=2), 0.36)
    made = feed(maker, [scored(1, "alice", 0.6, 0.0, 0.1), scored(1, "alice", 0.6, 0.1, 0.2)])
    assert [(d.event_type, d.live) for d in made] == [("recognized", False)]


def test_min_live_must_fit_the_window():
    with pytest.raises(ValueError, match="min_live"):
        DecisionSettings(window=3, min_agreeing=2, min_unknown=2, min_live=4)
