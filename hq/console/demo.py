"""`raqib demo --console`: after the clip, keep the demo's HQ (broker, ingest) and serve the
console on it until Ctrl-C, with one demo login per role.

The console reads the demo's database and footage, signs commands with the demo
HQ's key over the demo broker (HQ's TLS identity) and accepts watchlists signed
with the demo fleet's admin key. Plain HTTP on 127.0.0.1 only, so the session
cookie is not marked Secure here; a real deployment keeps ``secure_cookies``.
"""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path
from types import FrameType

from agent.broker import free_port, port_is_free
from agent.config import MqttConfig, RaqibConfig, with_overrides
from agent.errors import ConfigError
from agent.watchlist.provision import ROOT_FILE
from hq.console.app import open_store
from hq.console.roles import AUDITOR, FLEET_ADMIN, OPERATOR

DEMO_USERS = {"demo-operator": OPERATOR, "demo-admin": FLEET_ADMIN, "demo-auditor": AUDITOR}


def demo_console_config(config: RaqibConfig, hq_mqtt: MqttConfig, workdir: Path) -> RaqibConfig:
    port = config.console.port if port_is_free(config.console.port) else free_port()
    return with_overrides(
        config,
        mqtt=hq_mqtt.model_dump(),
        console={
            "host": "127.0.0.1",
            "port": port,
            "secure_cookies": False,
            "watchlist_root": str(workdir / "hq" / "watchlist" / ROOT_FILE),
        },
    )


def demo_logins(config: RaqibConfig) -> str:
    """One user per role with a fresh random password (the same for the three); returns it."""
    password = secrets.token_urlsafe(12)
    store = open_store(config)
    try:
        for name, role in DEMO_USERS.items():
            try:
                store.create_user(name, password, role, time.time())
            except ConfigError:
                store.set_password(name, password)  # a reused work directory
    finally:
        store.close()
    return password


def serve_demo_console(config: RaqibConfig, hq_mqtt: MqttConfig, workdir: Path) -> None:
    """Serve the console on the demo's HQ until Ctrl-C (SIGINT) or SIGTERM."""
    from hq.console.server import server

    console_config = demo_console_config(config, hq_mqtt, workdir)
    password = demo_logins(console_config)
    url = f"http://127.0.0.1:{console_config.console.port}/"
    print(f"demo: HQ console at {url}", flush=True)
    print(
        f"demo: log in as demo-operator, demo-admin or demo-auditor, password {password}",
        flush=True,
    )
    print("demo: broker, ingest and console keep running; Ctrl-C stops them", flush=True)
    # uvicorn re-raises the signal that stopped it once it has shut down: make SIGTERM, like
    # Ctrl-C, an exception, so the demo still stops its ingest and broker on the way out
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server(console_config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
