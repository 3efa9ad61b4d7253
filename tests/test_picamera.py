"""The Pi camera source against a fake picamera2 (its documented API), as far as this machine can go.

picamera2 exists only on Raspberry Pi OS; the fake implements what edge
uses of it: ``Picamera2()``, ``create_video_configuration(main=...)``,
``configure``, ``start``, ``capture_array("main")``, ``stop``, ``close``.
With ``format="RGB888"`` picamera2 gives pixels in B, G, R byte order (OpenCV's
BGR); no camera makes ``Picamera2()`` raise IndexError.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edge.adapters.camera import PiCameraSource, Reconnecting, SourceError, open_source
from edge.adapters.settings import CameraSettings


class FakeCamera:
    instances: list[FakeCamera] = []
    cameras = 1
    fail_after: int | None = None  # captures before capture_array starts failing

    def __init__(self):
        if FakeCamera.cameras == 0:
            raise IndexError("list index out of range")  # what picamera2 does without a camera
        self.config = None
        self.started = self.stopped = self.closed = False
        self.captures = 0
        FakeCamera.instances.append(self)

    def create_video_configuration(self, main):
        return {"main": dict(main)}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self, name="main"):
        assert name == "main" and self.started and not self.stopped
        if FakeCamera.fail_after is not None and self.captures >= FakeCamera.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        self.captures += 1
        width, height = self.config["main"]["size"]
        image = np.zeros((height, width, 3), np.uint8)
        image[:, :, 0] = 200  # "RGB888": the first byte of each pixel is blue
        image[:, :, 2] = 10
        return image

    def stop(self):
        self.stopped = True

    def close(self):
        self.closed = True


@pytest.fixture
def picamera2(monkeypatch):
    FakeCamera.instances, FakeCamera.cameras, FakeCamera.fail_after = [], 1, None
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakeCamera
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return FakeCamera


def test_frames_come_in_the_size_asked_for_and_in_bgr(picamera2):
    with PiCameraSource(320, 240) as source:
        frames = [source.read() for _ in range(3)]
    (camera,) = picamera2.instances
    assert camera.config == {"main": {"size": (320, 240), "format": "RGB888"}}
    assert [f.index for f in frames] == [0, 1, 2] and frames[0].image.shape == (240, 320, 3)
    assert frames[0].image[0, 0].tolist() == [200, 0, 10]  # blue stays first: OpenCV's order
    assert camera.stopped and camera.closed


def test_no_camera_is_one_clear_error(picamera2):
    picamera2.cameras = 0
    with pytest.raises(SourceError, match="cannot open the Pi camera"):
        PiCameraSource().__enter__()


def test_without_picamera2_installed_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    with pytest.raises(SourceError, match="apt install python3-picamera2"):
        PiCameraSource().__enter__()


def test_a_capture_that_fails_reopens_the_camera_through_the_newest_frame_reader(picamera2):
    picamera2.fail_after = 2
    states, waits = [], []
    source = open_source(CameraSettings(source="picamera", frame_width=96, frame_height=64))
    with Reconnecting(source, lambda s: states.append(s.online), sleep=waits.append) as camera:
        frames = [camera.read() for _ in range(5)]
    assert all(f.image.shape == (64, 96, 3) for f in frames)
    assert len(picamera2.instances) >= 3 and all(c.closed for c in picamera2.instances)
    assert states[:3] == [True, False, True]  # online, the capture failed, online again
