"""HQ ingest: receive hits from every device, store each once, acknowledge it.

Workers share the subscription ``$share/{group}/{prefix}/devices/+/hits``, so
the broker gives each message to one of them. For each message, in order:

1. the topic must be a device's hits topic, and the envelope's ``device`` must be
   the device the topic names (a device cannot speak for another);
2. the envelope and the hit body are decoded and checked (``PayloadError``);
3. the hit is stored; a duplicate ``(device, seq)`` is recognised and not stored again;
4. only then an ack naming ``seq`` goes to the device's acks topic at QoS 1, for
   duplicates too, so a device whose first ack was lost can delete the message.

A bad message is logged with its reason, counted as ``rejected`` and never
acked; a storage failure is logged and not acked, so the device sends it again.
Nothing a device sends can stop the service.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.envelope import Envelope, decode_message, encode_ack
from agent.errors import PayloadError, StorageError
from agent.hq.db import HqDatabase
from agent.messages import HIT_KIND, HitRecord, parse_hit_body
from agent.transport.topics import Topics, device_id_from_topic, hq_hits_subscription
from agent.transport.uplink import disable_nagle

log = logging.getLogger(__name__)

SESSION_EXPIRY_S: Final = 600
"""The broker keeps a worker's session (and its share of hits) this long across a restart."""

OnStored = Callable[[str, int, HitRecord], None]


def default_client_id(group: str = "hq-ingest") -> str:
    """A stable client id per host, so a restarted worker resumes its MQTT session."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    return f"{group}-{host}"


class IngestService:
    """One HQ ingest worker: MQTT in, database, acks out."""

    def __init__(
        self,
        mqtt: MqttConfig,
        db: HqDatabase,
        group: str = "hq-ingest",
        client_id: str | None = None,
        on_stored: OnStored | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Workers of one ``group`` share the load; each needs its own stable ``client_id``."""
        self._config = mqtt
        self._db = db
        self._prefix = mqtt.topic_prefix
        self._subscription = hq_hits_subscription(self._prefix, group)
        self._on_stored = on_stored
        self._clock = clock
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._counts = {
            "received": 0,
            "stored": 0,
            "duplicates": 0,
            "rejected": 0,
            "storage_errors": 0,
            "acks_sent": 0,
        }
        self.client_id = client_id or default_client_id(group)
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.reconnect_delay_set(1, max(1, round(mqtt.reconnect_max_s)))
        self._client.on_socket_open = disable_nagle
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._started = False
        self._stopping = False

    def start(self) -> None:
        """Connect in the background and begin ingesting; never raises if the broker is away."""
        if self._started:
            raise RuntimeError("ingest service already started")
        self._started = True
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(
            self._config.host,
            self._config.port,
            keepalive=self._config.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect; the broker keeps this worker's session for ``SESSION_EXPIRY_S``."""
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stats(self) -> dict[str, int]:
        """Counters: received, stored, duplicates, rejected, storage_errors, acks_sent."""
        with self._lock:
            return dict(self._counts)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    # -- paho callbacks --------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("ingest: broker refused the connection: %s", reason_code)
            return
        log.info(
            "ingest: %s connected to %s:%d (session present: %s), subscribing to %s",
            self.client_id,
            self._config.host,
            self._config.port,
            flags.session_present,
            self._subscription,
        )
        client.subscribe(self._subscription, qos=1)
        self._connected.set()

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if self._stopping:
            log.info("ingest: disconnected (%s)", reason_code)
        elif self._connected.is_set():
            log.warning("ingest: lost the broker: %s; reconnecting", reason_code)
        self._connected.clear()

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: Any,
        _mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        for code in reason_codes:
            if code.is_failure:
                log.error("ingest: broker refused subscription %s: %s", self._subscription, code)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        # paho's network thread dies with an exception raised here: nothing may escape.
        try:
            self._handle(msg)
        except Exception:
            log.exception("ingest: unexpected error handling a message (not acked)")

    # -- processing -------------------------------------------------------------

    def _handle(self, msg: paho.MQTTMessage) -> None:
        self._count("received")
        try:
            device_id, envelope, record = self._check(msg)
        except PayloadError as exc:
            self._count("rejected")
            log.warning("ingest: rejected a message on %r: %s", _topic_of(msg), exc)
            return
        try:
            stored = self._db.store_hit(device_id, envelope.seq, record, self._clock())
        except StorageError as exc:
            self._count("storage_errors")
            log.error("ingest: hit %s/%d not stored, not acked: %s", device_id, envelope.seq, exc)
            return
        self._count("stored" if stored else "duplicates")
        self._ack(device_id, envelope.seq)
        if stored and self._on_stored is not None:
            try:
                self._on_stored(device_id, envelope.seq, record)
            except Exception:
                log.exception(
                    "ingest: on_stored failed for %s/%d (hit stored)", device_id, envelope.seq
                )

    def _check(self, msg: paho.MQTTMessage) -> tuple[str, Envelope, HitRecord]:
        device_id = device_id_from_topic(self._prefix, _topic_of(msg))
        envelope = decode_message(msg.payload)
        if envelope.device != device_id:
            raise PayloadError(
                f"envelope says device {envelope.device!r} but arrived on {device_id!r}'s topic"
            )
        if envelope.kind != HIT_KIND:
            raise PayloadError(f"message kind {envelope.kind!r} on a hits topic")
        return device_id, envelope, parse_hit_body(envelope.body)

    def _ack(self, device_id: str, seq: int) -> None:
        topic = Topics(self._prefix, device_id).acks
        info = self._client.publish(topic, encode_ack([seq]), qos=1)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._count("acks_sent")  # NO_CONN: paho sends it after reconnecting
        else:
            log.warning(
                "ingest: ack of %s/%d not sent: %s", device_id, seq, paho.error_string(info.rc)
            )


def _topic_of(msg: paho.MQTTMessage) -> str:
    try:
        return msg.topic
    except UnicodeDecodeError:
        return "(topic is not UTF-8)"
