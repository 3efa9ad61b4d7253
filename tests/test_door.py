"""The door loop end to end on the bundled scene (events on stdout), and the frame sources."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from edge.config import Config, ConfigError
from edge import demo
from edge.adapters.camera import FolderSource, Reconnecting, SourceError, open_source
from edge.adapters.settings import CameraSettings
from edge.adapters.stdout import StdoutPublisher
from edge.door.loop import DoorLoop
from edge.door.settings import LoopSettings
from edge.frames import Frame
from edge.messages import CameraStatus, State
from edge.perception.settings import RecognitionSettings
from edge.enrollment.dataset import build_gallery
from edge.gallery.store import Gallery


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    work = tmp_path_factory.mktemp("door")
    build_gallery(demo.write_dataset(work / "people"), work / "gallery", RecognitionSettings(), workers=1)
    return work / "gallery", demo.write_frames(work / "frames")


class RecordingPublisher(StdoutPublisher):
    def __init__(self):
        super().__init__(io.StringIO())
        self.states, self.cameras = [], []

    def events(self):
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def publish_state(self, state):
        self.states.append(state)

    def publish_camera(self, status):
        self.cameras.append(status)


def test_enrolled_visitor_is_recognized_once_and_a_stranger_is_unknown(scene, engine, liveness):
    gallery_path, frames = scene
    publisher = RecordingPublisher()
    gallery = Gallery.open(gallery_path)
    try:
        loop = DoorLoop(engine, gallery, publisher, LoopSettings(device_id="door1"), 0.36, camera="test",
                        liveness=liveness)
        with FolderSource(frames) as source:
            assert loop.run(source) == len(list(frames.iterdir()))
    finally:
        gallery.close()
    events = publisher.events()
    assert [(e["event_type"], e["name"]) for e in events] == [("recognized", "obama"), ("unknown", None)]
    recognized, unknown = events
    assert recognized["similarity"] >= 0.36 > unknown["similarity"]
    assert recognized["track_id"] != unknown["track_id"]
    assert recognized["device"] == "door1" and recognized["camera"] == "test"
    assert "T" in recognized["timestamp"] and recognized["timestamp"][-6] in "+-"
    assert len(recognized["box"]) == 4
    # 'who is here' went from nobody to obama and back to nobody when he left
    present = [s.present for s in publisher.states]
    assert present[0] == () and ("obama",) in present and present[-1] == ()
    assert publisher.states[-1].last_person == "obama"


class CountingEngine:
    """The engine, with the size of every image it searched for faces."""

    def __init__(self, engine):
        self.engine, self.searched = engine, []

    def detect(self, image):
        self.searched.append(image.shape[:2])
        return self.engine.detect(image)

    def __getattr__(self, name):
        return getattr(self.engine, name)


def test_a_tracked_visitor_is_searched_near_their_face_with_the_same_events(scene, engine, liveness):
    gallery_path, frames = scene
    frame_size = cv2.imread(str(sorted(frames.iterdir())[0])).shape[:2]
    runs = {}
    for near_tracks in (True, False):
        publisher, counting = RecordingPublisher(), CountingEngine(engine)
        settings = LoopSettings.model_validate({"device_id": "door1", "motion": {"near_tracks": near_tracks}})
        with Gallery.open(gallery_path) as gallery, FolderSource(frames) as source:
            loop = DoorLoop(counting, gallery, publisher, settings, 0.36, camera="test", liveness=liveness)
            loop.run(source)
        near = [size for size in counting.searched if size != frame_size]
        assert loop.motion.near == len(near)
        runs[near_tracks] = publisher.events(), near, len(counting.searched)
    (events, near, searches), (whole_events, whole_near, _) = runs[True], runs[False]
    assert [(e["event_type"], e["name"], e["track_id"]) for e in events] == [("recognized", "obama", 1),
                                                                           ("unknown", None, 2)]
    assert [(e["event_type"], e["name"], e["track_id"]) for e in whole_events] == [
        (e["event_type"], e["name"], e["track_id"]) for e in events]
    # faces found in a region come back in the frame's pixels: the same boxes as a whole search
    for event, whole in zip(events, whole_events):
        np.testing.assert_allclose(event["box"], whole["box"], atol=3.0)
    assert whole_near == []
    assert len(near) > searches / 3  # most frames with the visitor: only a region...
    assert max(h * w for h, w in near) <= 0.5 * frame_size[0] * frame_size[1]  # ...at most half the frame


def test_everyone_is_a_stranger_to_an_empty_gallery(scene, engine, liveness, tmp_path):
    from edge.perception.modelset import embedding_model_id

    _, frames = scene
    gallery = Gallery.create(tmp_path / "empty", embedding_model_id(RecognitionSettings()))
    publisher = RecordingPublisher()
    try:
        with FolderSource(frames) as source:
            DoorLoop(engine, gallery, publisher, LoopSettings(), 0.36, liveness=liveness).run(source)
    finally:
        gallery.close()
    assert [(e["event_type"], e["name"]) for e in publisher.events()] == [("unknown", None), ("unknown", None)]


def test_folder_source_reads_images_in_name_order_and_skips_unreadable_files(tmp_path):
    for i, value in enumerate((10, 20, 30)):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((8, 8, 3), value, np.uint8))
    (tmp_path / "01b.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    with FolderSource(tmp_path, fps=5.0) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 20, 30]
    assert [f.time for f in frames] == [0.0, 0.2, 0.6]  # index / fps; the unreadable file kept its slot


def test_sources_by_spec_and_clear_errors(tmp_path):
    assert isinstance(open_source(CameraSettings(source=str(tmp_path))), FolderSource)
    with pytest.raises(SourceError, match="no such folder"):
        open_source(CameraSettings(source=str(tmp_path / "missing")))
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path).__enter__()
    with pytest.raises(SourceError, match="cannot open"):
        open_source(CameraSettings(source="rtsp://user:secret@127.0.0.1:1/none")).__enter__()


class FlakyCamera:
    """A fake camera: fails to open ``open_failures`` times, then gives ``frames_per_life`` frames and dies."""

    name = "flaky"

    def __init__(self, open_failures: int, frames_per_life: int, lives: int):
        self.open_failures, self.frames_per_life, self.lives = open_failures, frames_per_life, lives
        self.opened = self.closed = self.index = 0
        self.left = 0

    def __enter__(self):
        if self.open_failures:
            self.open_failures -= 1
            raise SourceError("no camera")
        self.opened += 1
        self.left = self.frames_per_life
        return self

    def __exit__(self, *exc):
        self.closed += 1

    def read(self):
        if self.left == 0:
            if self.opened >= self.lives:
                return None  # the test's way of ending the run
            raise SourceError("camera unplugged")
        self.left -= 1
        self.index += 1
        return Frame(np.zeros((4, 4, 3), np.uint8), float(self.index), self.index)


def test_a_camera_that_disappears_is_reopened_with_growing_waits_and_its_state_reported():
    camera = FlakyCamera(open_failures=3, frames_per_life=2, lives=3)
    waits, states = [], []
    with Reconnecting(camera, lambda s: states.append("online" if s.online else "offline"), first_delay=1, max_delay=3, sleep=waits.append) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame.index)
    assert frames == [1, 2, 3, 4, 5, 6]
    assert waits == [1, 2, 3]  # doubling, capped
    assert states == ["offline", "online", "offline", "online", "offline", "online"]
    assert camera.closed == 3


def test_a_stop_cuts_a_reconnect_wait_short():
    import threading
    import time

    camera = FlakyCamera(open_failures=1000, frames_per_life=0, lives=1)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with Reconnecting(camera, first_delay=30, max_delay=30, stop=stop) as source:
        assert source.read() is None
    assert time.monotonic() - started < 2.0  # not the 30 s wait


@pytest.mark.slow
def test_sigterm_ends_edge_run_at_once_while_it_waits_for_a_camera(scene, tmp_path):
    """systemd's stop: within a second, not at the end of a reconnect wait (up to 30 s)."""
    import signal
    import subprocess
    import sys
    import time

    gallery_path, _ = scene
    run = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--gallery", str(gallery_path),
                            "--source", "rtsp://127.0.0.1:9/nothing"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "retrying in 4 s" not in (line := run.stderr.readline()):  # the third wait: 4 s
            assert line and time.monotonic() < deadline, "edge run never started waiting for the camera"
        time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        run.wait(30)
        took = time.monotonic() - sent
    finally:
        run.kill()
    assert run.returncode == 0 and took < 1.0, (run.returncode, took)


def test_run_command_rejects_bad_overrides(capsys):
    from edge.cli import main

    assert main(["run", "--mqtt", "http://broker"]) == 2
    assert "mqtt[s]://" in capsys.readouterr().err
    assert main(["run", "--device-id", "bad id!", "--gallery", "/nonexistent"]) == 2
    assert "device_id" in capsys.readouterr().err
    assert main(["run", "--gallery", "/nonexistent/gallery", "--source", "/nonexistent"]) == 2
    assert "not a gallery" in capsys.readouterr().err


def test_validate_config(tmp_path, capsys, monkeypatch):
    from edge.cli import main

    good = tmp_path / "good.toml"
    good.write_text('[mqtt]\nhost = "broker"\nusername = "edge"\npassword = "${EDGE_TEST_PASSWORD}"\n[door]\ndevice_id = "front"\n')
    monkeypatch.setenv("EDGE_TEST_PASSWORD", "hunter2")
    assert main(["validate-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "hunter2" not in out and '"device_id": "front"' in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[door.decision]\nmin_agreeing = 9\nwindow = 5\n")
    assert main(["validate-config", str(bad)]) == 2
    assert "min_agreeing" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        Config().with_overrides(door={"detect_every": 0})


@pytest.mark.parametrize("recheck, expected", [(1.0, 4), (0.5, 9)])
def test_an_announced_track_is_matched_again_every_recheck_seconds(scene, engine, liveness, tmp_path, recheck,
                                                                  expected):
    """Obama stays 5 s: once recognized (at 0.2 s) he is matched again every `recheck` s of frame time."""
    gallery_path, _ = scene
    frames = demo.write_frames(tmp_path / "frames", visitors=("obama3.jpg",), frames_per_visit=50, empty_frames=0)
    publisher = RecordingPublisher()
    with Gallery.open(gallery_path) as gallery:
        loop = DoorLoop(engine, gallery, publisher, LoopSettings(recheck=recheck), 0.36, liveness=liveness)
        attempts = []
        observe = loop.decisions.observe
        loop.decisions.observe = lambda attempt: attempts.append(attempt.time) or observe(attempt)
        with FolderSource(frames) as source:  # 10 frames a second
            loop.run(source)
    assert [(e["event_type"], e["name"]) for e in publisher.events()] == [("recognized", "obama")]
    announced = attempts[2]  # min_agreeing = 3 attempts, one a frame
    later = [round(t - announced, 1) for t in attempts[3:]]
    assert len(later) == expected and later[0] == pytest.approx(recheck)
    assert all(b - a == pytest.approx(recheck) for a, b in zip(later, later[1:]))


def test_a_folder_played_in_real_time_hands_out_frames_at_their_time(tmp_path):
    frames = demo.write_stills(tmp_path / "f", ("blank",) * 4)
    waits = []
    with FolderSource(frames, fps=10.0, realtime=True, sleep=waits.append) as source:
        while source.read() is not None:
            pass
    assert waits[0] == 0.0 and [round(w, 1) for w in waits[1:]] == [0.1, 0.2, 0.3]  # the fake sleep does not wait


class FastCamera:
    """A fake live camera: a frame every ``interval`` seconds, then a failure or the end."""

    name = "fast"

    def __init__(self, frames: int, interval: float, then: str = "end"):
        self.frames, self.interval, self.then, self.index = frames, interval, then, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def read(self):
        import time

        time.sleep(self.interval)
        if self.index >= self.frames:
            if self.then == "fail":
                raise SourceError("camera unplugged")
            return None
        self.index += 1
        return Frame(np.zeros((4, 4, 3), np.uint8), float(self.index), self.index)


def test_a_slow_reader_of_a_live_camera_gets_the_newest_frame_and_the_count_of_those_dropped():
    import time

    from edge.adapters.camera import NewestFrame

    taken = []
    with NewestFrame(FastCamera(frames=60, interval=0.005)) as source:
        while (frame := source.read()) is not None:
            taken.append((frame.index, frame.dropped))
            time.sleep(0.03)  # the loop is six times slower than the camera
    indexes = [index for index, _ in taken]
    assert indexes == sorted(indexes) and len(taken) < 30
    assert sum(dropped for _, dropped in taken) + len(taken) == 60  # every frame taken or counted
    assert all(index - dropped > previous for (index, dropped), (previous, _) in zip(taken[1:], taken))


def test_a_live_camera_failing_on_its_thread_fails_the_read():
    from edge.adapters.camera import NewestFrame

    with NewestFrame(FastCamera(frames=3, interval=0.001, then="fail")) as source:
        with pytest.raises(SourceError, match="unplugged"):
            while source.read() is not None:
                pass


def test_the_state_counts_the_frames_dropped(scene, engine, liveness):
    gallery_path, _ = scene
    publisher = RecordingPublisher()
    with Gallery.open(gallery_path) as gallery:
        loop = DoorLoop(engine, gallery, publisher, LoopSettings(), 0.36, liveness=liveness)
        blank = np.full((480, 640, 3), 128, np.uint8)
        loop.process(Frame(blank, 0.0, 0, dropped=4))
        loop._publish_state(0.1, force=True)
    assert publisher.states[-1].frames_dropped == 4
