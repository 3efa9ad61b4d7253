"""edge.door.motion: an empty doorway is searched only when something moves, or every full_every seconds;
while someone is tracked, only around them unless something moves elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from edge.door.motion import MotionGate, Search, around
from edge.door.settings import MotionSettings
from edge.faces import BBox
from scenes import empty_doorway as doorway

FPS = 10.0
FACE = BBox(280.0, 180.0, 360.0, 280.0)  # a tracked face, 80x100 px in the 640x480 doorway


def searched(gate: MotionGate, frames, near=()) -> list[int]:
    return [i for i, image in enumerate(frames) if gate.search(image, i / FPS, near) is not None]


def plans(gate: MotionGate, frames, near=(FACE,)) -> list[Search | None]:
    return [gate.search(image, i / FPS, near) for i, image in enumerate(frames)]


def test_noise_and_a_slow_change_of_light_are_searched_only_every_full_every_seconds():
    gate = MotionGate(MotionSettings(full_every=2.0))
    frames = [doorway(i, light=0.5 * i) for i in range(100)]  # 50 grey levels brighter over 10 s
    assert searched(gate, frames) == [0, 20, 40, 60, 80]
    assert gate.skipped == 95


def test_someone_stepping_in_is_searched_at_once():
    gate = MotionGate(MotionSettings())
    frames = [doorway(i) for i in range(15)]
    frames[7] = frames[7].copy()
    frames[7][150:330, 250:400] = 30  # a dark coat fills a tenth of the picture
    assert searched(gate, frames) == [0, 7, 8]  # arrives, and leaves


def test_while_someone_is_tracked_every_frame_is_searched_near_them_and_whole_every_full_every_seconds():
    gate = MotionGate(MotionSettings(full_every=2.0))
    found = plans(gate, [doorway(i) for i in range(45)])
    assert [i for i, plan in enumerate(found) if plan.whole] == [0, 20, 40]  # the first frame has nothing to compare
    near = Search((BBox(180.0, 80.0, 460.0, 380.0),))  # the face's box and 100 px (one face size) around it
    assert all(plan == near for i, plan in enumerate(found) if i not in (0, 20, 40))
    assert gate.near == 42 and gate.skipped == 0


def test_someone_stepping_in_elsewhere_while_one_is_tracked_is_searched_whole_at_once():
    frames = [doorway(i) for i in range(10)]
    frames[5] = frames[5].copy()
    frames[5][200:380, 500:600] = 30  # a dark coat at the frame's right, away from the tracked face
    frames[6] = frames[6].copy()
    frames[6][200:380, 200:300] = 30  # a coat within the tracked face's region: only near it
    found = plans(MotionGate(MotionSettings()), frames)
    assert [i for i, plan in enumerate(found) if plan.whole] == [0, 5, 6]  # 6: the coat at the right leaves


def test_regions_are_joined_clipped_to_the_frame_and_given_up_for_the_whole_frame_when_large():
    assert around([FACE, BBox(400.0, 190.0, 460.0, 260.0)], 640, 480, 1.0) == (BBox(180.0, 80.0, 530.0, 380.0),)
    assert around([BBox(0.0, 0.0, 40.0, 50.0), BBox(600.0, 430.0, 640.0, 480.0)], 640, 480, 0.5) == (
        BBox(0.0, 0.0, 65.0, 75.0), BBox(575.0, 405.0, 640.0, 480.0))
    close_up = BBox(200.0, 100.0, 440.0, 400.0)  # a face of 240x300 px: its region is most of the frame
    assert [plan.whole for plan in plans(MotionGate(MotionSettings()), [doorway(i) for i in range(3)],
                                         near=(close_up,))] == [True, True, True]


def test_near_tracks_off_searches_every_frame_whole_while_someone_is_tracked():
    gate = MotionGate(MotionSettings(near_tracks=False))
    assert all(plan.whole for plan in plans(gate, [doorway(i) for i in range(10)]))


def test_disabled_searches_every_frame_whole():
    gate = MotionGate(MotionSettings(enabled=False))
    assert searched(gate, [doorway(i) for i in range(10)]) == list(range(10))
    assert all(plan.whole for plan in plans(gate, [doorway(i) for i in range(5)]))


@pytest.mark.parametrize("kwargs", [{"width": 8}, {"threshold": -1}, {"min_area": 2.0}, {"full_every": 0},
                                    {"margin": 0}, {"margin": 11}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        MotionSettings(**kwargs)
