"""Board adapters off the board: watchdog and power, real sysfs parsing on a fake tree."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.errors import TransportError
from firmware_glue.power import SimulatedPower, SysfsPower
from firmware_glue.watchdog import HardwareWatchdog, SimulatedWatchdog

pytestmark = pytest.mark.device


def test_simulated_watchdog_expires_without_kicks_and_not_after_close() -> None:
    dog = SimulatedWatchdog(timeout_s=0.1)
    dog.kick()
    assert not dog.expired()
    time.sleep(0.15)
    assert dog.expired()
    dog.kick()
    assert not dog.expired()
    dog.close()
    time.sleep(0.15)
    assert not dog.expired()


def test_hardware_watchdog_writes_kicks_and_magic_close(tmp_path: Path) -> None:
    fifo = tmp_path / "watchdog"
    fifo.write_bytes(b"")
    dog = HardwareWatchdog(fifo)
    dog.kick()
    dog.kick()
    dog.close()
    assert fifo.read_bytes() == b"\0\0V"


def test_absent_watchdog_device_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="cannot open watchdog"):
        HardwareWatchdog(tmp_path / "none")


def make_supply(root: Path, name: str, kind: str, **files: str) -> None:
    supply = root / name
    supply.mkdir(parents=True)
    (supply / "type").write_text(kind + "\n", encoding="ascii")
    for key, value in files.items():
        (supply / key).write_text(value + "\n", encoding="ascii")


def test_sysfs_power_reads_the_battery_and_temperature(tmp_path: Path) -> None:
    make_supply(tmp_path / "ps", "ac", "Mains")
    make_supply(tmp_path / "ps", "battery", "Battery", capacity="73", status="Discharging")
    thermal = tmp_path / "temp"
    thermal.write_text("51234\n", encoding="ascii")
    status = SysfsPower(tmp_path / "ps", thermal).read()
    assert (status.battery_percent, status.charging) == (73.0, False)
    assert status.temperature_c == pytest.approx(51.234)


def test_sysfs_power_without_battery_reports_unknown(tmp_path: Path) -> None:
    status = SysfsPower(tmp_path / "absent", tmp_path / "absent-temp").read()
    assert (status.battery_percent, status.charging, status.temperature_c) == (None, None, None)


def test_simulated_battery_drains() -> None:
    assert SimulatedPower(start_percent=50.0).read().battery_percent == pytest.approx(50.0, abs=0.1)
