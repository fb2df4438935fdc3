"""`raqib demo`: the two-command quick start's main job, run as a person would."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

LISTED = [
    line.split(",")[0]
    for line in (Path(__file__).parents[1] / "samples" / "watchlist.csv")
    .read_text(encoding="utf-8")
    .splitlines()[1:]
]


@pytest.mark.broker
@pytest.mark.security
def test_demo_sends_hits_to_hq_and_loses_none(tmp_path: Path) -> None:
    """Also: no listed plate in clear in any file under DIR/broker or DIR/device (SQLite
    files, WAL, the broker's persistence, its log, keys, status) nor in the logs."""
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    summary = re.fullmatch(r"demo: (\d+) hits sent, (\d+) stored at HQ, (\d+) lost", lines[-1])
    assert summary is not None, lines[-1]
    sent, stored, lost = map(int, summary.groups())
    assert sent > 0
    assert stored == sent
    assert lost == 0
    assert sum(line.startswith("HQ stored hit") for line in lines) == stored
    assert (workdir / "hq" / "hq.sqlite").is_file()
    assert (workdir / "device" / "outbox.sqlite").is_file()
    assert "device replied: status sent (ok: True)" in result.stdout
    assert "the officer's verdict on hit #" in result.stdout
    assert "unknown fields" not in result.stderr
    assert "rejected a message" not in result.stderr
    hq_config = workdir / "hq.toml"
    for argv in (
        ["hq", "devices", "--config", str(hq_config)],
        ["--config", str(hq_config), "hq", "devices"],
    ):
        devices = subprocess.run(
            [sys.executable, "-m", "agent.cli", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        (device,) = [json.loads(line) for line in devices.stdout.splitlines()]
        assert device["battery_pct"] is not None
        assert device["storage_free_mb"] is not None
        assert device["watchlist_version"] == 1
        assert device["watchlist_stale"] is False

    files = [p for d in ("broker", "device") for p in (workdir / d).rglob("*") if p.is_file()]
    assert any(p.name == "mosquitto.db" for p in files)  # the broker's persistence was written
    assert any(p.name == "watchlist.sqlite" for p in files)
    for plate in LISTED:
        needle = plate.encode("ascii")
        holding = [str(p.relative_to(workdir)) for p in files if needle in p.read_bytes()]
        assert holding == [], f"{plate} in clear in {holding}"
        assert plate not in result.stderr  # the logs of the device, the broker and HQ
