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

Acks are signed by HQ (``agent.envelope.decode_ack``): a publisher that is not
HQ cannot make the device delete a message HQ has not stored.

Health: every ``heartbeat_s`` the uplink publishes a sealed status (battery,
storage, temperature, list and model versions, queue depth) *directly*, retained,
QoS 1 and with ``seq`` 0, not through the outbox: only the newest heartbeat
matters, and queuing stale ones behind an hour of hits would only delay hits.
The MQTT last will, sealed at start, is the same status with ``online`` false;
the broker publishes it (retained) if the device vanishes, and a clean stop
publishes it itself.

Flow control: paho holds at most ``window`` un-PUBACKed QoS 1 publishes in
memory (``max_queued_messages``); the rest stay in SQLite until there is room.
And at most ``max_unacked`` messages are out waiting for HQ's ack: when HQ falls
behind, the device stops adding to its backlog instead of piling up resends
that HQ would only recognise as duplicates.
Nothing here raises into the daemon once started: broker absence, refusals and
malformed acks are logged and counted.

Threads: on a camera the uplink runs paho's network thread (``loop_start``) and
its own sender thread. Given a :class:`~agent.transport.shared_loop.SharedLoop`
(the fleet simulator's hundreds of uplinks in one process) it runs on that
loop's shared network and sender threads instead; what it sends and when is
the same.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.errors import PayloadError, StorageError
from agent.messages import STATUS_KIND
from agent.priority import lower_this_thread
from agent.transport.outbox import Outbox
from agent.transport.sealer import Sealer
from agent.transport.topics import Topics

if TYPE_CHECKING:
    from agent.transport.shared_loop import SharedLoop

log = logging.getLogger(__name__)

SESSION_EXPIRY_S: Final = 7 * 24 * 3600
"""How long the broker keeps this device's session (subscription, queued acks) while it is away."""
DEFAULT_WINDOW: Final = 100
DEFAULT_MAX_UNACKED: Final = 1000
DEFAULT_HEARTBEAT_S: Final = 60.0
CONNECT_TIMEOUT_S: Final = 30.0
"""TCP connect + TLS handshake; paho's 5 s default gives up too early on a slow cellular link
or a busy broker (the fleet bench saw whole fleets retrying in step after a broker start)."""

StatusSource = Callable[[], dict[str, Any]]


def configure_tls(client: mqtt.Client, config: MqttConfig) -> None:
    """Turn on TLS (with a client certificate when configured) if ``tls_ca`` is set."""
    if config.tls_ca is None:
        return
    client.tls_set(
        ca_certs=str(config.tls_ca),
        certfile=str(config.tls_cert) if config.tls_cert else None,
        keyfile=str(config.tls_key) if config.tls_key else None,
        cert_reqs=ssl.CERT_REQUIRED,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )


def prepare_persistent(client: mqtt.Client, config: MqttConfig, session_expiry_s: int) -> None:
    """Set the connection up (no I/O yet) for a session the broker keeps ``session_expiry_s``
    seconds, so QoS 1 messages for this client wait at the broker while it is away."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = session_expiry_s
    client.connect_async(
        config.host,
        config.port,
        keepalive=config.keepalive_s,
        clean_start=False,
        properties=props,
    )


def connect_persistent(client: mqtt.Client, config: MqttConfig, session_expiry_s: int) -> None:
    """:func:`prepare_persistent`, then connect and stay connected on paho's own thread."""
    prepare_persistent(client, config, session_expiry_s)
    client.loop_start()


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
        sealer: Sealer,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
        *,
        window: int = DEFAULT_WINDOW,
        max_unacked: int = DEFAULT_MAX_UNACKED,
        status_source: StatusSource | None = None,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        shared: SharedLoop | None = None,
    ) -> None:
        """``shared``: run on that loop's threads instead of paho's and a sender of its own."""
        self._config = config
        self._shared = shared
        device_id = sealer.device_id
        self._sealer = sealer
        self._topics = Topics(config.topic_prefix, device_id)
        self._status_source = status_source
        self._heartbeat_s = heartbeat_s
        self._next_heartbeat = 0.0
        self._since = clock()
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
        self._counts = {
            "sent": 0,
            "resent": 0,
            "acked": 0,
            "bad_acks": 0,
            "storage_errors": 0,
            "heartbeats": 0,
        }
        self._thread: threading.Thread | None = None
        self._started = False
        self._subscriptions: dict[str, Callable[[bytes], None]] = {}
        self._window = window
        self._inflight = 0
        self._max_unacked = max(max_unacked, window)
        self._awaiting: set[int] = set()
        """Sequence numbers published by this uplink and not acked yet (sender thread only)."""
        """Publishes handed to paho and not yet PUBACKed (paho resends them after a reconnect)."""
        self._client = self._make_client(device_id, window)

    def _make_client(self, device_id: str, window: int) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        configure_tls(client, self._config)
        client.will_set(self._topics.status, self._status_payload(online=False), qos=1, retain=True)
        client.reconnect_delay_set(1, max(1, round(self._config.reconnect_max_s)))
        client.connect_timeout = CONNECT_TIMEOUT_S
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
        if self._started:
            raise RuntimeError("uplink already started")
        self._started = True
        if self._shared is not None:
            prepare_persistent(self._client, self._config, SESSION_EXPIRY_S)
            self._shared.open(self._client, self._config.reconnect_max_s)
            self._shared.add_sender(self)
            return
        connect_persistent(self._client, self._config, SESSION_EXPIRY_S)
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending and disconnect; what is not acked stays in the outbox for next time."""
        self._stopping.set()
        self._notify()
        if self._shared is not None:
            self._shared.remove_sender(self, timeout)
            self._apply_last_acks()
        elif self._thread is not None:
            self._thread.join(timeout)
        if self._connected.is_set():
            # a clean disconnect sends no last will: say "offline" ourselves
            info = self._client.publish(
                self._topics.status, self._status_payload(online=False), qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(min(timeout, 2.0))
        if self._shared is not None:
            self._shared.close_client(self._client, min(timeout, 2.0))
        else:
            self._client.disconnect()
            self._client.loop_stop()
        self._connected.clear()

    def subscribe(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Deliver messages on ``topic`` (e.g. the watchlist) to ``handler``; call before start.

        The handler runs on paho's network thread: it must only hand the payload on.
        """
        self._subscriptions[topic] = handler

    def heartbeat_now(self) -> None:
        """Publish a heartbeat now (or on connecting), e.g. for HQ's ``send_status`` command."""
        self._next_heartbeat = 0.0
        self._notify()

    def wake(self) -> None:
        """Tell the sender a message was just put, so it goes out now, not at the next poll."""
        self._notify()

    def report_status_now(self) -> None:
        """Send a heartbeat at the next step, not at the next period (e.g. a new watchlist
        was applied: HQ's view of the rollout should not wait up to ``heartbeat_s``)."""
        self._next_heartbeat = 0.0
        self._notify()

    def _notify(self) -> None:
        if self._shared is not None:
            self._shared.wake(self)
        else:
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
        with self._lock:  # what paho still holds and will resend on this connection
            self._inflight = len(getattr(client, "_out_messages", ()))
        client.subscribe([(self._topics.acks, 1), *((t, 1) for t in self._subscriptions)])
        if not flags.session_present:
            with self._lock:
                self._session_lost = True
        self._connected.set()
        self._notify()

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
        with self._lock:
            self._inflight = max(0, self._inflight - 1)
            room = self._inflight <= self._window // 2
        if room:
            self._notify()  # refill the window in one go, not one message per PUBACK

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
                    "uplink: broker refused a subscription (%s, %s): %s",
                    self._topics.acks,
                    ", ".join(self._subscriptions),
                    code,
                )

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        handler = self._subscriptions.get(msg.topic)
        if handler is not None:
            handler(bytes(msg.payload))
            return
        if msg.topic != self._topics.acks:
            log.warning("uplink: ignored a message on unexpected topic %r", msg.topic)
            return
        try:
            seqs = self._sealer.open_ack(msg.payload)
        except PayloadError as exc:
            self._count("bad_acks")
            log.warning("uplink: ignored a malformed ack: %s", exc)
            return
        with self._lock:
            self._pending_acks.extend(seqs)
        self._notify()

    def _where(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    # -- sender ------------------------------------------------------------------

    @property
    def poll_s(self) -> float:
        """The sender steps at least this often (resends and heartbeats fall due by time)."""
        return self._poll_s

    def step(self) -> float:
        """One round of the sender; returns how long to pause before the next (after an
        error), else 0. Run by the uplink's own thread or by a shared loop's sender."""
        try:
            self._step()
        except StorageError as exc:
            self._count("storage_errors")
            log.error("uplink: outbox failed: %s", exc)
            return 1.0
        except Exception:
            # The sender must outlive any bug: a dead sender would strand every hit.
            log.exception("uplink: unexpected error in the sender; retrying in 1 s")
            return 1.0
        return 0.0

    def _run(self) -> None:
        lower_this_thread()  # hits are already stored; the officer's alert is not waiting on this
        while not self._stopping.is_set():
            self._wake.wait(self._poll_s)
            self._wake.clear()
            if pause := self.step():
                self._stopping.wait(pause)
        self._apply_last_acks()

    def _apply_last_acks(self) -> None:
        try:
            self._apply_acks()
        except StorageError as exc:
            log.error("uplink: could not apply the last acks: %s", exc)

    def _step(self) -> None:
        self._apply_acks()
        self._reset_if_session_lost()
        if self._connected.is_set() and self._outbox.depth() > 0:
            self._send_due()
        self._heartbeat()

    # -- status ------------------------------------------------------------------

    def _status_payload(self, *, online: bool) -> bytes:
        body: dict[str, Any] = {}
        if online and self._status_source is not None:
            try:
                body.update(self._status_source())
            except Exception:
                log.exception("uplink: status source failed; heartbeat without its figures")
        body.update(online=online, connected_at=self._since)
        if online:
            body["queue_depth"] = self._outbox.depth()
        return self._sealer.seal(STATUS_KIND, 0, self._topics.status, body)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if not self._connected.is_set() or now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self._heartbeat_s
        try:
            payload = self._status_payload(online=True)
        except PayloadError as exc:
            log.error("uplink: heartbeat not sent: %s", exc)
            return
        self._publish(self._topics.status, payload, retain=True)
        self._count("heartbeats")

    def _apply_acks(self) -> None:
        with self._lock:
            seqs, self._pending_acks = self._pending_acks, []
        if seqs:
            removed = self._outbox.ack(seqs)
            self._awaiting.difference_update(seqs)
            self._count("acked", removed)

    def _reset_if_session_lost(self) -> None:
        with self._lock:
            lost, self._session_lost = self._session_lost, False
        if lost:
            n = self._outbox.reset_sent()
            if n:
                log.info("uplink: new broker session; %d unacked message(s) due again", n)

    def _publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Publish at QoS 1, counting it in flight first (its PUBACK may come at once)."""
        with self._lock:
            self._inflight += 1
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            with self._lock:
                self._inflight -= 1
        return info

    def _send_due(self) -> None:
        with self._lock:
            free = self._window - self._inflight
        if free <= 0:
            return
        now = self._clock()
        if len(self._awaiting) > self._outbox.depth():
            self._awaiting.clear()  # some left without an ack (dropped when full): recount
        room = self._max_unacked - len(self._awaiting)
        if room > 0:
            items = self._outbox.due(now, self._config.ack_timeout_s, min(free, room))
        else:  # HQ is behind: only what is overdue goes out again
            items = self._outbox.due(now, self._config.ack_timeout_s, free, resends_only=True)
        handed: list[int] = []
        for item in items:
            info = self._publish(item.topic, item.payload)
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                break  # window full: the next PUBACK wakes us
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning(
                    "uplink: publish of seq %d failed: %s", item.seq, mqtt.error_string(info.rc)
                )
                break
            # NO_CONN: paho keeps it queued and sends it on reconnect
            handed.append(item.seq)
            self._awaiting.add(item.seq)
            self._count("sent" if item.last_sent_at is None else "resent")
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                break
        self._outbox.mark_sent(handed, now)
