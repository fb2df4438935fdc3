"""The board's hardware watchdog (/dev/watchdog): reboot the board if the agent hangs.

Under systemd prefer ``RuntimeWatchdogSec=`` (systemd pets the hardware) plus the
unit's ``WatchdogSec=`` (systemd restarts a hung agent); this adapter is for
boards run without that. Closing writes the magic 'V' so a clean stop does not
reboot the board.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Protocol

from agent.errors import TransportError


class Watchdog(Protocol):
    def kick(self) -> None: ...

    def close(self) -> None: ...


class HardwareWatchdog:
    """Writes to the Linux watchdog device; each write postpones the reset."""

    def __init__(self, device: Path = Path("/dev/watchdog")) -> None:
        try:
            self._fd: int | None = os.open(device, os.O_WRONLY)
        except OSError as exc:
            raise TransportError(f"cannot open watchdog {device}: {exc.strerror}") from exc

    def kick(self) -> None:
        if self._fd is not None:
            os.write(self._fd, b"\0")

    def close(self) -> None:
        if self._fd is not None:
            os.write(self._fd, b"V")  # magic close: disarm on a clean stop
            os.close(self._fd)
            self._fd = None


class SimulatedWatchdog:
    """Counts kicks and says whether the board would have been reset."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.kicks = 0
        self.closed = False
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def kick(self) -> None:
        with self._lock:
            self.kicks += 1
            self._last = time.monotonic()

    def expired(self) -> bool:
        """True if the hardware would have reset the board by now."""
        with self._lock:
            return not self.closed and time.monotonic() - self._last > self.timeout_s

    def close(self) -> None:
        self.closed = True
