"""The enrollment button and light on the door's GPIO (gpiozero, imported only when configured).

A short press starts enrollment; holding the button for ``hold_seconds``
cancels one in progress. Wiring: a momentary switch between the GPIO pin
and ground, using the Pi's internal pull-up. Tests pass gpiozero's
MockFactory as ``pin_factory``.
"""

from __future__ import annotations

from collections.abc import Callable


class EnrollButton:
    def __init__(
        self,
        pin: int,
        on_press: Callable[[], None],
        on_hold: Callable[[], None],
        hold_seconds: float = 3.0,
        pin_factory=None,
    ) -> None:
        try:
            from gpiozero import Button
        except ImportError as exc:
            raise RuntimeError("gpiozero is not installed: install the `pi` extra (pip install 'edge-face[pi]')") from exc
        self._held = False
        self._on_press, self._on_hold = on_press, on_hold
        self._button = Button(pin, pull_up=True, hold_time=hold_seconds, pin_factory=pin_factory)
        self._button.when_pressed = self._pressed
        self._button.when_held = self._hold
        self._button.when_released = self._released

    def _pressed(self) -> None:
        self._held = False

    def _hold(self) -> None:
        self._held = True
        self._on_hold()

    def _released(self) -> None:
        if not self._held:
            self._on_press()

    def close(self) -> None:
        self._button.close()


class EnrollLight:
    """An optional LED that shows enrollment: blinking while collecting,
    lit for ``saved_seconds`` when saved, off otherwise (gpiozero, lazily)."""

    def __init__(self, pin: int, saved_seconds: float = 2.0, pin_factory=None) -> None:
        try:
            from gpiozero import LED
        except ImportError as exc:
            raise RuntimeError("gpiozero is not installed: install the `pi` extra (pip install 'edge-face[pi]')") from exc
        self._led = LED(pin, pin_factory=pin_factory)
        self._saved_seconds = saved_seconds

    def update(self, kind: str, message: dict) -> None:
        """Follow the enrollment messages (edge.door.enroll.DoorEnrollment's ``report``)."""
        if kind != "status":
            return
        state = message.get("state")
        if state == "started":
            self._led.blink(on_time=0.2, off_time=0.2)
        elif state == "saved":
            self._led.blink(on_time=self._saved_seconds, off_time=0, n=1)
        else:
            self._led.off()

    def close(self) -> None:
        self._led.close()
