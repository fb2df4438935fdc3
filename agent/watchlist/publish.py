"""Publish a signed bundle as a retained MQTT 5 message and wait for the broker's PUBACK.

Topics (see agent/transport/topics.py): ``{prefix}/watchlist`` for the whole
fleet, ``{prefix}/devices/{id}/watchlist`` for one device. The publish is QoS 1
and retained, so a device that connects later still receives the newest list.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.errors import TransportError
from agent.transport.topics import Topics


def watchlist_topic(prefix: str, device_id: str | None = None) -> str:
    """The fleet topic, or one device's (raises PayloadError for a bad device id)."""
    if device_id is None:
        return f"{prefix.rstrip('/')}/watchlist"
    return f"{Topics(prefix, device_id).prefix}/devices/{device_id}/watchlist"


def watchlist_key_topic(prefix: str, device_id: str) -> str:
    """Where HQ keeps one device's sealed cache key (retained; emptied when it is revoked)."""
    return f"{Topics(prefix, device_id).prefix}/devices/{device_id}/watchlist-key"


@dataclass(frozen=True, slots=True)
class BrokerTarget:
    host: str = "127.0.0.1"
    port: int = 1883
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_id: str = "raqib-watchlist-admin"


class _Waiter:
    def __init__(self) -> None:
        self.connected = threading.Event()
        self.acked = threading.Event()
        self.connect_code: ReasonCode | None = None
        self.puback_code: ReasonCode | None = None
        self.failed: dict[int, ReasonCode] = {}

    def on_connect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self.connect_code = reason_code
        self.connected.set()

    def on_publish(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self.puback_code = reason_code
        if reason_code.is_failure:
            self.failed[mid] = reason_code
        self.acked.set()


def publish_bundle(
    payload: bytes,
    topic: str,
    target: BrokerTarget,
    *,
    retain: bool = True,
    timeout_s: float = 30.0,
) -> None:
    """Publish at QoS 1 and return once the broker acknowledged; raises TransportError."""
    client, waiter, where = _connect(target)
    try:
        _publish_and_wait(
            client,
            waiter,
            payload=payload,
            topic=topic,
            retain=retain,
            timeout_s=timeout_s,
            where=where,
        )
    finally:
        client.disconnect()
        client.loop_stop()


def publish_many(
    messages: list[tuple[str, bytes]],
    target: BrokerTarget,
    *,
    retain: bool = True,
    timeout_s: float = 30.0,
) -> None:
    """Publish ``(topic, payload)`` pairs at QoS 1 on one connection and wait for every PUBACK.

    What HQ uses for one key message per device. Raises TransportError.
    """
    client, waiter, where = _connect(target)
    try:
        if not waiter.connected.wait(timeout_s):
            raise TransportError(f"broker {where} did not answer the connection in {timeout_s} s")
        if waiter.connect_code is not None and waiter.connect_code.is_failure:
            raise TransportError(f"broker {where} refused the connection: {waiter.connect_code}")
        infos = [
            client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages
        ]
        for (topic, _payload), info in zip(messages, infos, strict=True):
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise TransportError(f"cannot publish to {topic}: {mqtt.error_string(info.rc)}")
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise TransportError(f"no PUBACK from {where} for {topic} within {timeout_s} s")
        if waiter.failed:
            raise TransportError(f"broker {where} refused {len(waiter.failed)} publish(es)")
    finally:
        client.disconnect()
        client.loop_stop()


def _connect(target: BrokerTarget) -> tuple[mqtt.Client, _Waiter, str]:
    waiter = _Waiter()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=target.client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_connect = waiter.on_connect
    client.on_publish = waiter.on_publish
    where = f"{target.host}:{target.port}"
    try:
        if target.tls_ca or target.tls_cert:
            client.tls_set(
                ca_certs=str(target.tls_ca) if target.tls_ca else None,
                certfile=str(target.tls_cert) if target.tls_cert else None,
                keyfile=str(target.tls_key) if target.tls_key else None,
            )
        client.connect(target.host, target.port, keepalive=30)
    except (OSError, ValueError) as exc:
        raise TransportError(f"cannot connect to broker {where}: {exc}") from exc
    client.loop_start()
    return client, waiter, where


def _publish_and_wait(
    client: mqtt.Client,
    waiter: _Waiter,
    *,
    payload: bytes,
    topic: str,
    retain: bool,
    timeout_s: float,
    where: str,
) -> None:
    if not waiter.connected.wait(timeout_s):
        raise TransportError(f"broker {where} did not answer the connection in {timeout_s} s")
    if waiter.connect_code is not None and waiter.connect_code.is_failure:
        raise TransportError(f"broker {where} refused the connection: {waiter.connect_code}")
    info = client.publish(topic, payload, qos=1, retain=retain)
    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        raise TransportError(f"cannot publish to {topic}: {mqtt.error_string(info.rc)}")
    if not waiter.acked.wait(timeout_s):
        raise TransportError(f"no PUBACK from {where} for {topic} within {timeout_s} s")
    if waiter.puback_code is not None and waiter.puback_code.is_failure:
        raise TransportError(f"broker {where} refused the publish to {topic}: {waiter.puback_code}")
