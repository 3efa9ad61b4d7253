"""Enrollment at the door, end to end: the GPIO button (gpiozero's mock pins) or an MQTT command,
a folder frame source and the running door loop."""

from __future__ import annotations

import time

import pytest

from edge.perception.modelset import embedding_model_id
from edge.perception.settings import RecognitionSettings
from edge import demo
from edge.adapters.gpio import EnrollButton
from edge.adapters.commands import Command
from edge.adapters.settings import ButtonSettings, LightSettings
from edge.door.settings import LoopSettings
from edge.enrollment.at_door import DoorEnrollment
from edge.enrollment.settings import EnrollSettings
from edge.messages import EnrollmentStatus
from edge.door.loop import DoorLoop
from edge.service import CommandHandler
from edge.adapters.camera import FolderSource
from edge.gallery.store import Gallery

MockFactory = pytest.importorskip("gpiozero.pins.mock").MockFactory


class Recorder:
    def __init__(self):
        self.events, self.enrollment = [], []

    def publish_event(self, event):
        self.events.append(event)

    def publish_state(self, state):
        pass

    def publish_camera(self, status):
        pass

    def publish_enrollment(self, message):
        fields = message.to_dict()
        self.enrollment.append((fields["type"], fields))

    def publish_problem(self, problem):
        self.events.append(problem)  # none expected: the tests check events == []


def frames(folder, *shots):
    """One frame per shot: a bundled photo's name, 'blank' or 'two' (two faces)."""
    return demo.write_stills(folder, shots)


@pytest.fixture
def door(tmp_path, engine, liveness):
    model_id = embedding_model_id(RecognitionSettings())
    path = tmp_path / "g"
    Gallery.create(path, model_id).close()
    gallery = Gallery.open(path, model_id)
    recorder = Recorder()
    loop = DoorLoop(engine, gallery, recorder, LoopSettings(), 0.36, liveness=liveness)
    loop.enrollment = DoorEnrollment(engine, path, model_id, EnrollSettings(samples=2, min_face_size=60), 0.36,
                                     recorder.publish_enrollment, liveness=liveness)
    yield loop, recorder, path
    gallery.close()


def press(pin, seconds=0.05):
    pin.drive_low()
    time.sleep(seconds)
    pin.drive_high()


def test_button_press_enrolls_good_samples_and_rejects_bad_ones(door, tmp_path):
    loop, recorder, path = door
    factory = MockFactory()
    commands = CommandHandler(path, loop.enrollment.model_id)
    commands.enrollment = loop.enrollment
    button = EnrollButton(ButtonSettings(pin=17, hold=0.5), commands.start_from_button, loop.enrollment.cancel,
                          pin_factory=factory)
    try:
        press(factory.pin(17))
        with FolderSource(frames(tmp_path / "f", "blank", "obama.jpg", "obama.jpg", "biden.jpg", "obama2.jpg", "obama3.jpg")) as source:
            loop.run(source)
    finally:
        button.close()
    statuses = [m for kind, m in recorder.enrollment if kind == "status"]
    assert [s["state"] for s in statuses] == ["started", "saved"]
    assert statuses[0]["name"] == "person_1"  # no name was set: an automatic id
    reasons = [m["reason"] for kind, m in recorder.enrollment if kind == "progress"]
    assert reasons[:4] == ["no face", "sample taken", "too like a sample already taken: turn your head a little",
                           "a different person than the first sample"]
    assert reasons[4].startswith("not a live face (liveness 0.") and reasons[5:] == ["sample taken"]  # obama2: a photo
    gallery = Gallery.open(path)
    try:
        assert gallery.identities() == {"person_1": 2}
    finally:
        gallery.close()
    assert recorder.events == []  # frames used for enrollment are not announced


def test_long_press_cancels_and_stores_nothing(door, tmp_path):
    loop, recorder, path = door
    factory = MockFactory()
    button = EnrollButton(ButtonSettings(pin=17, hold=0.5), lambda: loop.enrollment.request("alice"),
                          loop.enrollment.cancel, pin_factory=factory)
    pin = factory.pin(17)
    try:
        press(pin)
        with FolderSource(frames(tmp_path / "f", "obama.jpg", "obama2.jpg")) as source:
            loop.process(source.read())  # started, one sample taken
            press(pin, seconds=0.9)  # held past the 0.5 s hold: cancel
            loop.process(source.read())
    finally:
        button.close()
    assert [m["state"] for kind, m in recorder.enrollment if kind == "status"] == ["started", "cancelled"]
    gallery = Gallery.open(path)
    try:
        assert gallery.identities() == {}
    finally:
        gallery.close()


def test_mqtt_commands_name_start_and_time_out(door, tmp_path):
    loop, recorder, path = door
    now = [0.0]
    loop.enrollment.clock = lambda: now[0]
    commands = CommandHandler(path, loop.enrollment.model_id)
    commands.enrollment = loop.enrollment
    commands(Command("set_name", "Barack"))
    commands(Command("enroll_start", None))
    with FolderSource(frames(tmp_path / "f", "obama.jpg", "blank")) as source:
        loop.process(source.read())
        now[0] = 31.0  # past the 30 s timeout
        loop.process(source.read())
    statuses = [m for kind, m in recorder.enrollment if kind == "status"]
    assert [(s["state"], s["name"]) for s in statuses] == [("started", "Barack"), ("timed_out", "Barack")]
    assert "only 1 of 2" in statuses[-1]["detail"] and "nothing stored" in statuses[-1]["detail"]


def test_light_blinks_while_enrolling_and_stays_lit_when_saved():
    from edge.adapters.gpio import EnrollLight

    factory = MockFactory()
    light = EnrollLight(LightSettings(pin=27, saved_seconds=0.5), pin_factory=factory)
    pin = factory.pin(27)
    try:
        light.update(EnrollmentStatus("started", None))
        time.sleep(0.5)
        states = {change.state for change in pin.states}
        assert {True, False} <= states  # it blinked
        light.update(EnrollmentStatus("saved", None))
        time.sleep(0.1)
        assert pin.state is True
        light.update(EnrollmentStatus("cancelled", None))
        assert pin.state is False
    finally:
        light.close()


def test_a_name_enrolled_by_someone_else_meanwhile_is_not_merged(door, tmp_path):
    import numpy as np

    loop, recorder, path = door
    loop.enrollment.request("zoe")
    with FolderSource(frames(tmp_path / "f", "obama.jpg", "obama2.jpg", "obama3.jpg")) as source:
        loop.process(source.read())  # started, one sample taken
        with Gallery.open(path, loop.enrollment.model_id, writable=True) as writer:  # e.g. `edge gallery add`
            row = np.zeros((1, 128), np.float32)
            row[0, 0] = 1.0
            writer.append(row, ["zoe"], ["zoe.jpg"])
        loop.run(source)
    statuses = [m for kind, m in recorder.enrollment if kind == "status"]
    assert [s["state"] for s in statuses] == ["started", "failed"]
    assert "'zoe' was enrolled by someone else meanwhile; nothing stored" == statuses[-1]["detail"]
    gallery = Gallery.open(path)
    try:
        assert gallery.identities() == {"zoe": 1}
    finally:
        gallery.close()
