"""HQ ingest: receive sealed messages from every device, verify, store each once, acknowledge.

Workers share the subscriptions
``$share/{group}/{prefix}/devices/+/{hits,ledger,status,events}``,
so the broker gives each message to one of them; run several in one process or
on several machines (``raqib hq ingest --workers N`` starts N processes). For
each message, in order:

1. the topic must be a device's uplink topic and the clear header must name the
   device the topic names (a device cannot speak for another);
2. the device must be enrolled and not revoked (the registry is re-read every
   ``registry_refresh_s`` and whenever an unknown device shows up);
3. the message is decrypted with HQ's key and the signature verified against the
   device's enrolled key; the body is checked (``PayloadError`` otherwise);
   a status updates the device's row if it is newer than the one held (fields
   HQ does not know, from a newer device, are left out and logged once);
4. hits, ledger entries, officer dispositions and command replies (``events``)
   are stored in batches, one transaction per batch; a
   duplicate ``(device, seq)`` (a resend or a replay) is recognised and not
   stored again;
5. only after the commit, one signed ack per device names every stored or
   duplicate ``seq`` of the batch, so a device whose first ack was lost can
   delete the message. Heartbeats (``seq`` 0) are not acked: they are not
   queued; a status that did come through the outbox (``seq`` > 0) is stored,
   counted in the sequence and acked like any other message.

A refused message is logged with its reason, counted as ``rejected`` and never
acked; a storage failure is logged and not acked, so the device sends it again.
Nothing a device sends can stop the service.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.envelope import MAX_ACK_SEQS, Envelope, decode_message, encode_ack, open_message
from agent.errors import PayloadError, StorageError
from agent.messages import (
    COMMAND_REPLY_KIND,
    DISPOSITION_KIND,
    HIT_KIND,
    LEDGER_KIND,
    STATUS_KIND,
    HitRecord,
    StatusRecord,
    parse_command_reply_body,
    parse_disposition_body,
    parse_hit_body,
    parse_status_body,
)
from agent.pki import HqKeys
from agent.transport.topics import Topics, channel_from_topic, hq_hits_subscription
from agent.transport.uplink import configure_tls, connect_persistent, disable_nagle
from hq.db import HqDatabase, Incoming, StatusReport

log = logging.getLogger(__name__)

SESSION_EXPIRY_S: Final = 600
"""The broker keeps a worker's session (and its share of messages) this long across a restart."""
BATCH_MAX: Final = 500
BATCH_WAIT_S: Final = 0.01
QUEUE_MAX: Final = 5000
CHANNEL_KINDS: Final = {
    "hits": (HIT_KIND,),
    "ledger": (LEDGER_KIND,),
    "status": (STATUS_KIND,),
    "events": (DISPOSITION_KIND, COMMAND_REPLY_KIND),
}
"""Which message kinds each uplink channel carries; anything else is refused."""

OnStored = Callable[[str, int, HitRecord], None]


def default_client_id(group: str = "hq-ingest") -> str:
    """A stable client id per host, so a restarted worker resumes its MQTT session."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    return f"{group}-{host}"


@dataclass(frozen=True, slots=True)
class Opened:
    """One verified device message: a heartbeat (``status``) and/or something to store."""

    envelope: Envelope
    status: StatusRecord | None
    incoming: Incoming | None
    """None for a heartbeat (``seq`` 0): nothing to store or ack."""


def open_uplink(
    prefix: str,
    topic: str,
    payload: bytes,
    received_at: float,
    *,
    hq_key: X25519PrivateKey,
    key_of: Callable[[str], Ed25519PublicKey],
) -> Opened:
    """Steps 1 to 3 for one message: topic, header, sender's key, decryption, signature,
    body. ``key_of`` gives an enrolled device's key (PayloadError if none). Raises
    PayloadError saying what was wrong; the contract tests feed the device's real
    messages through this very function."""
    device_id, channel = channel_from_topic(prefix, topic)
    kinds = CHANNEL_KINDS.get(channel)
    if kinds is None:
        raise PayloadError(f"topic {topic!r} is not a device uplink topic")
    header = decode_message(payload)
    if header.device != device_id:
        raise PayloadError(
            f"envelope says device {header.device!r} but arrived on {device_id!r}'s topic"
        )
    if header.kind not in kinds:
        raise PayloadError(f"message kind {header.kind!r} on a {channel} topic")
    envelope = open_message(header, topic, hq_key=hq_key, device_key=key_of(device_id))
    kind, body = envelope.kind, envelope.body
    status = parse_status_body(body) if kind == STATUS_KIND else None
    if status is not None and envelope.seq == 0:
        return Opened(envelope, status, None)
    record = parse_hit_body(body) if kind == HIT_KIND else None
    if kind == DISPOSITION_KIND:
        parse_disposition_body(body)
    elif kind == COMMAND_REPLY_KIND:
        parse_command_reply_body(body)
    incoming = Incoming(
        device_id,
        envelope.seq,
        kind,
        envelope.sent_at,
        received_at,
        record=record,
        body=None if record is not None else body,
    )
    return Opened(envelope, status, incoming)


@dataclass(frozen=True, slots=True)
class _Raw:
    topic: str
    payload: bytes
    received_at: float


class Registry:
    """A cached view of the device registry: enrolled keys, revoked devices as ``None``."""

    def __init__(self, db: HqDatabase, refresh_s: float, clock: Callable[[], float]) -> None:
        self._db = db
        self._refresh_s = refresh_s
        self._clock = clock
        self._keys: dict[str, tuple[Ed25519PublicKey | None, int]] = {}
        self._loaded_at = float("-inf")

    def key_of(self, device_id: str) -> Ed25519PublicKey:
        """The device's key; raises PayloadError if it is not enrolled or revoked."""
        return self.lookup(device_id)[0]

    def lookup(self, device_id: str) -> tuple[Ed25519PublicKey, int]:
        """The device's key and enrolment epoch; PayloadError if not enrolled or revoked."""
        now = self._clock()
        stale = now - self._loaded_at >= self._refresh_s
        # an unknown id reloads at most once a second, so junk ids cannot hammer the database
        if stale or (device_id not in self._keys and now - self._loaded_at >= 1.0):
            self._keys = self._db.registry()
            self._loaded_at = now
        if device_id not in self._keys:
            raise PayloadError(f"device {device_id!r} is not enrolled")
        key, epoch = self._keys[device_id]
        if key is None:
            raise PayloadError(f"device {device_id!r} is revoked")
        return key, epoch


class IngestService:
    """One HQ ingest worker: MQTT in, verify and decrypt, database in batches, signed acks out."""

    def __init__(
        self,
        mqtt: MqttConfig,
        db: HqDatabase,
        keys: HqKeys,
        *,
        group: str = "hq-ingest",
        client_id: str | None = None,
        on_stored: OnStored | None = None,
        clock: Callable[[], float] = time.time,
        registry_refresh_s: float = 5.0,
    ) -> None:
        """Workers of one ``group`` share the load; each needs its own stable ``client_id``."""
        self._config = mqtt
        self._db = db
        self._keys = keys
        self._prefix = mqtt.topic_prefix
        self._subscriptions = [
            hq_hits_subscription(self._prefix, group, channel) for channel in CHANNEL_KINDS
        ]
        self._ignored_fields: set[str] = set()
        self._registry = Registry(db, registry_refresh_s, clock)
        self._on_stored = on_stored
        self._clock = clock
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._inbox: queue.Queue[_Raw | None] = queue.Queue(QUEUE_MAX)
        self._counts = {
            "received": 0,
            "stored": 0,
            "duplicates": 0,
            "rejected": 0,
            "storage_errors": 0,
            "acks_sent": 0,
            "status": 0,
            "batches": 0,
        }
        self.client_id = client_id or default_client_id(group)
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        configure_tls(self._client, mqtt)
        self._client.reconnect_delay_set(1, max(1, round(mqtt.reconnect_max_s)))
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.on_socket_open = disable_nagle
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._statuses: list[StatusReport] = []
        """Statuses verified in the current batch (store thread only)."""

    def start(self) -> None:
        """Connect in the background and begin ingesting; never raises if the broker is away."""
        if self._worker is not None:
            raise RuntimeError("ingest service already started")
        self._worker = threading.Thread(target=self._run, name="ingest-store", daemon=True)
        self._worker.start()
        connect_persistent(self._client, self._config, SESSION_EXPIRY_S)

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect after storing and acking what arrived; the broker keeps the session."""
        self._stopping = True
        if self._worker is not None:
            self._inbox.put(None)
            self._worker.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stats(self) -> dict[str, int]:
        """Counters: received, stored, duplicates, rejected, storage_errors, acks_sent, status."""
        with self._lock:
            return dict(self._counts)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    # -- paho callbacks (network thread) ---------------------------------------

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
            "ingest: %s connected to %s:%d (session present: %s)",
            self.client_id,
            self._config.host,
            self._config.port,
            flags.session_present,
        )
        client.subscribe([(sub, 1) for sub in self._subscriptions])
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
        for sub, code in zip(self._subscriptions, reason_codes, strict=False):
            if code.is_failure:
                log.error("ingest: broker refused subscription %s: %s", sub, code)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        # Blocking here when the store falls behind pushes back on the broker (TCP).
        raw = _Raw(_topic_of(msg), bytes(msg.payload), self._clock())
        while not self._stopping:
            try:
                self._inbox.put(raw, timeout=0.5)
            except queue.Full:
                continue
            return

    # -- store thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch, done = self._collect()
            if batch:
                try:
                    self._process(batch)
                except Exception:
                    # The store thread must outlive any bug: nothing here is acked.
                    log.exception("ingest: unexpected error on a batch (not acked)")
            if done:
                return

    def _collect(self) -> tuple[list[_Raw], bool]:
        first = self._inbox.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + BATCH_WAIT_S
        while len(batch) < BATCH_MAX:
            try:
                item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _process(self, batch: list[_Raw]) -> None:
        self._count("received", len(batch))
        verified: list[Incoming] = []
        for raw in batch:
            try:
                item = self._verify(raw)
            except PayloadError as exc:
                self._count("rejected")
                log.warning("ingest: rejected a message on %r: %s", raw.topic, exc)
                continue
            if item is not None:
                verified.append(item)
        if verified:
            self._store(verified)
        self._flush_statuses()

    def _verify(self, raw: _Raw) -> Incoming | None:
        """The checked message to store, None for a heartbeat (recorded here); or PayloadError."""
        opened = open_uplink(
            self._prefix,
            raw.topic,
            raw.payload,
            raw.received_at,
            hq_key=self._keys.encryption,
            key_of=self._registry.key_of,
        )
        if opened.status is not None:
            self._record_status(opened.envelope, opened.status, raw.received_at)
        if opened.incoming is None:
            return None
        # the epoch of the key that verified it (a re-provisioned device starts a new one)
        _, epoch = self._registry.lookup(opened.envelope.device)
        return dataclasses.replace(opened.incoming, epoch=epoch)

    def _record_status(self, envelope: Envelope, status: StatusRecord, received_at: float) -> None:
        new = set(status.ignored) - self._ignored_fields
        if new:
            self._ignored_fields |= new
            log.warning(
                "ingest: status of %s has fields HQ does not know or of the wrong type, "
                "left out (logged once per field): %s",
                envelope.device,
                ", ".join(sorted(new)),
            )
        self._statuses.append(
            StatusReport(envelope.device, status.fields, envelope.sent_at, received_at)
        )

    def _flush_statuses(self) -> None:
        """Write the batch's statuses in one transaction, after its hits (hits go first)."""
        reports, self._statuses = self._statuses, []
        if not reports:
            return
        try:
            fresh = self._db.record_statuses(reports)
        except StorageError as exc:
            self._count("storage_errors")
            log.error("ingest: %d status(es) not stored: %s", len(reports), exc)
            return
        self._count("status", len(reports))
        for report, new in zip(reports, fresh, strict=True):
            if not new:
                log.info("ingest: ignored a stale or replayed status of %s", report.device_id)

    def _store(self, items: list[Incoming]) -> None:
        try:
            results = self._db.store_batch(items)
        except StorageError as exc:
            self._count("storage_errors", len(items))
            log.error("ingest: %d message(s) not stored, not acked: %s", len(items), exc)
            return
        stored = sum(1 for r in results if r is True)
        unknown = sum(1 for r in results if r is None)
        self._count("stored", stored)
        self._count("duplicates", len(items) - stored - unknown)
        self._count("rejected", unknown)
        self._count("batches")
        to_ack: dict[str, list[int]] = defaultdict(list)
        for item, result in zip(items, results, strict=True):
            if result is None:
                log.warning(
                    "ingest: %s/%d not acked: device not enrolled, or epoch superseded", *_id(item)
                )
                continue
            to_ack[item.device_id].append(item.seq)
        for device_id, seqs in to_ack.items():
            self._ack(device_id, seqs)
        if self._on_stored is not None:
            self._notify(items, results)

    def _notify(self, items: list[Incoming], results: list[bool | None]) -> None:
        assert self._on_stored is not None
        for item, new in zip(items, results, strict=True):
            if new is not True or item.record is None:
                continue
            try:
                self._on_stored(item.device_id, item.seq, item.record)
            except Exception:
                log.exception(
                    "ingest: on_stored failed for %s/%d (stored)", item.device_id, item.seq
                )

    def _ack(self, device_id: str, seqs: list[int]) -> None:
        topic = Topics(self._prefix, device_id).acks
        for start in range(0, len(seqs), MAX_ACK_SEQS):
            chunk = seqs[start : start + MAX_ACK_SEQS]
            payload = encode_ack(device_id, chunk, self._keys.signing)
            info = self._client.publish(topic, payload, qos=1)
            if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self._count("acks_sent", len(chunk))  # NO_CONN: paho sends it on reconnect
            else:
                log.warning(
                    "ingest: ack of %d message(s) of %s not sent: %s",
                    len(chunk),
                    device_id,
                    paho.error_string(info.rc),
                )


def _id(item: Incoming) -> tuple[str, int]:
    return item.device_id, item.seq


def _topic_of(msg: paho.MQTTMessage) -> str:
    try:
        return msg.topic
    except UnicodeDecodeError:
        return "(topic is not UTF-8)"
