"""Local health: a status file for `raqib status` and a Prometheus endpoint on localhost.

Both read the same flat mapping of figures from the daemon; neither can change
anything, and the endpoint binds to loopback by default.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from agent.errors import StorageError
from agent.fsutil import atomic_write

log = logging.getLogger(__name__)

Figures = Mapping[str, float | int | bool | str | None]
STATUS_FILE = "status.json"


def render_prometheus(figures: Figures, prefix: str = "raqib_") -> str:
    """Prometheus text exposition of the numeric figures (booleans as 0/1)."""
    lines = []
    for name, value in sorted(figures.items()):
        number = int(value) if isinstance(value, bool) else value
        if isinstance(number, int | float):
            lines.append(f"{prefix}{name} {number}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves GET /metrics from a figures provider on its own thread."""

    def __init__(self, provider: Callable[[], Figures], host: str, port: int) -> None:
        handler = type("MetricsHandler", (_Handler,), {"provider": staticmethod(provider)})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    provider: Callable[[], Figures]

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        body = render_prometheus(self.provider()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging."""


def write_status(state_dir: Path, figures: Figures) -> None:
    """Write the status file atomically; a full disk is logged, not raised."""
    data = json.dumps({"written_at": time.time(), **figures}, default=str).encode()
    try:
        atomic_write(state_dir / STATUS_FILE, data, mode=0o600)
    except StorageError as exc:
        log.warning("status file not written: %s", exc)


def read_status(state_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
