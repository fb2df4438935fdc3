"""The broker contract: the standard MQTT 5 behaviour Raqib relies on, and nothing more.

Any broker that passes this suite can carry a Raqib fleet (Mosquitto, an EMQX
cluster, ...). By default it runs against a local Mosquitto started for the
test; point it at another broker with

    RAQIB_BROKER_URL=mqtt://host:1883            (or mqtts://host:8883)
    RAQIB_BROKER_TLS_CA=ca.crt RAQIB_BROKER_TLS_CERT=c.crt RAQIB_BROKER_TLS_KEY=c.key
    RAQIB_BROKER_TOPIC_ROOT=raqib-contract        (a subtree this identity may use)

Each test works under its own random topic subtree and client ids.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.broker import LocalBroker

pytestmark = pytest.mark.broker

PATIENCE_S = 10.0


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: tuple[str | None, str | None, str | None] | None
    root: str


@pytest.fixture(scope="module")
def broker_under_test(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    url = os.environ.get("RAQIB_BROKER_URL")
    topic_root = os.environ.get("RAQIB_BROKER_TOPIC_ROOT", "raqib-contract")
    if url:
        parsed = urlparse(url)
        secure = parsed.scheme == "mqtts"
        tls = (
            (
                os.environ.get("RAQIB_BROKER_TLS_CA"),
                os.environ.get("RAQIB_BROKER_TLS_CERT"),
                os.environ.get("RAQIB_BROKER_TLS_KEY"),
            )
            if secure
            else None
        )
        port = parsed.port or (8883 if secure else 1883)
        yield Broker(parsed.hostname or "127.0.0.1", port, tls, topic_root)
        return
    with LocalBroker(workdir=Path(tmp_path_factory.mktemp("contract-broker"))) as local:
        yield Broker(local.host, local.port, None, topic_root)


@pytest.fixture
def base(broker_under_test: Broker) -> str:
    return f"{broker_under_test.root}/{uuid.uuid4().hex[:12]}"


class Client:
    """A paho MQTT 5 client that records what it receives and its CONNACK flags."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        *,
        clean_start: bool = True,
        session_expiry: int = 0,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.session_present: bool | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if broker.tls is not None:
            ca, cert, key = broker.tls
            self.client.tls_set(
                ca_certs=ca, certfile=cert, keyfile=key, tls_version=ssl.PROTOCOL_TLS_CLIENT
            )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = session_expiry
        self.client.connect(
            broker.host, broker.port, keepalive=5, clean_start=clean_start, properties=props
        )
        self.client.loop_start()
        assert self._connected.wait(PATIENCE_S), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, flags: Any, code: Any, _p: Any) -> None:
        assert not code.is_failure, code
        self.session_present = bool(flags.session_present)
        self._connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(PATIENCE_S), "no SUBACK"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(PATIENCE_S)
        assert info.is_published()

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def wait_count(self, n: int, timeout: float = PATIENCE_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return True
            time.sleep(0.02)
        return self.count() >= n

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def vanish(self) -> None:
        """Drop the TCP connection without DISCONNECT (a camera losing power)."""
        sock = self.client.socket()
        self.client.loop_stop()
        if isinstance(sock, socket.socket | ssl.SSLSocket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def cid(tag: str) -> str:
    return f"contract-{tag}-{uuid.uuid4().hex[:8]}"


def test_qos1_publish_is_acknowledged_and_delivered(broker_under_test: Broker, base: str) -> None:
    sub = Client(broker_under_test, cid("sub"))
    pub = Client(broker_under_test, cid("pub"))
    try:
        sub.subscribe(f"{base}/x")
        for n in range(50):
            pub.publish(f"{base}/x", str(n).encode())
        assert sub.wait_count(50)
    finally:
        pub.close()
        sub.close()


def test_shared_subscription_gives_each_message_to_one_member(
    broker_under_test: Broker, base: str
) -> None:
    """HQ ingest workers: ``$share/{group}/...``; every message to exactly one of them."""
    workers = [Client(broker_under_test, cid(f"w{i}")) for i in range(2)]
    pub = Client(broker_under_test, cid("pub"))
    try:
        for worker in workers:
            worker.subscribe(f"$share/hq-ingest/{base}/devices/+/hits")
        for n in range(200):
            pub.publish(f"{base}/devices/cam-{n % 7}/hits", str(n).encode())
        deadline = time.monotonic() + PATIENCE_S
        while sum(w.count() for w in workers) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # nothing more may come
        got = sorted(int(p) for w in workers for _t, p, _r in w.messages)
        assert got == list(range(200)), "each message exactly once across the group"
        assert all(w.count() > 0 for w in workers), "the broker spreads the load"
    finally:
        pub.close()
        for worker in workers:
            worker.close()


def test_persistent_session_keeps_qos1_messages_while_the_client_is_away(
    broker_under_test: Broker, base: str
) -> None:
    """Acks and commands for a device in a dead zone wait at the broker (session expiry);
    more than Mosquitto's default 1,000-message queue."""
    client_id = cid("device")
    device = Client(broker_under_test, client_id, clean_start=False, session_expiry=3600)
    device.subscribe(f"{base}/acks")
    device.close()
    pub = Client(broker_under_test, cid("hq"))
    try:
        for n in range(1500):
            pub.client.publish(f"{base}/acks", str(n).encode(), qos=1)
        pub.publish(f"{base}/acks", b"last")
    finally:
        pub.close()
    back = Client(broker_under_test, client_id, clean_start=False, session_expiry=3600)
    try:
        assert back.session_present is True
        assert back.wait_count(1501, 30.0), f"only {back.count()} of 1501 kept"
    finally:
        back.close()
    gone = Client(broker_under_test, client_id, clean_start=True, session_expiry=0)
    try:
        assert gone.session_present is False  # clean start drops the session
    finally:
        gone.close()


def test_retained_message_reaches_late_subscribers_and_newest_wins(
    broker_under_test: Broker, base: str
) -> None:
    """The watchlist topic: a device connecting later gets the newest list at once."""
    pub = Client(broker_under_test, cid("admin"))
    try:
        pub.publish(f"{base}/watchlist", b"v1", retain=True)
        pub.publish(f"{base}/watchlist", b"v2", retain=True)
    finally:
        pub.close()
    late = Client(broker_under_test, cid("late"))
    try:
        late.subscribe(f"{base}/watchlist")
        assert late.wait_count(1)
        time.sleep(0.2)
        assert late.messages == [(f"{base}/watchlist", b"v2", True)]
    finally:
        late.close()
    cleaner = Client(broker_under_test, cid("clean"))
    cleaner.publish(f"{base}/watchlist", b"", retain=True)
    cleaner.close()


def test_last_will_is_published_retained_when_a_client_vanishes(
    broker_under_test: Broker, base: str
) -> None:
    watcher = Client(broker_under_test, cid("watch"))
    device = Client(broker_under_test, cid("dev"), will=(f"{base}/status", b"offline"))
    try:
        watcher.subscribe(f"{base}/status")
        device.vanish()
        assert watcher.wait_count(1, 20.0), "no last will within keepalive x 1.5"
        assert watcher.messages[0][1] == b"offline"
    finally:
        watcher.close()
    late = Client(broker_under_test, cid("late"))
    try:
        late.subscribe(f"{base}/status")
        assert late.wait_count(1)
        assert late.messages[0][1:] == (b"offline", True)
    finally:
        late.close()
        cleaner = Client(broker_under_test, cid("clean"))
        cleaner.publish(f"{base}/status", b"", retain=True)
        cleaner.close()


def test_a_message_of_512_kib_is_carried(broker_under_test: Broker, base: str) -> None:
    """agent.envelope.MAX_MESSAGE_BYTES: a hit with its crop may be this large."""
    sub = Client(broker_under_test, cid("sub"))
    pub = Client(broker_under_test, cid("pub"))
    try:
        sub.subscribe(f"{base}/big")
        pub.publish(f"{base}/big", os.urandom(512 * 1024))
        assert sub.wait_count(1)
        assert len(sub.messages[0][1]) == 512 * 1024
    finally:
        pub.close()
        sub.close()
