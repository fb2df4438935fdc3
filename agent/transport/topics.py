"""The MQTT topic scheme, in one place.

Every topic lives under one versioned prefix (``raqib/v1`` by default)::

    {prefix}/devices/{device_id}/hits       device -> HQ  hits (QoS 1, outbox)
    {prefix}/devices/{device_id}/ledger     device -> HQ  evidence ledger entries (QoS 1, outbox)
    {prefix}/devices/{device_id}/acks       HQ -> device  signed application acks
    {prefix}/devices/{device_id}/status     device -> HQ  heartbeat, retained, last will
    {prefix}/devices/{device_id}/events     device -> HQ  dispositions, command replies (outbox)
    {prefix}/devices/{device_id}/commands   HQ -> device  signed commands
    {prefix}/watchlist                      HQ -> devices signed watchlist updates

The per-device layout is what the broker ACLs key on
(``deploy/mosquitto/acl.template``): a device may publish only its own hits,
ledger, status and events topics and read only its own acks and commands and the
watchlist.
"""

from __future__ import annotations

import re

from agent.errors import PayloadError

DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
"""Same rule as ``agent.config.DeviceConfig.id``; it keeps wildcards and slashes out of topics."""

DEVICE_CHANNELS = ("hits", "ledger", "acks", "status", "commands", "events")
UPLINK_CHANNELS = ("hits", "ledger", "status", "events")
"""What devices publish and HQ ingest reads."""


def _check_device_id(device_id: str) -> str:
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise PayloadError(f"device id {device_id!r} is not lower-case letters, digits and dashes")
    return device_id


class Topics:
    """The topics one device publishes and subscribes to."""

    __slots__ = ("device_id", "prefix")

    def __init__(self, prefix: str, device_id: str) -> None:
        """Raises PayloadError if ``device_id`` could not be part of a topic."""
        self.prefix = prefix.rstrip("/")
        self.device_id = _check_device_id(device_id)

    def _device(self, channel: str) -> str:
        return f"{self.prefix}/devices/{self.device_id}/{channel}"

    @property
    def hits(self) -> str:
        return self._device("hits")

    @property
    def ledger(self) -> str:
        return self._device("ledger")

    @property
    def acks(self) -> str:
        return self._device("acks")

    @property
    def status(self) -> str:
        return self._device("status")

    @property
    def commands(self) -> str:
        return self._device("commands")

    @property
    def events(self) -> str:
        return self._device("events")

    @property
    def watchlist(self) -> str:
        return f"{self.prefix}/watchlist"


def hq_hits_subscription(prefix: str, group: str = "hq-ingest", channel: str = "hits") -> str:
    """The shared subscription HQ ingest workers use: each message goes to one worker."""
    return f"$share/{group}/{prefix.rstrip('/')}/devices/+/{channel}"


def channel_from_topic(prefix: str, topic: str) -> tuple[str, str]:
    """``(device_id, channel)`` of a per-device topic; raises PayloadError if it does not fit."""
    device_id = device_id_from_topic(prefix, topic)
    return device_id, topic.rsplit("/", 1)[1]


def device_id_from_topic(prefix: str, topic: str) -> str:
    """The device id in a per-device topic; raises PayloadError if the topic does not fit."""
    head = prefix.rstrip("/") + "/devices/"
    if not topic.startswith(head):
        raise PayloadError(f"topic {topic!r} is not under {head!r}")
    parts = topic[len(head) :].split("/")
    if len(parts) != 2 or parts[1] not in DEVICE_CHANNELS:
        raise PayloadError(f"topic {topic!r} is not {head}<device>/<{'|'.join(DEVICE_CHANNELS)}>")
    if not DEVICE_ID_RE.fullmatch(parts[0]):
        raise PayloadError(f"topic {topic!r} names an invalid device id")
    return parts[0]
