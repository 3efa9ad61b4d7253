"""A photo held up to the door: the door loop on camera-like frames of the liveness samples.

The frames are the sample photos themselves (../shared/data/spoof_samples, Apache-2.0), scaled to 640 px
on their longer side, each with its own sensor noise: a printed poster and a tablet showing a face are
what a door camera sees of them. Their people are enrolled from the same photos, as a resident's photos
could be, so each attack claims a resident.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.door.loop import DoorLoop
from edge.door.settings import DecisionSettings, LoopSettings
from edge.enrollment.dataset import build_gallery
from edge.frames import Frame
from edge.gallery.store import Gallery
from edge.imageio import load_image
from edge.perception.settings import RecognitionSettings

PEOPLE = {"resident": "real/image_T1.jpg", "poster": "spoof/image_F1.jpg", "tablet": "spoof/image_F2.jpg"}
FPS = 10.0


class Recorder:
    def __init__(self):
        self.events, self.present = [], set()

    def publish_event(self, event):
        self.events.append(event)

    def publish_state(self, state):
        self.present.update(state.present)

    def publish_camera(self, status): ...

    def publish_enrollment(self, message): ...

    def publish_problem(self, problem): ...

    def publish_people(self, people): ...


def camera_frames(image: np.ndarray, count: int, start: float, seed: int) -> list[Frame]:
    """``count`` frames of ``image`` scaled to 640 px on its longer side, with sensor noise (sigma 2)."""
    scale = 640 / max(image.shape[:2])
    view = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        noisy = np.clip(view.astype(np.float32) + rng.normal(0, 2, view.shape), 0, 255).astype(np.uint8)
        index = round(start * FPS) + i
        frames.append(Frame(noisy, index / FPS, index))
    return frames


@pytest.fixture(scope="module")
def door(spoof_samples, tmp_path_factory):
    work = tmp_path_factory.mktemp("liveness")
    for name, sample in PEOPLE.items():
        (work / "people" / name).mkdir(parents=True)
        image = load_image(spoof_samples / sample)  # upright (the files carry an EXIF rotation)
        cv2.imwrite(str(work / "people" / name / "1.png"), image)
    report = build_gallery(work / "people", work / "gallery", RecognitionSettings(), workers=1)
    assert report.enrolled == {name: 1 for name in PEOPLE}, report
    return work / "gallery", {name: load_image(spoof_samples / sample) for name, sample in PEOPLE.items()}


def play(engine, liveness, gallery_path, shown: list[tuple[str, int]], settings: LoopSettings) -> Recorder:
    """Show each (person, frames) in turn, a second of empty doorway between them."""
    _, images = gallery_path
    recorder = Recorder()
    with Gallery.open(gallery_path[0]) as gallery:
        loop = DoorLoop(engine, gallery, recorder, settings, 0.36, camera="test", liveness=liveness)
        start = 0.0
        for seed, (name, count) in enumerate(shown):
            for frame in camera_frames(images[name], count, start, seed):
                loop.process(frame)
            start += count / FPS
            empty = np.full_like(images[name], 90)[:480, :640]
            for i in range(int(FPS)):  # an empty doorway: the tracks end
                index = round(start * FPS) + i
                loop.process(Frame(empty, index / FPS, index))
            start += 1.0 + LoopSettings().tracker.gap
    return recorder


def kinds(recorder: Recorder) -> list[tuple[str, str | None, bool | None]]:
    return [(e.event_type, e.name, e.live) for e in recorder.events]


def test_a_printed_photo_and_a_tablet_are_spoofs_and_the_resident_is_recognized_live(engine, liveness, door):
    recorder = play(engine, liveness, door, [("poster", 20), ("tablet", 20), ("resident", 20)], LoopSettings())
    assert kinds(recorder) == [("spoof", "poster", False), ("spoof", "tablet", False), ("recognized", "resident", True)]
    spoofs = [e for e in recorder.events if e.event_type == "spoof"]
    assert all(e.liveness < 0.5 and e.similarity >= 0.36 for e in spoofs)  # the claimed resident, and why not
    assert recorder.present == {"resident"}  # a spoof is never present
    wire = recorder.events[0].to_dict()
    assert (wire["event_type"], wire["name"], wire["live"]) == ("spoof", "poster", False) and 0 <= wire["liveness"] < 0.5


def test_without_require_live_the_photo_is_recognized_and_the_event_says_it_is_not_live(engine, liveness, door):
    settings = LoopSettings(decision=DecisionSettings(require_live=False))
    recorder = play(engine, liveness, door, [("poster", 20), ("resident", 20)], settings)
    assert kinds(recorder) == [("recognized", "poster", False), ("recognized", "resident", True)]
