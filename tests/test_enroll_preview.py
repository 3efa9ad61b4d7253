"""`edge enroll` with a person at the keys: q saves what was taken, Esc and Ctrl-C store nothing.

The window runs on a real X server (Xvfb) with keys typed by xdotool; the
terminal keys go through a real pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import termios
import threading
from pathlib import Path

import numpy as np
import pytest

from display import VirtualDisplay, required_binary
from edge.cli import main
from edge.cli.common import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from edge.cli.preview import ACCEPTED_BGR, REJECTED_BGR, TerminalKeys, TkWindow, annotate
from edge.perception.modelset import embedding_model_id
from edge.perception.settings import RecognitionSettings
from edge import demo
from edge.enrollment.settings import EnrollSettings
from edge.enrollment.session import EnrollmentSession, Verdict, collect
from edge.adapters.camera import FolderSource
from edge.gallery.store import Gallery
from edge.faces import BBox, Face

REPO = Path(__file__).resolve().parents[1]
WAIT = 120.0
"""Seconds a subprocess may take to reach a step (model loading and numba compiling included)."""


@pytest.fixture
def gallery(tmp_path):
    path = tmp_path / "g"
    Gallery.create(path, embedding_model_id(RecognitionSettings())).close()
    return path


def enrolled(path: Path) -> dict[str, int]:
    g = Gallery.open(path)
    try:
        return g.identities()
    finally:
        g.close()


def two_samples_then_nobody(folder: Path, blanks: int = 400) -> Path:
    """Two good, different samples of Obama (photos the liveness models take for live), then a long
    wait with nobody in view."""
    demo.write_stills(folder, ("obama.jpg", "obama3.jpg", "blank"))
    blank = folder / "00002.png"
    for index in range(3, 3 + blanks):
        os.link(blank, folder / f"{index:05d}.png")
    return folder


@pytest.fixture(scope="module")
def display():
    with VirtualDisplay(required_binary("Xvfb")) as running:
        yield running


def face(x1, y1, x2, y2) -> Face:
    w, h = x2 - x1, y2 - y1
    marks = tuple((x1 + fx * w, y1 + fy * h) for fx, fy in ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8)))
    return Face(BBox(x1, y1, x2, y2), 0.99, marks)


# --- the picture -------------------------------------------------------------


def test_annotate_scales_wide_frames_and_draws_the_boxes_in_the_verdicts_colour():
    frame = np.full((1080, 1920, 3), 128, np.uint8)
    verdict = Verdict(True, "sample taken", 1, 3, (face(400, 200, 800, 600),))
    picture = annotate(frame, verdict)
    assert picture.shape == (540, 960, 3) and frame.mean() == 128  # the frame itself is untouched
    assert tuple(picture[100, 300]) == ACCEPTED_BGR  # box edge: (400, 200) / 2, 2 px wide
    assert tuple(picture[200, 300]) == (128, 128, 128)  # inside the box
    assert picture[-28:, :300].max() > 0 and picture[-28:, 700:].max() == 0  # status text on a black band
    rejected = annotate(frame[:480, :640], Verdict(False, "too blurred: hold still", 1, 3, (face(100, 100, 300, 300),)))
    assert rejected.shape == (480, 640, 3) and tuple(rejected[100, 200]) == REJECTED_BGR


# --- collect with someone at the keys -----------------------------------------


class ScriptedKeys:
    """A fake preview: presses ``key`` once ``after`` samples have been taken."""

    hint = "scripted"

    def __init__(self, key: str, after: int) -> None:
        self.key, self.after, self.seen = key, after, []

    def show(self, image, verdict):
        self.seen.append(verdict.reason)
        return self.key if verdict.taken >= self.after else None

    def close(self):
        pass


@pytest.mark.parametrize("key, state, kept", [("save", "complete", 2), ("cancel", "cancelled", 2)])
def test_a_key_ends_collecting_early(engine, liveness, tmp_path, key, state, kept):
    frames = two_samples_then_nobody(tmp_path / "frames", blanks=3)
    session = EnrollmentSession("Barack", EnrollSettings(samples=5), 0.36, started_at=0.0)
    keys = ScriptedKeys(key, after=2)
    with FolderSource(frames) as source:
        assert collect(engine, source, session, keys.show, clock=lambda: 1.0, liveness=liveness) == state
    assert keys.seen == ["sample taken", "sample taken"] and len(session.embeddings) == kept


def test_saving_before_any_sample_stops_with_nothing_to_store():
    session = EnrollmentSession("x", EnrollSettings(samples=3), 0.36, started_at=0.0)
    session.finish()
    assert session.state == "stopped"


# --- the terminal -------------------------------------------------------------


def test_terminal_keys_read_q_without_enter_and_restore_the_terminal():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        keys = TerminalKeys(fd=slave)
        blank = Verdict(False, "no face", 0, 3)
        assert termios.tcgetattr(slave)[3] & (termios.ECHO | termios.ICANON) == 0
        assert keys.show(None, blank) is None
        os.write(master, b"x")
        assert keys.show(None, blank) is None
        os.write(master, b"q")
        assert keys.show(None, blank) == "save"
        assert keys.show(None, blank) is None  # each press is answered once
        keys.close()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_terminal_preview_needs_a_terminal(tmp_path, gallery, capsys):
    frames = demo.write_stills(tmp_path / "frames", ("obama.jpg",))
    code = main(["enroll", "--name", "x", "--source", str(frames), "--gallery", str(gallery), "--preview", "terminal"])
    assert code == EXIT_USAGE and "--preview terminal" in capsys.readouterr().err


class Enrolling:
    """`edge enroll` in a subprocess, its stderr lines collected as they come."""

    def __init__(self, argv: list[str], stdin=None, env: dict | None = None) -> None:
        # Ctrl-C as in a terminal: a shell that runs the tests in the background (`make test &`)
        # starts them with SIGINT ignored, which Python and the child would keep.
        self.process = subprocess.Popen([sys.executable, "-m", "edge.cli", "enroll", *map(str, argv)],
                                        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        cwd=REPO, env=env, text=True,
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with self.process.stderr:
            for line in self.process.stderr:
                self.lines.put(line)

    def wait_for(self, text: str, count: int = 1) -> None:
        seen = 0
        while seen < count:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                self.process.kill()
                pytest.fail(f"no {text!r} from edge enroll; stderr so far: {self.stderr}")
            self.stderr.append(line)
            seen += text in line

    def finish(self) -> tuple[int, str]:
        try:
            self.process.wait(timeout=WAIT)  # its stdout is one short line: no pipe fills up
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        with self.process.stdout:
            out = self.process.stdout.read()
        self._reader.join(timeout=WAIT)
        while not self.lines.empty():
            self.stderr.append(self.lines.get())
        return self.process.returncode, out


@pytest.mark.slow
def test_q_in_the_terminal_saves_the_samples_taken_so_far(tmp_path, gallery):
    frames = two_samples_then_nobody(tmp_path / "frames")
    master, slave = os.openpty()
    try:
        run = Enrolling(["--name", "Barack", "--source", frames, "--gallery", gallery, "--samples", "5",
                         "--preview", "terminal"], stdin=slave)
        run.wait_for("press q")
        run.wait_for("sample taken", count=2)
        os.write(master, b"q")
        code, out = run.finish()
    finally:
        os.close(master)
        os.close(slave)
    assert code == EXIT_OK, run.stderr
    assert out.strip() == "enrolled Barack: 2 samples (saved early; 5 asked)"
    assert enrolled(gallery) == {"Barack": 2}


@pytest.mark.slow
def test_ctrl_c_stores_nothing_and_gives_the_terminal_back(tmp_path, gallery):
    frames = two_samples_then_nobody(tmp_path / "frames")
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        run = Enrolling(["--name", "Barack", "--source", frames, "--gallery", gallery, "--samples", "5",
                         "--preview", "terminal"], stdin=slave)
        run.wait_for("sample taken", count=2)
        run.process.send_signal(signal.SIGINT)
        code, out = run.finish()
        after = termios.tcgetattr(slave)
    finally:
        os.close(master)
        os.close(slave)
    assert code == 130 and out == ""
    assert after == before
    assert enrolled(gallery) == {}


# --- the window ----------------------------------------------------------------


@pytest.mark.slow
def test_window_shows_the_frame_and_answers_its_keys(display, monkeypatch):
    monkeypatch.setenv("DISPLAY", display.name)
    window = TkWindow("edge enroll: test")
    try:
        frame = np.full((480, 640, 3), (200, 100, 50), np.uint8)  # BGR
        verdict = Verdict(True, "sample taken", 1, 3, (face(100, 100, 300, 300),))
        assert window.show(frame, verdict) is None
        assert window.shown_pixel(320, 50) == (50, 100, 200)  # shown as RGB
        assert window.shown_pixel(200, 100) == ACCEPTED_BGR[::-1]
        window._root.event_generate("<KeyPress>", keysym="q")
        assert window.show(frame, verdict) == "save"
        assert window.show(frame, verdict) is None
        window._root.event_generate("<KeyPress>", keysym="Escape")
        window._root.event_generate("<KeyPress>", keysym="q")
        assert window.show(frame, verdict) == "cancel"  # a q after Esc does not undo the cancel
    finally:
        window.close()


def test_window_preview_without_a_display_is_a_usage_error(tmp_path, gallery, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    frames = demo.write_stills(tmp_path / "frames", ("obama.jpg",))
    code = main(["enroll", "--name", "x", "--source", str(frames), "--gallery", str(gallery), "--preview", "window"])
    assert code == EXIT_USAGE and "cannot open a window" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("key, code, outcome, stored", [
    ("q", EXIT_OK, "complete", {"Barack": 2}),
    ("Escape", EXIT_INPUT, "cancelled", {}),
])
def test_keys_typed_in_the_window(display, tmp_path, gallery, key, code, outcome, stored):
    xdotool = required_binary("xdotool")
    frames = two_samples_then_nobody(tmp_path / "frames")
    env = {**os.environ, "DISPLAY": display.name}
    run = Enrolling(["--name", "Barack", "--source", frames, "--gallery", gallery, "--samples", "5", "--json"], env=env)
    run.wait_for("press q in the window")  # --preview auto chose the window
    run.wait_for("sample taken", count=2)
    subprocess.run([xdotool, "search", "--sync", "--name", "edge enroll: Barack"], env=env, check=True,
                   capture_output=True, timeout=WAIT)
    subprocess.run([xdotool, "key", key], env=env, check=True, timeout=WAIT)  # the window took the focus
    exit_code, out = run.finish()
    assert exit_code == code, run.stderr
    assert json.loads(out) | {"gallery": None} == {"name": "Barack", "outcome": outcome, "samples": sum(stored.values()),
                                                  "wanted": 5, "gallery": None}
    assert enrolled(gallery) == stored
