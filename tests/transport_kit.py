"""Shared pieces of the transport tests: sample hits, a fleet of keyed devices, a raw client."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.envelope import decode_ack
from agent.messages import HIT_KIND, hit_body
from agent.pki import HqKeys
from agent.reads import GnssFix, Hit, Match, TrackedRead, WatchlistEntry
from agent.transport.outbox import PRIORITY_HIT, Outbox
from agent.transport.sealer import Sealer
from agent.transport.topics import Topics
from agent.transport.uplink import Uplink
from hq.db import HqDatabase

DEVICE = "cam-test-01"
PREFIX = "raqib/v1"
PATIENCE_S = 15.0


def sample_hit(n: int, device: str = DEVICE, crop: bytes = b"\xff\xd8fake-jpeg\xff\xd9") -> Hit:
    plate = f"{10000 + n}-B-6"
    return Hit(
        device_id=device,
        read=TrackedRead(plate, "MA", 0.93, 1000.0 + n, 1001.0 + n, 4, (10, 20, 120, 30), n),
        match=Match(WatchlistEntry(plate, "stolen", f"case-{n}", 2), "exact"),
        gnss=GnssFix(33.57, -7.59, 5.0, 1000.0 + n),
        crop_jpeg=crop,
    )


class Fleet:
    """HQ's keys and any number of devices, each with its own signing key, enrolled on demand."""

    def __init__(self, hq_keys: HqKeys | None = None) -> None:
        self.hq_keys = hq_keys or HqKeys.generate()
        self._keys: dict[str, Ed25519PrivateKey] = {}

    def key(self, device: str = DEVICE) -> Ed25519PrivateKey:
        if device not in self._keys:
            self._keys[device] = Ed25519PrivateKey.generate()
        return self._keys[device]

    def sealer(self, device: str = DEVICE) -> Sealer:
        return Sealer(device, self.key(device), self.hq_keys.public())

    def enrol(self, db: HqDatabase, *devices: str) -> None:
        for device in devices or (DEVICE,):
            db.enrol_device(device, self.key(device).public_key(), time.time())

    def hit_payload(self, seq: int, n: int | None = None, device: str = DEVICE) -> bytes:
        body = hit_body(sample_hit(seq if n is None else n, device))
        return self.sealer(device).seal(HIT_KIND, seq, Topics(PREFIX, device).hits, body)

    def put_hits(self, outbox: Outbox, count: int, device: str = DEVICE) -> list[int]:
        sealer = self.sealer(device)
        topic = Topics(PREFIX, device).hits
        seqs = []
        for _ in range(count):
            n = outbox.next_seq
            maker = sealer.maker(HIT_KIND, topic, hit_body(sample_hit(n, device)))
            seqs.append(outbox.put(HIT_KIND, topic, maker, PRIORITY_HIT))
        return seqs

    def put_hits_bulk(self, outbox: Outbox, count: int, device: str = DEVICE) -> list[int]:
        """``count`` hits in one transaction (fast producers in fault tests)."""
        sealer = self.sealer(device)
        topic = Topics(PREFIX, device).hits
        first = outbox.next_seq
        makers = [
            sealer.maker(HIT_KIND, topic, hit_body(sample_hit(first + i, device)))
            for i in range(count)
        ]
        return outbox.put_many(HIT_KIND, topic, makers, PRIORITY_HIT)

    def uplink(
        self, config: MqttConfig, outbox: Outbox, device: str = DEVICE, **kw: object
    ) -> Uplink:
        uplink = Uplink(config, self.sealer(device), outbox, **kw)  # type: ignore[arg-type]
        uplink.start()
        return uplink


class RawClient:
    """A bare MQTT client for what a real device would never send, and to watch what arrives."""

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        *,
        tls: tuple[Path, Path | None, Path | None] | None = None,
        connect: bool = True,
    ) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.refused: list[ReasonCode] = []
        self.connect_codes: list[ReasonCode] = []
        self._lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if tls is not None:
            ca, cert, key = tls
            self._client.tls_set(
                ca_certs=str(ca),
                certfile=str(cert) if cert else None,
                keyfile=str(key) if key else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_connect = self._on_connect
        if connect:
            self._client.connect(config.host, config.port)
            self._client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, code: ReasonCode, _p: object) -> None:
        self.connect_codes.append(code)

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def _on_subscribe(
        self, _c: object, _u: object, _mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        self.refused += [c for c in codes if c.is_failure]

    def subscribe(self, topic: str) -> None:
        self._client.subscribe(topic, qos=1)
        time.sleep(0.2)  # SUBACK on loopback

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def acked_seqs(self, fleet: Fleet, device: str = DEVICE) -> list[int]:
        with self._lock:
            payloads = [p for t, p in self.received if t.endswith(f"/{device}/acks")]
        signing = fleet.hq_keys.public().signing
        return [seq for payload in payloads for seq in decode_ack(payload, device, signing)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def connects(config: MqttConfig, tls: tuple[Path, Path | None, Path | None] | None) -> bool:
    """Whether the broker accepts this client (a CONNACK with success within 3 s)."""
    accepted = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, code: object, _p: object) -> None:
        if not getattr(code, "is_failure", True):
            accepted.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="probe", protocol=MQTTProtocolVersion.MQTTv5
    )
    if tls is not None:
        ca, cert, key = tls
        client.tls_set(
            ca_certs=str(ca),
            certfile=str(cert) if cert else None,
            keyfile=str(key) if key else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.on_connect = on_connect
    try:
        client.connect(config.host, config.port, keepalive=5)
    except (OSError, ssl.SSLError):
        return False
    client.loop_start()
    try:
        return accepted.wait(3.0)
    finally:
        client.disconnect()
        client.loop_stop()
