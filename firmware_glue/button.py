"""The officer's record button: a GPIO push button via gpiozero, or a simulator.

A press calls ``on_press`` once, when the button is released, with how long it
was held: right after an alert a short press confirms it and a long one rejects
it (``agent.disposition``), otherwise a press toggles recording. The simulator
implements the same interface, records what it was asked, and is pressed by
calling ``press(held_s)`` (tests, the demo).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from agent.errors import TransportError

OnPress = Callable[[float], None]
"""Called with the seconds the button was held."""


class RecordButton(Protocol):
    """Calls ``on_press(held_s)`` once per press, at release, from its own thread;
    ``on_press`` must not block."""

    def start(self, on_press: OnPress) -> None: ...

    def close(self) -> None: ...


class SimulatedButton:
    """A button pressed from code; remembers when it was pressed."""

    def __init__(self) -> None:
        self.presses: list[float] = []
        self._on_press: OnPress | None = None
        self._lock = threading.Lock()

    def start(self, on_press: OnPress) -> None:
        self._on_press = on_press

    def press(self, held_s: float = 0.1) -> None:
        """A press held ``held_s`` seconds (released at once: no real waiting)."""
        with self._lock:
            self.presses.append(time.time())
            callback = self._on_press
        if callback is not None:
            callback(held_s)

    def close(self) -> None:
        self._on_press = None


class GpioButton:
    """A push button to ground on ``pin`` (internal pull-up), debounced by gpiozero."""

    def __init__(self, pin: int, bounce_s: float = 0.05) -> None:
        try:
            from gpiozero import Button
        except ImportError as exc:
            raise TransportError(
                "gpiozero is not installed; use evidence.button = 'simulated'"
            ) from exc
        try:
            self._button: Any = Button(pin, pull_up=True, bounce_time=bounce_s)
        except Exception as exc:  # gpiozero raises its own BadPinFactory/GPIOPinInUse
            raise TransportError(f"cannot open record button GPIO {pin}: {exc}") from exc

        self._pressed_at: float | None = None

    def start(self, on_press: OnPress) -> None:
        def pressed() -> None:
            self._pressed_at = time.monotonic()

        def released() -> None:
            started, self._pressed_at = self._pressed_at, None
            if started is not None:
                on_press(time.monotonic() - started)

        # gpiozero calls both with no argument, on its own thread
        self._button.when_pressed = pressed
        self._button.when_released = released

    def close(self) -> None:
        self._button.close()


def make_button(kind: str, pin: int) -> RecordButton | None:
    """The configured button: ``gpio``, ``simulated`` or ``none``."""
    if kind == "gpio":
        return GpioButton(pin)
    if kind == "simulated":
        return SimulatedButton()
    return None
