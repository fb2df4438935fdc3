"""The systemd units: valid for systemd itself, sandboxed, and ready for Type=notify."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.device

UNITS = Path(__file__).resolve().parent.parent / "systemd"
RAQIB = Path(sys.executable).with_name("raqib")
MAX_EXPOSURE = 2.5


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: scripts/setup.sh installs the Debian package systemd"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)


def local_copy(unit: str, tmp_path: Path) -> Path:
    """The unit with ExecStart at this checkout's raqib (the Pi path is absent here)."""
    text = (UNITS / unit).read_text(encoding="utf-8")
    path = tmp_path / unit
    path.write_text(text.replace("/opt/raqib/.venv/bin/raqib", str(RAQIB)), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "unit", ["raqib-agent.service", "raqib-hq-ingest.service", "raqib-hq-console.service"]
)
def test_unit_passes_systemd_analyze_verify_without_warnings(unit: str, tmp_path: Path) -> None:
    result = analyze("verify", str(local_copy(unit, tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "unit", ["raqib-agent.service", "raqib-hq-ingest.service", "raqib-hq-console.service"]
)
def test_unit_exposure_score_is_low(unit: str, tmp_path: Path) -> None:
    result = analyze("security", "--offline=true", str(local_copy(unit, tmp_path)))
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout + result.stderr)
    assert match, result.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_agent_unit_is_notify_with_watchdog_restart_and_strict_sandbox() -> None:
    settings = (UNITS / "raqib-agent.service").read_text(encoding="utf-8").splitlines()
    for line in [
        "Type=notify",
        "WatchdogSec=30",
        "Restart=always",
        "StateDirectory=raqib",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "CapabilityBoundingSet=",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "DeviceAllow=char-gpiochip rw",
    ]:
        assert line in settings, line


def test_console_unit_is_notify_and_sandboxed_like_the_ingest() -> None:
    settings = (UNITS / "raqib-hq-console.service").read_text(encoding="utf-8").splitlines()
    for line in [
        "Type=notify",
        "ExecStart=/opt/raqib/.venv/bin/raqib hq console --config /etc/raqib/hq.toml",
        "Restart=always",
        "User=raqib-hq",
        "StateDirectory=raqib-hq",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "PrivateDevices=true",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
    ]:
        assert line in settings, line


def test_crl_path_and_service_units_verify_without_warnings(tmp_path: Path) -> None:
    units = [local_copy(name, tmp_path) for name in ("raqib-hq-crl.path", "raqib-hq-crl.service")]
    result = analyze("verify", *map(str, units))
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr
