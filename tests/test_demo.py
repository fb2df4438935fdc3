"""`raqib demo`: the two-command quick start's main job, run as a person would."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.broker
def test_demo_sends_hits_to_hq_and_loses_none(tmp_path: Path) -> None:
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
