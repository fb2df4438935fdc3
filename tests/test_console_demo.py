"""`raqib demo --console`: the clip runs, then HQ stays up with the console until Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from console_kit import Http

from agent.config import load_config

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        else:
            return


def test_demo_console_serves_the_demos_hits_until_ctrl_c(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    log = tmp_path / "demo.log"  # a file, not a pipe: the demo's log must never block it
    with log.open("w", encoding="utf-8") as stderr_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "demo", "--console", "--workdir", str(workdir)],
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "Ctrl-C stops them" in line:
                break
        out = "\n".join(lines)
        summary = re.search(r"demo: (\d+) hits sent, (\d+) stored at HQ, 0 lost", out)
        assert summary is not None, out[-3000:]
        url = re.search(r"HQ console at http://127\.0\.0\.1:(\d+)/", out)
        password = re.search(r"demo-auditor, password (\S+)", out)
        assert url and password, out[-2000:]
        port = int(url.group(1))
        wait_listening(port)
        http = Http(port)
        assert http.login("demo-operator", password.group(1)).status == 303
        hits = http.get("/operator")
        assert hits.status == 200
        assert hits.text.count('class="hit ') == int(summary.group(2))
        auditor = Http(int(url.group(1)))
        auditor.login("demo-auditor", password.group(1))
        ledger = auditor.get("/audit/devices/cam-demo-01")
        assert ledger.status == 200 and "verified" in ledger.text
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        config = load_config(workdir / "hq.toml")  # `raqib hq console --config D/hq.toml` too
        assert config.console.secure_cookies is False
        assert config.console.watchlist_root is not None and config.console.watchlist_root.is_file()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stdout.close()
    stderr = log.read_text(encoding="utf-8")
    assert "Traceback" not in stderr, stderr[-3000:]
