"""What `edge enroll` shows while it collects samples, and the keys it listens to.

    preview = open_preview("auto", title="edge enroll: alice")
    action = preview.show(image, verdict)     # once per frame: None, 'save' or 'cancel'
    preview.close()

Kinds (``edge enroll --preview KIND``):

    window    the camera frame with the face boxes and the frame's verdict in a
              Tk window (needs a display and tkinter, python3-tk on Raspberry Pi
              OS); q saves, Esc or closing the window cancels
    terminal  no picture; q typed in the terminal saves (standard input must be a terminal)
    none      no keys: enrollment ends when all samples are collected
    auto      window where one can be opened, else terminal where standard
              input is one, else none

'save' keeps the samples taken so far; Ctrl-C in the terminal cancels in
every kind. The pip OpenCV is headless, hence Tk for the window: it comes
with Python and needs nothing else installed.
"""

from __future__ import annotations

import logging
import os
import select
import sys
from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np

from edge.enrollment.session import Verdict

log = logging.getLogger(__name__)

PREVIEW_MAX_WIDTH = 960
"""Pixels: wider frames are scaled down to this for the window."""

ACCEPTED_BGR, REJECTED_BGR = (60, 200, 60), (0, 140, 255)


class PreviewError(RuntimeError):
    """The asked-for preview cannot run here (no display, no terminal)."""


class Preview(Protocol):
    """Shows each frame with its verdict; answers 'save', 'cancel' or None (go on)."""

    hint: str

    def show(self, image: np.ndarray, verdict: Verdict) -> str | None: ...

    def close(self) -> None: ...


class NoPreview:
    hint = "Ctrl-C cancels"

    def show(self, image: np.ndarray, verdict: Verdict) -> str | None:
        return None

    def close(self) -> None:
        pass


class TerminalKeys:
    """Reads keys typed in the terminal without waiting for Enter; q saves.

    The terminal is put in cbreak mode (no echo, no line buffering; Ctrl-C
    still interrupts) and restored by ``close``.
    """

    hint = "press q to save the samples taken so far, Ctrl-C to cancel"

    def __init__(self, fd: int | None = None) -> None:
        import termios
        import tty

        try:
            fd = sys.stdin.fileno() if fd is None else fd
        except (AttributeError, OSError, ValueError) as exc:
            raise PreviewError(f"standard input has no file descriptor ({exc})") from None
        if not os.isatty(fd):
            raise PreviewError("standard input is not a terminal")
        self._fd, self._termios = fd, termios
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)

    def show(self, image: np.ndarray, verdict: Verdict) -> str | None:
        action = None
        while select.select([self._fd], [], [], 0)[0]:
            typed = os.read(self._fd, 64)
            if not typed:  # end of input: nothing more will be typed
                break
            if b"q" in typed.lower():
                action = "save"
        return action

    def close(self) -> None:
        self._termios.tcsetattr(self._fd, self._termios.TCSADRAIN, self._saved)


class TkWindow:
    """The frame, its face boxes and the verdict in a window; q saves, Esc or closing it cancels."""

    hint = "press q in the window to save the samples taken so far, Esc to cancel"

    def __init__(self, title: str) -> None:
        try:
            import tkinter
        except ImportError:
            raise PreviewError("tkinter is not installed (apt install python3-tk)") from None
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as exc:
            raise PreviewError(f"cannot open a window: {exc}") from None
        self._tk = tkinter
        self._root.title(title)
        self._label = tkinter.Label(self._root)
        self._label.pack()
        self._photo = None
        self._pressed: str | None = None
        for key in ("<KeyPress-q>", "<KeyPress-Q>"):
            self._root.bind(key, lambda event: self._press("save"))
        self._root.bind("<Escape>", lambda event: self._press("cancel"))
        self._root.protocol("WM_DELETE_WINDOW", lambda: self._press("cancel"))
        self._root.focus_force()

    def _press(self, action: str) -> None:
        if self._pressed != "cancel":  # a cancel is never overridden by a later q
            self._pressed = action

    def show(self, image: np.ndarray, verdict: Verdict) -> str | None:
        picture = annotate(image, verdict)
        height, width = picture.shape[:2]
        ppm = b"P6 %d %d 255 " % (width, height) + np.ascontiguousarray(picture[..., ::-1]).tobytes()
        if self._photo is None or (self._photo.width(), self._photo.height()) != (width, height):
            self._photo = self._tk.PhotoImage(master=self._root, width=width, height=height, data=ppm, format="PPM")
            self._label.configure(image=self._photo)
        else:
            self._photo.configure(data=ppm, format="PPM")
        self._root.update()
        action, self._pressed = self._pressed, None
        return action

    def shown_pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The RGB colour shown at (x, y) of the window's picture (for tests)."""
        return tuple(self._photo.get(x, y))

    def close(self) -> None:
        try:
            self._root.destroy()
        except self._tk.TclError:
            pass


def annotate(image: np.ndarray, verdict: Verdict, max_width: int = PREVIEW_MAX_WIDTH) -> np.ndarray:
    """A copy of the BGR frame, scaled to at most ``max_width`` wide, with the
    face boxes (green when the frame gave a sample) and a status line."""
    scale = min(1.0, max_width / image.shape[1])
    if scale < 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        picture = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    else:
        picture = image.copy()
    colour = ACCEPTED_BGR if verdict.accepted else REJECTED_BGR
    for face in verdict.faces:
        box = face.box.scaled(scale)
        x1, y1, x2, y2 = round(box.x1), round(box.y1), round(box.x2), round(box.y2)
        cv2.rectangle(picture, (x1, y1), (x2, y2), colour, 2)
    band = 28
    cv2.rectangle(picture, (0, picture.shape[0] - band), (picture.shape[1], picture.shape[0]), (0, 0, 0), -1)
    status = f"{verdict.taken}/{verdict.wanted}  {verdict.reason}"
    cv2.putText(picture, status.encode("ascii", "replace").decode(), (8, picture.shape[0] - 9),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
    return picture


PREVIEWS: dict[str, Callable[[str], Preview]] = {
    "window": TkWindow,
    "terminal": lambda title: TerminalKeys(),
    "none": lambda title: NoPreview(),
}
PREVIEW_KINDS = ("auto", *PREVIEWS)


def open_preview(kind: str, title: str) -> Preview:
    """The preview of that kind (PreviewError if it cannot run here); 'auto' takes the first that can."""
    if kind != "auto":
        return PREVIEWS[kind](title)
    for candidate in ("window", "terminal"):
        try:
            return PREVIEWS[candidate](title)
        except PreviewError as exc:
            log.info("no %s preview: %s", candidate, exc)
    return NoPreview()
