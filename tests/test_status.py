"""Local health: the status file behind `raqib status` and the Prometheus endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent.metrics import MetricsServer, read_status, render_prometheus, write_status


def test_prometheus_text_has_numeric_figures_only() -> None:
    text = render_prometheus({"frames": 10, "mqtt_connected": True, "device": "cam-1", "x": 1.5})
    assert text.splitlines() == ["raqib_frames 10", "raqib_mqtt_connected 1", "raqib_x 1.5"]


def test_metrics_endpoint_serves_current_figures_on_loopback() -> None:
    figures = {"frames": 1}
    server = MetricsServer(lambda: figures, "127.0.0.1", 0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert "raqib_frames 1" in response.read().decode()
        figures["frames"] = 2
        with urllib.request.urlopen(url, timeout=5) as response:
            assert "raqib_frames 2" in response.read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=5)
    finally:
        server.stop()


def test_status_file_round_trips_and_is_written_atomically(tmp_path: Path) -> None:
    write_status(tmp_path, {"frames": 5, "outbox_depth": 0})
    status = read_status(tmp_path)
    assert status is not None
    assert status["frames"] == 5
    assert not list(tmp_path.glob(".*tmp*"))


def run_status(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "raqib.toml"
    config.write_text(f'[device]\nstate_dir = "{tmp_path}"\n', encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "status", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_command_reports_a_running_agent(tmp_path: Path) -> None:
    write_status(tmp_path, {"frames": 7, "watchlist_entries": 6})
    result = run_status(tmp_path)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["agent_running"] is True
    assert status["frames"] == 7


def test_status_command_says_when_the_agent_is_not_running(tmp_path: Path) -> None:
    old = {"written_at": time.time() - 3600, "frames": 7}
    (tmp_path / "status.json").write_text(json.dumps(old), encoding="utf-8")
    result = run_status(tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout)["agent_running"] is False
    assert "is the agent running" in run_status(tmp_path / "empty").stderr
