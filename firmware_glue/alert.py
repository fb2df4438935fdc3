"""The officer alert: LED, buzzer and haptic motor on GPIO, or a simulator.

The simulator implements the same interface and records what it was asked, so
tests check the alert without patching anything.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from agent.errors import TransportError


class AlertAdapter(Protocol):
    """Tells the officer at once; must return quickly (pulses run in the background)."""

    def signal(self, priority: int, message: str) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AlertEvent:
    at: float
    priority: int
    message: str


class SimulatedAlert:
    """Records every alert; used on x86, in the demo and in tests."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []
        self._lock = threading.Lock()

    def signal(self, priority: int, message: str) -> None:
        with self._lock:
            self.events.append(AlertEvent(time.time(), priority, message))

    def close(self) -> None:
        """Nothing to release."""


class GpioAlert:
    """LED and buzzer via gpiozero (lgpio backend on Pi 5): pulses more for higher priority."""

    def __init__(self, led_pin: int, buzzer_pin: int) -> None:
        try:
            from gpiozero import LED, Buzzer
        except ImportError as exc:
            raise TransportError(
                "gpiozero is not installed; use alert.adapter = 'simulated'"
            ) from exc
        try:
            self._led: Any = LED(led_pin)
            self._buzzer: Any = Buzzer(buzzer_pin)
        except Exception as exc:  # gpiozero raises its own BadPinFactory/GPIOPinInUse
            raise TransportError(f"cannot open alert GPIO pins: {exc}") from exc

    def signal(self, priority: int, message: str) -> None:
        pulses = max(1, min(priority, 5))
        self._led.blink(on_time=0.15, off_time=0.1, n=pulses * 2, background=True)
        self._buzzer.beep(on_time=0.1, off_time=0.1, n=pulses, background=True)

    def close(self) -> None:
        self._led.close()
        self._buzzer.close()
