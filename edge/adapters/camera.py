"""Where frames come from: a Pi camera, an OpenCV capture, or a folder of images.

Every source is a context manager with one method, ``read() -> Frame | None``
(None: the source has ended, e.g. the last file of a folder or the end of a
video file). A camera that fails raises SourceError from ``read``; the
runtime then closes it and reopens it with backoff (``Reconnecting``), so
the process never dies of a camera that goes away.

``open_source(spec)`` picks the kind from the spec string:

    picamera            the Pi camera (picamera2; the ``pi`` extra, apt on Raspberry Pi OS)
    0, 1, ...           a USB camera by OpenCV index
    rtsp://..., http://...  a network stream
    a folder            the images in it, in name order (tests, replays)
    a file              a video file

Frames are BGR uint8 (H, W, 3) with a timestamp in seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.adapters.settings import CameraSettings
from edge.frames import Frame, FrameSource
from edge.messages import CameraStatus
from edge.imageio import IMAGE_SUFFIXES, ImageError, load_image

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source that cannot be opened or stopped delivering frames."""


class FolderSource:
    """The images of a folder in name order, one frame each, then the end.

    ``fps`` sets the frame times (index / fps), so that a replay has the
    timing of a camera however fast it is processed; with ``realtime`` a
    frame is also not handed out before its time (counted from the first
    read), as a camera would deliver it. Unreadable files are logged and
    skipped.
    """

    def __init__(self, folder: Path, fps: float = 10.0, realtime: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.folder = Path(folder)
        self.name = self.folder.name
        self.fps, self.realtime, self._sleep = fps, realtime, sleep
        self._files: list[Path] = []
        self._next = 0
        self._started: float | None = None

    def __enter__(self) -> FolderSource:
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: not a folder")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"{self.folder}: no images")
        self._next = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self._files = []

    def read(self) -> Frame | None:
        while self._next < len(self._files):
            index, path = self._next, self._files[self._next]
            self._next += 1
            if self.realtime:
                self._started = time.monotonic() if self._started is None else self._started
                self._sleep(max(0.0, self._started + index / self.fps - time.monotonic()))
            try:
                return Frame(load_image(path), index / self.fps, index)
            except ImageError as exc:
                log.warning("skipping frame: %s", exc)
        return None


class OpenCvSource:
    """A USB camera (index), a network stream (URL) or a video file, through cv2.VideoCapture.

    A camera or stream that returns no frame raises SourceError; a video
    file that returns no frame has ended (None).
    """

    def __init__(self, spec: str, width: int | None = None, height: int | None = None) -> None:
        self.spec = spec
        self.name = spec.rsplit("@", 1)[-1]  # never show a URL's credentials
        self.is_file = not spec.isdigit() and "://" not in spec
        self.width, self.height = width, height
        self._capture = None
        self._index = 0

    def __enter__(self) -> OpenCvSource:
        import cv2

        target = int(self.spec) if self.spec.isdigit() else self.spec
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open video source {self.name!r}")
        if self.width and self.height:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        self._capture = capture
        self._index = 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def read(self) -> Frame | None:
        if self._capture is None:
            raise SourceError(f"video source {self.name!r} is not open")
        ok, image = self._capture.read()
        if not ok or image is None:
            if self.is_file:
                return None
            raise SourceError(f"video source {self.name!r} stopped delivering frames")
        frame = Frame(image, time.monotonic(), self._index)
        self._index += 1
        return frame


class PiCameraSource:
    """The Raspberry Pi camera through picamera2 (imported only when opened)."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        self.name = "picamera"
        self.width, self.height = width, height
        self._camera = None
        self._index = 0

    def __enter__(self) -> PiCameraSource:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                "picamera2 is not installed: on Raspberry Pi OS `apt install python3-picamera2` "
                "and make the venv with --system-site-packages (make does this on a Pi)"
            ) from exc
        try:
            camera = Picamera2()
            # "RGB888" in libcamera's naming is B, G, R byte order: OpenCV's BGR.
            camera.configure(camera.create_video_configuration(main={"size": (self.width, self.height), "format": "RGB888"}))
            camera.start()
        except Exception as exc:  # picamera2 raises RuntimeError/IndexError/OSError variously
            raise SourceError(f"cannot open the Pi camera: {exc}") from exc
        self._camera = camera
        self._index = 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            finally:
                self._camera = None

    def read(self) -> Frame | None:
        if self._camera is None:
            raise SourceError("the Pi camera is not open")
        try:
            image = self._camera.capture_array("main")
        except Exception as exc:
            raise SourceError(f"the Pi camera stopped delivering frames: {exc}") from exc
        frame = Frame(np.ascontiguousarray(image[:, :, :3]), time.monotonic(), self._index)
        self._index += 1
        return frame


class NewestFrame:
    """A live camera read on a thread of its own; read() hands out only the newest frame.

    A door must act on what is in front of it now: when the loop is slower
    than the camera, the frames it had no time for are dropped (counted in
    ``Frame.dropped``), not queued, so what it decides is never more than
    one processed frame behind. The camera's errors come out of read() (so
    Reconnecting can reopen it); opening and closing are the camera's own.
    ``stop`` (set e.g. by SIGTERM) makes a read() that waits return None at
    once, even from a stream that has stalled without an error.
    """

    POLL = 0.1
    """Seconds between looks at ``stop`` while waiting for a frame."""

    def __init__(self, source: FrameSource, stop: threading.Event | None = None) -> None:
        self.source = source
        self.name = source.name
        self._stop = stop
        self._ready = threading.Condition()
        self._newest: Frame | None = None
        self._dropped = 0
        self._error: SourceError | None = None
        self._ended = False
        self._opened = False
        self._running = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NewestFrame:
        # Opened on the reader's thread too: a camera that takes the connection and never answers
        # blocks cv2.VideoCapture for its timeout (30 s), which must not hold up a stop.
        self._newest, self._dropped, self._error, self._ended, self._opened = None, 0, None, False, False
        self._running = True
        self._thread = threading.Thread(target=self._open_and_read, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        with self._ready:
            while not (self._opened or self._error is not None):
                if self._stop is not None and self._stop.is_set():
                    self._running, self._thread = False, None  # it closes the camera if it ever opens
                    raise SourceError(f"stopped while opening camera {self.name!r}")
                self._ready.wait(self.POLL)
            if not self._opened:  # (an error after opening comes out of read(), and __exit__ closes)
                self._running, self._thread = False, None
                raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(0.2)  # a frame in flight; a stalled stream's read may block for its timeout (30 s)
            if thread.is_alive():  # stuck in a read of a stalled stream: closing under it is not safe
                log.warning("camera %s still blocked in a read; left to close when the process ends", self.name)
                return
        self.source.__exit__(*exc)

    def read(self) -> Frame | None:
        with self._ready:
            while not (self._newest is not None or self._error is not None or self._ended):
                if self._stop is not None and self._stop.is_set():
                    return None
                self._ready.wait(self.POLL)
            if self._newest is not None:
                frame, self._newest = self._newest, None
                dropped, self._dropped = self._dropped, 0
                return Frame(frame.image, frame.time, frame.index, dropped)
            if self._error is not None:
                raise self._error
            return None

    def _open_and_read(self) -> None:
        try:
            self.source.__enter__()
        except SourceError as exc:
            with self._ready:
                self._error = exc
                self._ready.notify_all()
            return
        if not self._running:  # given up while it opened
            self.source.__exit__(None, None, None)
            return
        with self._ready:
            self._opened = True
            self._ready.notify_all()
        self._read_all()

    def _read_all(self) -> None:
        while self._running:
            try:
                frame = self.source.read()
            except SourceError as exc:
                with self._ready:
                    self._error = exc
                    self._ready.notify_all()
                return
            with self._ready:
                if frame is None:
                    self._ended = True
                elif self._newest is not None:
                    self._dropped += 1  # not taken in time: the newer one replaces it
                self._newest = frame if frame is not None else self._newest
                self._ready.notify_all()
            if frame is None:
                return


def open_source(settings: CameraSettings, stop: threading.Event | None = None) -> FrameSource:
    """The source ``settings.source`` names (see the module docstring); not yet opened.
    ``stop`` cuts a live camera's wait for a frame short (NewestFrame)."""
    spec, width, height, fps = settings.source, settings.frame_width, settings.frame_height, settings.folder_fps
    if spec == "picamera":
        return NewestFrame(PiCameraSource(width, height), stop)
    if spec.isdigit() or "://" in spec:
        return NewestFrame(OpenCvSource(spec, width, height), stop)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path, fps, settings.folder_realtime)
    if path.is_file():
        return OpenCvSource(spec)
    raise SourceError(f"{spec}: no such folder, file or camera (use picamera, a camera index or a URL)")


class Reconnecting:
    """Keeps a camera going: when it fails, close it, wait, reopen it; forever.

    Waits grow from ``first_delay`` doubling up to ``max_delay`` seconds and
    reset after a frame arrives. ``on_state(CameraStatus)`` hears the camera
    come and go (for the published camera state).
    ``sleep`` is injectable for tests. The end of a file or folder is
    passed through as None; only errors reconnect. ``stop`` (an Event, set
    e.g. by a SIGTERM handler) cuts a wait short: read() then returns None,
    so the door stops at once whatever the camera is doing.
    """

    def __init__(
        self,
        source: FrameSource,
        on_state: Callable[[CameraStatus], None] = lambda status: None,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.name = source.name
        self._on_state = on_state
        self._first_delay, self._max_delay = first_delay, max_delay
        self._sleep = sleep
        self._stop = stop
        self._open = False

    def __enter__(self) -> Reconnecting:
        self._reopen(initial=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def read(self) -> Frame | None:
        while self._open:
            try:
                return self.source.read()
            except SourceError as exc:
                log.warning("camera %s failed: %s", self.name, exc)
                self._on_state(CameraStatus(False, str(exc)))
                self._close()
                self._reopen(initial=False)
        return None  # stopped while waiting for the camera

    def _reopen(self, initial: bool) -> None:
        delay = self._first_delay
        while self._stop is None or not self._stop.is_set():
            try:
                self.source.__enter__()
                self._open = True
                self._on_state(CameraStatus(True))
                return
            except SourceError as exc:
                if initial:
                    self._on_state(CameraStatus(False, str(exc)))
                    initial = False
                log.warning("camera %s unavailable (%s); retrying in %.0f s", self.name, exc, delay)
                if self._stop is not None:
                    self._stop.wait(delay)
                else:
                    self._sleep(delay)
                delay = min(delay * 2, self._max_delay)

    def _close(self) -> None:
        if self._open:
            self._open = False
            try:
                self.source.__exit__(None, None, None)
            except Exception as exc:  # a dead camera may fail to close too
                log.warning("closing camera %s: %s", self.name, exc)
