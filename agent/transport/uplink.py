"""The device's MQTT uplink: drains the durable outbox to HQ and applies HQ's acks.

Delivery guarantee: at least once, end to end. A message leaves the outbox only
when HQ's application ack names its sequence number; until then it is published
again every ``ack_timeout_s``. HQ deduplicates on ``(device, seq)``, so at least
once plus deduplication is exactly once in HQ's database.

The MQTT session (client id = device id, ``clean_start=False``, a session expiry
of a week) lets the broker queue acks while the device is away; when the broker
has lost the session (``session_present`` false: restarted without persistence,
or expired) every sent-but-unacked message is made due at once rather than
waiting out its timer.

Flow control: paho holds at most ``window`` unacknowledged QoS 1 publishes in
memory (``max_queued_messages``); the rest stay in SQLite until there is room.
Nothing here raises into the daemon once started: broker absence, refusals and
malformed acks are logged and counted.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.envelope import decode_ack
from agent.errors import PayloadError, StorageError
from agent.transport.outbox import Outbox
from agent.transport.topics import Topics

log = logging.getLogger(__name__)

SESSION_EXPIRY_S: Final = 7 * 24 * 3600
"""How long the broker keeps this device's session (subscription, queued acks) while it is away."""
DEFAULT_WINDOW: Final = 100


def disable_nagle(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """paho ``on_socket_open``: send small packets at once.

    paho leaves Nagle's algorithm on; a PUBLISH written right after a PUBACK then
    waits for the broker's delayed TCP ack, about 40 ms per hit on loopback.
    """
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is not None:
        with contextlib.suppress(OSError):
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Uplink:
    """Publishes due outbox messages at QoS 1 while connected; deletes them on HQ's ack."""

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
        *,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self._config = config
        self._topics = Topics(config.topic_prefix, device_id)
        self._outbox = outbox
        self._clock = clock
        self._poll_s = min(1.0, config.ack_timeout_s / 4)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._pending_acks: list[int] = []
        self._session_lost = False
        self._reachable = True
        self._counts = {"sent": 0, "resent": 0, "acked": 0, "bad_acks": 0, "storage_errors": 0}
        self._thread: threading.Thread | None = None
        self._window = window
        self._client = self._make_client(device_id, window)

    def _make_client(self, device_id: str, window: int) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.reconnect_delay_set(1, max(1, round(self._config.reconnect_max_s)))
        client.max_inflight_messages_set(window)
        client.max_queued_messages_set(window)
        client.on_socket_open = disable_nagle
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Begin connecting (in the background) and sending; never raises if the broker is away."""
        if self._thread is not None:
            raise RuntimeError("uplink already started")
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
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending and disconnect; what is not acked stays in the outbox for next time."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def wake(self) -> None:
        """Tell the sender a message was just put, so it goes out now, not at the next poll."""
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stats(self) -> dict[str, int]:
        """Counters since start (sent, resent, acked, bad_acks, storage_errors) and outbox depth."""
        with self._lock:
            counts = dict(self._counts)
        counts["depth"] = self._outbox.depth()
        return counts

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    # -- paho callbacks (network thread: no disk I/O here) -------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("uplink: broker %s refused the connection: %s", self._where(), reason_code)
            return
        log.info(
            "uplink: connected to %s as %s (session present: %s)",
            self._where(),
            self._topics.device_id,
            flags.session_present,
        )
        self._reachable = True
        client.subscribe(self._topics.acks, qos=1)
        if not flags.session_present:
            with self._lock:
                self._session_lost = True
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        if self._reachable:
            log.warning("uplink: cannot reach broker %s; retrying in the background", self._where())
        self._reachable = False

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._stopping.is_set():
            log.info("uplink: disconnected (%s)", reason_code)
        elif was_connected:
            log.warning("uplink: lost broker %s: %s; reconnecting", self._where(), reason_code)

    def _on_publish(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("uplink: broker refused publish %d: %s (resent later)", mid, reason_code)
        self._wake.set()  # room in the window

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        for code in reason_codes:
            if code.is_failure:
                log.error(
                    "uplink: broker refused the subscription to %s: %s; no ack can arrive",
                    self._topics.acks,
                    code,
                )

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != self._topics.acks:
            log.warning("uplink: ignored a message on unexpected topic %r", msg.topic)
            return
        try:
            seqs = decode_ack(msg.payload)
        except PayloadError as exc:
            self._count("bad_acks")
            log.warning("uplink: ignored a malformed ack: %s", exc)
            return
        with self._lock:
            self._pending_acks.extend(seqs)
        self._wake.set()

    def _where(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    # -- sender thread -------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._poll_s)
            self._wake.clear()
            try:
                self._step()
            except StorageError as exc:
                self._count("storage_errors")
                log.error("uplink: outbox failed: %s", exc)
                self._stopping.wait(1.0)
            except Exception:
                # The sender must outlive any bug: a dead thread would strand every hit.
                log.exception("uplink: unexpected error in the sender; retrying in 1 s")
                self._stopping.wait(1.0)
        try:
            self._apply_acks()
        except StorageError as exc:
            log.error("uplink: could not apply the last acks: %s", exc)

    def _step(self) -> None:
        self._apply_acks()
        self._reset_if_session_lost()
        if self._connected.is_set() and self._outbox.depth() > 0:
            self._send_due()

    def _apply_acks(self) -> None:
        with self._lock:
            seqs, self._pending_acks = self._pending_acks, []
        if seqs:
            removed = self._outbox.ack(seqs)
            self._count("acked", removed)

    def _reset_if_session_lost(self) -> None:
        with self._lock:
            lost, self._session_lost = self._session_lost, False
        if lost:
            n = self._outbox.reset_sent()
            if n:
                log.info("uplink: new broker session; %d unacked message(s) due again", n)

    def _send_due(self) -> None:
        now = self._clock()
        items = self._outbox.due(now, self._config.ack_timeout_s, self._window)
        handed: list[int] = []
        for item in items:
            info = self._client.publish(item.topic, item.payload, qos=1)
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                break  # window full: the next PUBACK wakes us
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning(
                    "uplink: publish of seq %d failed: %s", item.seq, mqtt.error_string(info.rc)
                )
                break
            # NO_CONN: paho keeps it queued and sends it on reconnect
            handed.append(item.seq)
            self._count("sent" if item.last_sent_at is None else "resent")
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                break
        self._outbox.mark_sent(handed, now)
