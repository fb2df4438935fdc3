"""Battery and board health: level, charging, temperature.

Body cams run on a battery: HQ's fleet view shows each device's level, and the
agent reports it in its heartbeat. On a Pi the figures come from the kernel's
power-supply and thermal sysfs files; the simulator drains linearly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

SYSFS_POWER = Path("/sys/class/power_supply")
SYSFS_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


@dataclass(frozen=True, slots=True)
class PowerStatus:
    battery_percent: float | None
    charging: bool | None
    temperature_c: float | None


class PowerMonitor(Protocol):
    def read(self) -> PowerStatus: ...


def _read_number(path: Path) -> float | None:
    try:
        return float(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


class SysfsPower:
    """The first battery under /sys/class/power_supply and the SoC temperature."""

    def __init__(self, root: Path = SYSFS_POWER, thermal: Path = SYSFS_THERMAL) -> None:
        self._root = root
        self._thermal = thermal

    def _battery(self) -> Path | None:
        if not self._root.is_dir():
            return None
        for supply in sorted(self._root.iterdir()):
            kind = supply / "type"
            if kind.is_file() and kind.read_text(encoding="ascii").strip() == "Battery":
                return supply
        return None

    def read(self) -> PowerStatus:
        battery = self._battery()
        level = charging = None
        if battery is not None:
            level = _read_number(battery / "capacity")
            try:
                status = (battery / "status").read_text(encoding="ascii").strip()
                charging = status in {"Charging", "Full"}
            except OSError:
                charging = None
        milli_c = _read_number(self._thermal)
        return PowerStatus(level, charging, None if milli_c is None else milli_c / 1000)


class SimulatedPower:
    """A battery draining ``drain_per_hour`` percent per hour from ``start_percent``."""

    def __init__(self, start_percent: float = 100.0, drain_per_hour: float = 12.5) -> None:
        self._start = time.monotonic()
        self._start_percent = start_percent
        self._drain = drain_per_hour

    def read(self) -> PowerStatus:
        hours = (time.monotonic() - self._start) / 3600
        level = max(0.0, self._start_percent - self._drain * hours)
        return PowerStatus(round(level, 1), False, 48.0)
