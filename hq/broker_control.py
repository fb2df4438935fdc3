"""Tell the running broker that a device is revoked: kick it now, refuse it from now on.

The CRL alone is not enough: Mosquitto checks it only at the TLS handshake (and
reads it again only on SIGHUP), so a revoked camera that is connected stays
connected. Two standard Mosquitto mechanisms close that, both used by
``raqib hq revoke-device --broker``:

- first a reload signal (SIGHUP, ``systemctl reload mosquitto``) after the new
  CRL is written: Mosquitto 2 rereads ``crlfile`` on SIGHUP, so from then on
  the certificate no longer completes a TLS handshake;
- then the dynamic security plugin (``mosquitto_dynamic_security.so``, shipped
  with Mosquitto 2): HQ's ``hq-control`` client publishes ``createClient`` +
  ``disableClient`` for the device's user name (its certificate CN) to
  ``$CONTROL/dynamic-security/v1``, and the broker disconnects the device at
  once. The order matters: Mosquitto does not consult the plugin's password
  check for clients that log in by certificate, so the kick alone would let the
  device straight back in; after the CRL reload it cannot come back.

Other brokers: EMQX does the same through its REST API (``POST /api/v5/banned``
with ``{"as": "username", "who": "<device>"}`` kicks and refuses the client) and
checks CRLs itself (``ssl_options.enable_crl_check``); see ``docs/scale.md``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.broker import CONTROL_USER
from agent.config import MqttConfig
from agent.errors import TransportError
from agent.transport.uplink import configure_tls

CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = f"{CONTROL_TOPIC}/response"
BROKER_ADMIN_ROLE: Final = "broker-admin"


def dynsec_config(control_user: str = CONTROL_USER) -> dict[str, Any]:
    """The plugin's initial state: only ``control_user`` may use the control API.

    Every other client is unknown to the plugin and the ACL file
    (``deploy/mosquitto/acl``) decides for it.
    """
    control = "$CONTROL/dynamic-security/#"
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [{"username": control_user, "roles": [{"rolename": BROKER_ADMIN_ROLE}]}],
        "groups": [],
        "roles": [
            {
                "rolename": BROKER_ADMIN_ROLE,
                "acls": [
                    {"acltype": "publishClientSend", "topic": control, "allow": True},
                    {"acltype": "publishClientReceive", "topic": control, "allow": True},
                    {"acltype": "subscribePattern", "topic": control, "allow": True},
                ],
            }
        ],
    }


def write_dynsec_config(path: Path, control_user: str = CONTROL_USER) -> None:
    """Write the initial state file if there is none (the plugin rewrites it as it changes)."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps(dynsec_config(control_user), indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


def reload_broker(pid_file: Path) -> None:
    """SIGHUP the broker whose pid is in ``pid_file`` (it rereads its CRL); TransportError if
    not."""
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise TransportError(f"cannot signal the broker from {pid_file}: {exc}") from exc


class BrokerControl:
    """A short-lived MQTT client with the ``hq-control`` certificate that sends control commands."""

    def __init__(self, config: MqttConfig, *, timeout_s: float = 10.0) -> None:
        self._config = config
        self._timeout_s = timeout_s
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._answered = threading.Event()
        self._refusal: str | None = None
        self._responses: list[dict[str, Any]] = []
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{CONTROL_USER}-{os.getpid()}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        configure_tls(self._client, config)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, _c: Any, _u: Any, _f: Any, code: ReasonCode, _p: Any) -> None:
        if code.is_failure:
            self._refusal = f"broker refused the control client: {code}"
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, _m: int, codes: list[ReasonCode], _p: Any) -> None:
        if any(code.is_failure for code in codes):
            self._refusal = f"broker refused {RESPONSE_TOPIC}: {codes}"
        self._subscribed.set()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            answer = json.loads(msg.payload)
            self._responses = list(answer["responses"])
        except (ValueError, KeyError, TypeError):
            self._refusal = f"unreadable control response: {msg.payload[:200]!r}"
        self._answered.set()

    def _wait(self, event: threading.Event, what: str) -> None:
        if not event.wait(self._timeout_s):
            raise TransportError(f"broker control: no {what} within {self._timeout_s:.0f} s")
        if self._refusal is not None:
            raise TransportError(f"broker control: {self._refusal}")

    def send(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send commands and return the broker's responses; TransportError if none come."""
        try:
            self._client.connect(self._config.host, self._config.port, keepalive=30)
        except OSError as exc:
            raise TransportError(f"broker control: cannot connect: {exc}") from exc
        self._client.loop_start()
        try:
            self._wait(self._connected, "CONNACK")
            self._client.subscribe(RESPONSE_TOPIC, qos=1)
            self._wait(self._subscribed, "SUBACK")
            payload = json.dumps({"commands": commands}).encode("utf-8")
            self._client.publish(CONTROL_TOPIC, payload, qos=1)
            self._wait(self._answered, "response")
            return self._responses
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def block(self, username: str) -> None:
        """Disconnect ``username`` now (keeping it out is the CRL's job: reload that first)."""
        responses = self.send(
            [
                {"command": "createClient", "username": username},
                {"command": "disableClient", "username": username},
            ]
        )
        # createClient answers an error when the user is already known: that is fine
        errors = [r for r in responses if r.get("command") == "disableClient" and "error" in r]
        if len(responses) != 2 or errors:
            raise TransportError(f"broker control: block {username!r} failed: {responses}")

    def unblock(self, username: str) -> None:
        """Forget ``username`` in the plugin (a re-enrolled device); the ACL file applies again."""
        responses = self.send([{"command": "deleteClient", "username": username}])
        if len(responses) != 1:
            raise TransportError(f"broker control: unblock {username!r} failed: {responses}")
