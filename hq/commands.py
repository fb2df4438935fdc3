"""HQ-signed remote commands: sign one, publish it on the device's commands topic, record it.

The device acts only on a command signed by HQ's signing key, addressed to it,
fresh (``issued_at``..``expires_at``) and never seen before
(``agent.envelope.decode_command``, ``agent.commands``); it answers with a
``command_reply`` through its outbox, which the ingest stores against the row
recorded here (``HqDatabase.record_command_reply``).

``CommandSender`` is what the console and ``raqib hq command`` use: one MQTT
client (HQ's TLS identity from the ``[mqtt]`` section) that publishes at QoS 1
and waits for the broker's PUBACK. A command is recorded before it is published,
so a quick reply always finds its row; a publish that fails is recorded as
answered ``ok = false`` by HQ itself, so nobody waits for it.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import MqttConfig
from agent.envelope import MAX_COMMAND_TTL_S, Command, encode_command
from agent.errors import PayloadError, TransportError
from agent.messages import COMMAND_ACTIONS
from agent.pki import HqKeys
from agent.transport.topics import Topics
from agent.transport.uplink import configure_tls, disable_nagle
from hq.db import HqDatabase

log = logging.getLogger(__name__)

DEFAULT_TTL_S: Final = 60.0
CONNECT_TIMEOUT_S: Final = 10.0
PUBLISH_TIMEOUT_S: Final = 10.0


def new_command_id() -> str:
    """A random, unique command id (128 bits, hex)."""
    return secrets.token_hex(16)


def sign_command(
    keys: HqKeys,
    device_id: str,
    action: str,
    args: dict[str, Any],
    now: float,
    *,
    ttl_s: float = DEFAULT_TTL_S,
) -> tuple[str, bytes]:
    """``(command_id, payload)`` of a new command signed with HQ's signing key.

    Raises PayloadError for an action the device does not know, a lifetime over
    ``MAX_COMMAND_TTL_S``, or arguments that are not JSON.
    """
    if action not in COMMAND_ACTIONS:
        raise PayloadError(f"action {action!r} is not one of {', '.join(COMMAND_ACTIONS)}")
    if not 0 < ttl_s <= MAX_COMMAND_TTL_S:
        raise PayloadError(f"command lifetime must be within (0, {MAX_COMMAND_TTL_S:.0f}] s")
    command = Command(new_command_id(), device_id, action, dict(args), now, now + ttl_s)
    return command.command_id, encode_command(command, keys.signing)


def _client_id() -> str:
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:30]
    return f"hq-commands-{host}-{secrets.token_hex(4)}"


class CommandSender:
    """Signs, records and publishes commands over one MQTT connection (thread-safe)."""

    def __init__(
        self,
        mqtt: MqttConfig,
        db: HqDatabase,
        keys: HqKeys,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = mqtt
        self._db = db
        self._keys = keys
        self._clock = clock
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=_client_id(),
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        configure_tls(self._client, mqtt)
        self._client.on_socket_open = disable_nagle
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._publish_refusals: dict[int, str] = {}
        self._started = False

    def _on_connect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            log.warning("commands: broker refused the connection: %s", reason_code)
            return
        self._refused = None
        self._connected.set()

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: paho.DisconnectFlags,
        _reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._connected.clear()

    def _on_publish(
        self,
        _client: paho.Client,
        _userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:  # e.g. "Not authorized": the ACL does not let us write there
            self._publish_refusals[mid] = str(reason_code)

    def _ensure_connected(self, timeout_s: float) -> None:
        if not self._started:
            try:
                self._client.connect_async(
                    self._config.host, self._config.port, keepalive=self._config.keepalive_s
                )
            except (OSError, ValueError) as exc:
                raise TransportError(f"commands: cannot connect to the broker: {exc}") from exc
            self._client.loop_start()
            self._started = True
        if not self._connected.wait(timeout_s):
            why = f" (refused: {self._refused})" if self._refused else ""
            raise TransportError(
                f"commands: broker {self._config.host}:{self._config.port} not reachable "
                f"within {timeout_s:.0f} s{why}"
            )

    def send(
        self,
        device_id: str,
        action: str,
        args: dict[str, Any] | None = None,
        *,
        issued_by: str,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> str:
        """Sign, record and publish one command; returns its id once the broker has it.

        Raises PayloadError (bad action or arguments), StorageError (database) or
        TransportError (broker unreachable or refusing; the command is then
        recorded as answered ``ok = false`` by HQ).
        """
        now = self._clock()
        args = dict(args or {})
        command_id, payload = sign_command(self._keys, device_id, action, args, now, ttl_s=ttl_s)
        topic = Topics(self._config.topic_prefix, device_id).commands
        self._db.record_command(
            {
                "command_id": command_id,
                "device_id": device_id,
                "action": action,
                "args": args,
                "issued_by": issued_by,
                "issued_at": now,
                "expires_at": now + ttl_s,
            }
        )
        try:
            with self._lock:
                self._ensure_connected(CONNECT_TIMEOUT_S)
                self._publish(topic, payload)
        except TransportError as exc:
            self._db.record_command_reply(command_id, False, f"not sent by HQ: {exc}", now)
            raise
        log.info(
            "command %s sent",
            command_id,
            extra={"device": device_id, "action": action, "by": issued_by},
        )
        return command_id

    def _publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise TransportError(f"commands: publish failed: {paho.error_string(info.rc)}")
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            raise TransportError(f"commands: publish failed: {exc}") from exc
        if not info.is_published():
            raise TransportError(
                f"commands: the broker did not acknowledge within {PUBLISH_TIMEOUT_S:.0f} s"
            )
        refused = self._publish_refusals.pop(info.mid, None)
        if refused is not None:
            raise TransportError(f"commands: the broker refused the command: {refused}")

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False
            self._connected.clear()

    def __enter__(self) -> CommandSender:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
