"""Serve the console with uvicorn, as ``raqib hq console`` and the systemd unit run it."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import uvicorn

from agent.config import RaqibConfig
from agent.systemd import SystemdNotifier
from hq.console.app import create_app

log = logging.getLogger(__name__)


class _NotifyingServer(uvicorn.Server):
    """Tells systemd (Type=notify) it is ready once the socket listens, and when it stops."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            SystemdNotifier().ready("console listening")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        SystemdNotifier().stopping()
        await super().shutdown(sockets)


def server(
    config: RaqibConfig, *, port: int | None = None, clock: Callable[[], float] = time.time
) -> uvicorn.Server:
    """A uvicorn server for the console (not started); ``port`` overrides ``console.port``."""
    settings = config.console
    uv_config = uvicorn.Config(
        create_app(config, clock=clock),
        host=settings.host,
        port=settings.port if port is None else port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_config=None,  # our logging (agent.logs) is already set up
        access_log=False,  # the audit log records who did what; no second copy with cookies
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return _NotifyingServer(uv_config)


def serve(config: RaqibConfig) -> None:
    """Run until SIGTERM or SIGINT (uvicorn handles both)."""
    scheme = "https" if config.console.tls_cert else "http"
    log.info("hq console on %s://%s:%d", scheme, config.console.host, config.console.port)
    server(config).run()
