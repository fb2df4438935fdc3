"""Shared pieces of the console tests: a real console server on a real database, users per
role, a small cookie-keeping HTTP client, and a device that talks to the real ingest."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from agent.broker import free_port
from agent.config import RaqibConfig, parse_config
from hq.console.app import open_store
from hq.console.server import server

PASSWORD = "correct horse battery staple"
USERS = {"olga": "operator", "farid": "fleet_admin", "amina": "auditor"}


class Clock:
    """The console's clock, moved by the test (session expiry, lockout)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def console_config(tmp_path: Path, broker_port: int = 1883, **console: Any) -> RaqibConfig:
    hq_root = tmp_path / "hq-root"
    return parse_config(
        {
            "mqtt": {"port": broker_port, "ack_timeout_s": 2.0, "reconnect_max_s": 1.0},
            "hq": {
                "database_url": f"sqlite:///{hq_root / 'hq' / 'hq.sqlite'}",
                "keys_dir": str(tmp_path / "hq-keys"),
            },
            "evidence": {"hq_dir": str(hq_root)},
            "console": {
                "secure_cookies": False,
                "poll_s": 0.5,
                # the smallest Argon2id cost the config allows: tests log in often
                "kdf_memory_kib": 8192,
                "kdf_time_cost": 1,
                "kdf_parallelism": 1,
                **console,
            },
        }
    )


def add_users(config: RaqibConfig) -> None:
    store = open_store(config)
    try:
        for name, role in USERS.items():
            store.create_user(name, PASSWORD, role, time.time())
    finally:
        store.close()


class ConsoleServer:
    """``raqib hq console``'s uvicorn server on a free port, in a thread."""

    def __init__(self, config: RaqibConfig, clock: Callable[[], float] = time.time) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = server(config, port=self.port, clock=clock)
        self.thread = threading.Thread(target=self.server.run, name="console", daemon=True)

    def __enter__(self) -> ConsoleServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("console server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    set_cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Http:
    """A client that keeps cookies and never follows redirects, as a test wants."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
        **headers: str,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        head = {k.replace("_", "-"): v for k, v in headers.items()}
        if self.cookies:
            head["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body: str | bytes | None = None
        if files is not None:
            body, head["Content-Type"] = multipart(form or {}, files)
        elif form is not None:
            body = urlencode(form)
            head["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=head)
        response = conn.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                val = rest.split(";", 1)[0]
                if "max-age=0" in value.lower() or val in ('""', ""):
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
        conn.close()
        cookies = [v for k, v in response.getheaders() if k.lower() == "set-cookie"]
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, headers, data, cookies)

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, **headers)

    def post(self, path: str, form: dict[str, str], **headers: str) -> Reply:
        return self.request("POST", path, form, **headers)

    def login(self, user: str, password: str = PASSWORD) -> Reply:
        page = self.get("/login")
        token = hidden(page.text, "csrf")
        return self.post("/login", {"csrf": token, "username": user, "password": password})

    def csrf(self, path: str) -> str:
        return hidden(self.get(path).text, "csrf")


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type, as a browser's file upload sends."""
    boundary = "raqib-test-boundary-7d3f"
    parts: list[bytes] = []
    for name, value in fields.items():
        disposition = f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden field {name!r} in the page"
    return found.group(1)


def as_json(reply: Reply) -> Any:
    return json.loads(reply.body)


# -- a device talking to the real ingest over the real broker ----------------------------


def plate_jpeg(text: str) -> bytes:
    """A small real JPEG of a plate (white plate, black text), as a device's crop would be."""
    import cv2
    import numpy as np

    image = np.full((64, 240, 3), 245, np.uint8)
    cv2.rectangle(image, (2, 2), (237, 61), (20, 20, 20), 3)
    cv2.putText(image, text, (12, 44), cv2.FONT_HERSHEY_SIMPLEX, 1.05, (10, 10, 10), 2)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(data.tobytes())


class SimDevice:
    """Sends what the agent sends (sealed hits, heartbeats, its last will) on its own topics."""

    def __init__(self, fleet: Any, client: Any, device_id: str, prefix: str = "raqib/v1") -> None:
        from agent.transport.topics import Topics

        self.fleet = fleet
        self.client = client
        self.device_id = device_id
        self.sealer = fleet.sealer(device_id)
        self.topics = Topics(prefix, device_id)
        self.seq = 0
        self.connected_at = time.time()

    def hit(
        self,
        plate: str,
        listed: str | None = None,
        *,
        kind: str = "exact",
        confidence: float = 0.91,
        reason: str = "stolen",
        case: str = "CASE-2026-0142",
        lat: float | None = 33.5731,
        lon: float | None = -7.5898,
    ) -> int:
        from agent.messages import HIT_KIND, hit_body
        from agent.reads import GnssFix, Hit, Match, TrackedRead, WatchlistEntry

        self.seq += 1
        now = time.time()
        read = TrackedRead(plate, "MA", confidence, now - 1.5, now, 5, (10, 20, 120, 30), self.seq)
        hit = Hit(
            device_id=self.device_id,
            read=read,
            match=Match(WatchlistEntry(listed or plate, reason, case, 1), kind),
            gnss=GnssFix(lat, lon, 4.0, now) if lat is not None and lon is not None else None,
            crop_jpeg=plate_jpeg(plate),
        )
        body = hit_body(hit, model_version="3.1.0")
        payload = self.sealer.seal(HIT_KIND, self.seq, self.topics.hits, body)
        self.client.publish(self.topics.hits, payload)
        return self.seq

    def heartbeat(self, **fields: Any) -> None:
        from agent.messages import STATUS_KIND

        body = {
            "online": True,
            "connected_at": self.connected_at,
            "battery_pct": 87.0,
            "storage_free_mb": 11840.0,
            "temperature_c": 41.5,
            "watchlist_version": 7,
            "watchlist_stale": False,
            "model_version": "3.1.0",
            "queue_depth": 2,
            "agent_version": "0.1.0",
            **fields,
        }
        payload = self.sealer.seal(STATUS_KIND, 0, self.topics.status, body)
        self.client.publish(self.topics.status, payload)

    def last_will(self) -> None:
        """What the broker publishes for the device when its connection drops."""
        self.heartbeat(online=False)


class CommandDevice:
    """A device's transport and command stack as ``agent.daemon.Agent`` composes it (durable
    outbox, uplink, HQ-signed command service answering through the outbox), without a camera:
    its recording handler notes what it was asked."""

    def __init__(self, fleet: Any, mqtt: Any, device_id: str, state_dir: Path) -> None:
        from agent.commands import CommandService, SeenCommands, device_handlers
        from agent.messages import COMMAND_REPLY_KIND
        from agent.transport.outbox import PRIORITY_HIT, Outbox
        from agent.transport.topics import Topics
        from agent.transport.uplink import Uplink

        state_dir.mkdir(parents=True, exist_ok=True)
        self.recording: list[bool] = []
        self.sealer = fleet.sealer(device_id)
        self.outbox = Outbox(state_dir / "outbox.sqlite")
        self.uplink = Uplink(mqtt, self.sealer, self.outbox, heartbeat_s=3600.0)
        topics = Topics(mqtt.topic_prefix, device_id)

        def reply(body: dict[str, Any]) -> None:
            maker = self.sealer.maker(COMMAND_REPLY_KIND, topics.events, body)
            self.outbox.put(COMMAND_REPLY_KIND, topics.events, maker, PRIORITY_HIT)
            self.uplink.wake()

        handlers = device_handlers(self._record, self.uplink.heartbeat_now, lambda _args: "")
        self.service = CommandService(
            device_id,
            fleet.hq_keys.public().signing,
            SeenCommands(state_dir / "commands.sqlite"),
            handlers,
            reply,
        )
        self.service.start()
        self.uplink.subscribe(topics.commands, self.service.offer)  # before start, as the daemon
        self.uplink.start()

    def _record(self, start: bool, _detail: dict[str, Any]) -> bool:
        self.recording.append(start)
        return True

    def close(self) -> None:
        self.service.stop()
        self.uplink.stop()
        self.outbox.close()
