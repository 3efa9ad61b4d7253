"""A real RTSP camera for tests: an H.264 video of faces served by GStreamer's RTSP server.

    require_rtsp()                                   # skips where the Debian packages are missing
    scene = make_video(tmp_path / "video")           # obama3 (enrolled), then biden (a stranger), 30 fps
    with RtspServer(scene.video, tmp_path / "server") as camera:
        ... edge run --source camera.url ...         # rtsp://127.0.0.1:PORT/door
        camera.stop(); camera.start()                # a restart keeps the port
        camera.plays                                 # when each client's stream started playing

The video is made with ffmpeg (libx264) from frames like ``edge.demo.write_frames``
writes: a scene (the enrolled person walks past, an empty doorway, the stranger
walks past, an empty doorway) repeated until the video is ``seconds`` long,
so the stream runs as long as a test needs. Each client gets the video from
its start (the media is not shared), played at real time (the server's sinks
follow the clock).

The server is this file run by the SYSTEM Python (``/usr/bin/python3``, which
has PyGObject; the venv does not): ``/usr/bin/python3 tests/rtsp.py serve VIDEO
PORT /door``. It reports on stdout, one JSON line each: ``{"ready": PORT}`` once
it listens, and ``{"playing": NS}`` when a client's stream starts playing, NS
being when the stream's first frame is due at the server's sinks (the
pipeline's base time plus the first frame's running time) on GStreamer's
system clock, which is CLOCK_MONOTONIC (``time.monotonic_ns()``): frame k of
the video leaves the server at ``NS + k / fps`` seconds. It ends when its
stdin closes (the test process died) or on SIGTERM.

Debian packages: ``apt-get install ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad``.
Where they are missing the tests that need them are skipped, unless
EDGE_REQUIRE_RTSP=1 (CI), which makes that a failure.

Only the standard library is imported at the top: the system Python runs this
file too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = ("ffmpeg", "python3-gi", "gir1.2-gst-rtsp-server-1.0", "gstreamer1.0-plugins-base",
            "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-bad")
APT_LINE = "apt-get install " + " ".join(PACKAGES)
ELEMENTS = ("filesrc", "qtdemux", "h264parse", "rtph264pay")
"""The GStreamer elements of the served pipeline."""

FPS = 30
START_TIMEOUT = 10.0
"""Seconds to wait for the server to accept connections."""

_CHECK = f"""
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in {ELEMENTS!r} if Gst.ElementFactory.find(e) is None]
print(" ".join(missing))
"""


def missing() -> list[str]:
    """What this machine lacks for serving RTSP (empty: nothing)."""
    lacking = []
    if shutil.which("ffmpeg") is None:
        lacking.append("ffmpeg")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return lacking + [SYSTEM_PYTHON]
    try:
        check = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return lacking + ["a GStreamer that answers (the check timed out)"]
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return lacking + [f"PyGObject with GStreamer's RTSP server ({last})"]
    return lacking + [f"GStreamer element {e}" for e in check.stdout.split()]


_missing_cache: list[str] | None = None


def require_rtsp() -> None:
    """Skip the test (or fail it, with EDGE_REQUIRE_RTSP=1) where ffmpeg or GStreamer's RTSP server is missing."""
    global _missing_cache
    import pytest

    if _missing_cache is None:
        _missing_cache = missing()
    if not _missing_cache:
        return
    what = ", ".join(_missing_cache)
    if os.environ.get("EDGE_REQUIRE_RTSP") == "1":
        pytest.fail(f"EDGE_REQUIRE_RTSP=1 but this machine lacks {what} ({APT_LINE})")
    pytest.skip(f"no RTSP camera here: lacks {what} ({APT_LINE})")


@dataclass(frozen=True)
class Visit:
    """Who is in view from ``first`` to ``last`` frame (inclusive) of each repeat of the scene."""

    photo: str
    first: int
    last: int


@dataclass(frozen=True)
class Scene:
    """A video made by ``make_video``: the scene of ``scene_frames`` frames repeats for the whole video."""

    video: Path
    fps: int
    scene_frames: int
    frames: int
    size: tuple[int, int]
    visits: tuple[Visit, ...] = ()

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def make_video(
    directory: Path,
    visitors: tuple[str, ...] = ("obama3.jpg", "biden.jpg"),
    frames_per_visit: int = 45,
    empty_frames: int = 30,
    lead_in: int = 0,
    seconds: float = 120.0,
    size: tuple[int, int] | None = None,
    fps: int = FPS,
) -> Scene:
    """An H.264 MP4 of the door scene at ``fps``, at least ``seconds`` long, in ``directory``.

    The scene: ``lead_in`` empty frames, then for each visitor
    ``frames_per_visit`` frames of them walking past and ``empty_frames`` of
    an empty doorway (``edge.demo.write_frames``), at 640x480 or scaled to
    ``size``; a keyframe every second and no B-frames, as a camera sends.
    Returns the Scene: the video, its frame counts and the visits' frames.
    """
    from edge import demo

    directory = Path(directory)
    frames = directory / "frames"
    if frames.exists():
        shutil.rmtree(frames)
    parts = []
    if lead_in:
        parts.append(demo.write_stills(directory / "lead_in", ("blank",) * lead_in))
    parts.append(demo.write_frames(directory / "visits", visitors=visitors, frames_per_visit=frames_per_visit,
                                   empty_frames=empty_frames))
    frames.mkdir(parents=True)
    index = 0
    for part in parts:
        for png in sorted(part.glob("*.png")):
            png.rename(frames / f"{index:05d}.png")
            index += 1
        part.rmdir()
    scene_frames = index
    visits = tuple(Visit(photo, lead_in + k * (frames_per_visit + empty_frames),
                         lead_in + k * (frames_per_visit + empty_frames) + frames_per_visit - 1)
                   for k, photo in enumerate(visitors))
    width, height = size or demo.FRAME_SIZE
    scene = directory / "scene.mp4"
    _ffmpeg("-framerate", str(fps), "-i", str(frames / "%05d.png"),
            "-vf", f"scale={width}:{height}", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-bf", "0", "-g", str(fps), "-r", str(fps), str(scene))
    repeats = max(1, -(-round(seconds * fps) // scene_frames))
    listing = directory / "scenes.txt"
    listing.write_text(f"file '{scene}'\n" * repeats)
    video = directory / "door.mp4"
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(video))
    shutil.rmtree(frames)
    return Scene(video, fps, scene_frames, scene_frames * repeats, (width, height), visits)


def _ffmpeg(*args: str) -> None:
    done = subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {done.stderr[-2000:]}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """GStreamer's RTSP server on 127.0.0.1:``port`` serving ``video`` at ``rtsp://127.0.0.1:PORT/door``.

    ``stop``/``start`` keep the port. ``plays`` lists, for each stream
    started since the last ``start``, the server's base time in seconds of
    ``time.monotonic()`` (frame k leaves the server ``k / fps`` after it).
    """

    def __init__(self, video: Path, directory: Path, path: str = "/door", port: int | None = None) -> None:
        self.video = Path(video)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.log = self.directory / "rtsp-server.log"
        self.process: subprocess.Popen[str] | None = None
        self.plays: list[float] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections on its port."""
        if self.process is not None:
            raise RuntimeError("RTSP server already running")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with self._cond:
                self.plays = []
            with open(self.log, "a") as log:
                self.process = subprocess.Popen(
                    [SYSTEM_PYTHON, str(Path(__file__).resolve()), "serve", str(self.video), str(self.port), self.path],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                    env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
                )
            ready = threading.Event()
            self._reader = threading.Thread(target=self._read, args=(self.process, ready), daemon=True)
            self._reader.start()
            while time.monotonic() < deadline and self.process.poll() is None:
                if ready.wait(0.05) and self._accepts():
                    return
            # Exited (e.g. the port still held by the last run) or too slow: retry until the deadline.
            self._end(signal.SIGKILL)
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the RTSP server did not start on port {self.port}:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (SIGTERM; its clients' connections close); no-op if stopped."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def wait_for_play(self, count: int = 1, timeout: float = 30.0) -> float:
        """The ``count``-th play's base time (time.monotonic() seconds), waiting for it."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.plays) >= count, timeout)
            if len(self.plays) < count:
                raise AssertionError(f"{len(self.plays)} of {count} streams played; server log:\n"
                                     f"{self.log_text()[-2000:]}")
            return self.plays[count - 1]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _read(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if "ready" in report:
                ready.set()
            elif "playing" in report:
                with self._cond:
                    if self.process is process:
                        self.plays.append(report["playing"] / 1e9)
                        self._cond.notify_all()

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _end(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdin:
            process.stdin.close()
        if self._reader is not None:
            self._reader.join(5)

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def serve(video: str, port: int, path: str) -> None:
    """The server itself (run by the system Python): serve ``video`` at ``path`` until stdin closes or SIGTERM."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    loop = GLib.MainLoop()

    def say(**report: object) -> None:
        print(json.dumps(report), flush=True)

    def report_when_playing(media: GstRtspServer.RTSPMedia, first: dict) -> bool:
        pipeline = media.get_element().get_parent()
        clock = pipeline.get_clock() if pipeline is not None else None
        if clock is None or pipeline.get_state(0)[1] != Gst.State.PLAYING or "running" not in first:
            return True  # not yet: look again in a millisecond
        # Frame k (counted from the stream's first) is due at the sinks at base + first running time + k / fps.
        say(playing=pipeline.get_base_time() + first["running"], clock=clock.get_time(), monotonic=time.monotonic_ns())
        return False

    def on_state(media: GstRtspServer.RTSPMedia, state: int, first: dict) -> None:
        if state == Gst.State.PLAYING and not first.get("reported"):
            first["reported"] = True
            GLib.timeout_add(1, report_when_playing, media, first)

    def on_first_buffer(pad: Gst.Pad, info: Gst.PadProbeInfo, first: dict) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        segment = pad.get_sticky_event(Gst.EventType.SEGMENT, 0)
        if buffer is None or segment is None or buffer.pts == Gst.CLOCK_TIME_NONE:
            return Gst.PadProbeReturn.OK
        first["running"] = segment.parse_segment().to_running_time(Gst.Format.TIME, buffer.pts)
        return Gst.PadProbeReturn.REMOVE

    def on_configure(factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        first: dict = {}
        pay = media.get_element().get_by_name("pay0")
        pay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_first_buffer, first)
        media.connect("new-state", on_state, first)

    factory = GstRtspServer.RTSPMediaFactory()
    quoted = '"' + video.replace("\\", "\\\\").replace('"', '\\"') + '"'
    factory.set_launch(f"( filesrc location={quoted} ! qtdemux ! h264parse "
                       "! rtph264pay name=pay0 pt=96 config-interval=-1 )")
    factory.set_shared(False)  # each client gets the video from its start
    factory.connect("media-configure", on_configure)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")

    def quit_loop(*_: object) -> bool:
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_loop)
    GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.PRIORITY_DEFAULT,
                      GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR, quit_loop)
    say(ready=port)
    loop.run()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(f"usage: {SYSTEM_PYTHON} {sys.argv[0]} serve VIDEO PORT PATH")
