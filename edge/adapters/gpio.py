"""The enrollment button and light on the door's GPIO (gpiozero, imported only when configured).

A short press starts enrollment; holding the button for ``hold`` seconds
cancels one in progress. Wiring: a momentary switch between the GPIO pin
and ground, using the Pi's internal pull-up; the light is an LED (with its
resistor) between a GPIO pin and ground. Tests pass gpiozero's MockFactory
as ``pin_factory``. Both are context managers that release their pins.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from edge.adapters.settings import ButtonSettings, LightSettings
from edge.messages import EnrollmentMessage, EnrollmentStatus


log = logging.getLogger(__name__)


class GpioError(RuntimeError):
    """gpiozero is missing, or the pin cannot be used (no GPIO on this machine, pin busy)."""


def _claim(kind: str, pin: int, **options: Any) -> Any:
    """A gpiozero ``kind`` ("Button", "LED") on ``pin``, or GpioError saying why not."""
    try:
        import gpiozero
    except ImportError:
        raise GpioError("gpiozero is not installed: install the `pi` extra (pip install 'edge-face[pi]')") from None
    # gpiozero warns once per pin library it tries; the outcome is what matters, the tries go to the log.
    with warnings.catch_warnings(record=True) as tried:
        warnings.simplefilter("always", gpiozero.exc.PinFactoryFallback)
        try:
            return getattr(gpiozero, kind)(pin, **options)
        except Exception as exc:  # gpiozero raises many kinds (BadPinFactory, PinInvalidPin, GPIOPinInUse, ...)
            raise GpioError(f"GPIO {pin} ({kind.lower()}): {exc}") from None
        finally:
            for warning in tried:
                log.info("gpiozero: %s", warning.message)


class EnrollButton:
    def __init__(
        self,
        settings: ButtonSettings,
        on_press: Callable[[], None],
        on_hold: Callable[[], None],
        pin_factory=None,
    ) -> None:
        if settings.pin is None:
            raise GpioError("no button pin configured ([button] pin)")
        self._held = False
        self._on_press, self._on_hold = on_press, on_hold
        self._button = _claim("Button", settings.pin, pull_up=True, hold_time=settings.hold, pin_factory=pin_factory)
        self._button.when_pressed = self._pressed
        self._button.when_held = self._hold
        self._button.when_released = self._released

    def __enter__(self) -> EnrollButton:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
    """Shows enrollment: blinking while collecting, lit ``saved_seconds`` when saved, off otherwise."""

    def __init__(self, settings: LightSettings, pin_factory=None) -> None:
        if settings.pin is None:
            raise GpioError("no light pin configured ([light] pin)")
        self._led = _claim("LED", settings.pin, pin_factory=pin_factory)
        self._saved_seconds = settings.saved_seconds

    def __enter__(self) -> EnrollLight:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, message: EnrollmentMessage) -> None:
        """Follow the enrollment messages (edge.enrollment.at_door.DoorEnrollment's ``report``)."""
        if not isinstance(message, EnrollmentStatus):
            return
        if message.state == "started":
            self._led.blink(on_time=0.2, off_time=0.2)
        elif message.state == "saved":
            self._led.blink(on_time=self._saved_seconds, off_time=0, n=1)
        else:
            self._led.off()

    def close(self) -> None:
        self._led.close()
