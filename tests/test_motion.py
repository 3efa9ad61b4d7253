"""edge.door.motion: an empty doorway is searched only when something moves, or every full_every seconds."""

from __future__ import annotations

import numpy as np
import pytest

from edge.door.motion import MotionGate
from edge.door.settings import MotionSettings
from scenes import empty_doorway as doorway

FPS = 10.0


def searched(gate: MotionGate, frames, tracking: bool = False) -> list[int]:
    return [i for i, image in enumerate(frames) if gate.wants_search(image, i / FPS, tracking)]


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


def test_while_someone_is_tracked_every_frame_is_searched():
    gate = MotionGate(MotionSettings())
    assert searched(gate, [doorway(i) for i in range(10)], tracking=True) == list(range(10))


def test_disabled_searches_every_frame():
    gate = MotionGate(MotionSettings(enabled=False))
    assert searched(gate, [doorway(i) for i in range(10)]) == list(range(10))


@pytest.mark.parametrize("kwargs", [{"width": 8}, {"threshold": -1}, {"min_area": 2.0}, {"full_every": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        MotionSettings(**kwargs)
