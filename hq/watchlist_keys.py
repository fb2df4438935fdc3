"""HQ's side of confidential watchlists: device decryption keys, cache keys, recipients.

For each enrolled device HQ keeps (table ``device_watchlist_keys``, in HQ's
database next to the device registry):

- the device's X25519 public key, which sealed bundles wrap their content key
  for (:func:`agent.watchlist.sealed.seal_bundle`);
- the device's *cache key* (32 random bytes, made here once), which encrypts the
  list the device keeps at rest. HQ sends it in a key message sealed to the
  device and signed by HQ, retained on the device's ``watchlist-key`` topic, so
  the device gets it each time it connects and never has to store it.

The recipients of a new bundle and the key messages are only those of enrolled,
*unrevoked* devices: a device revoked (reported lost) gets no wrap in any later
bundle, and :func:`publish_key_messages` empties its retained key message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import Column, Connection, Float, LargeBinary, MetaData, String, Table, select
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import ConfigError, StorageError
from agent.watchlist.atrest import CACHE_KEY_BYTES, make_key_message
from agent.watchlist.devicekeys import KEM_PUB_SUFFIX, KEM_SIG_SUFFIX, kem_proof_bytes
from agent.watchlist.publish import BrokerTarget, publish_many, watchlist_key_topic
from hq.db import _engine_for, devices

log = logging.getLogger(__name__)

_md = MetaData()
device_watchlist_keys = Table(
    "device_watchlist_keys",
    _md,
    Column("device_id", String(64), primary_key=True),
    Column("kem_public", String(64), nullable=False),
    Column("cache_key", LargeBinary, nullable=False),
    Column("registered_at", Float, nullable=False),
)


def raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class DeviceWatchlistKey:
    device_id: str
    kem_public: X25519PublicKey
    cache_key: bytes
    revoked: bool


class WatchlistKeyRegistry:
    """Device decryption keys and cache keys in HQ's database; raises StorageError."""

    def __init__(self, url: str) -> None:
        self._engine, _sqlite, self.url = _engine_for(url)
        with self._guard("create the watchlist key table") as conn:
            _md.create_all(conn)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> WatchlistKeyRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _guard(self, operation: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"HQ database {self.url}: cannot {operation}: {exc}") from exc

    def register(self, device_id: str, kem_public: X25519PublicKey, now: float) -> None:
        """Record (or replace) a device's decryption key; its cache key is made once and kept."""
        hex_key = raw_public(kem_public).hex()
        with self._guard("register a watchlist key") as conn:
            found = conn.execute(
                select(device_watchlist_keys.c.device_id).where(
                    device_watchlist_keys.c.device_id == device_id
                )
            ).first()
            if found is None:
                conn.execute(
                    device_watchlist_keys.insert().values(
                        device_id=device_id,
                        kem_public=hex_key,
                        cache_key=os.urandom(CACHE_KEY_BYTES),
                        registered_at=now,
                    )
                )
            else:
                conn.execute(
                    device_watchlist_keys.update()
                    .where(device_watchlist_keys.c.device_id == device_id)
                    .values(kem_public=hex_key, registered_at=now)
                )

    def devices(self) -> list[DeviceWatchlistKey]:
        """Every device with a registered key (enrolled in the registry), revoked ones flagged."""
        k = device_watchlist_keys
        query = select(k.c.device_id, k.c.kem_public, k.c.cache_key, devices.c.revoked_at).join(
            devices, devices.c.device_id == k.c.device_id
        )
        with self._guard("read watchlist keys") as conn:
            rows = conn.execute(query.order_by(k.c.device_id)).all()
        return [
            DeviceWatchlistKey(
                row.device_id,
                X25519PublicKey.from_public_bytes(bytes.fromhex(row.kem_public)),
                bytes(row.cache_key),
                row.revoked_at is not None,
            )
            for row in rows
        ]

    def recipients(self) -> list[X25519PublicKey]:
        """The keys a new bundle is wrapped for: enrolled devices that are not revoked."""
        return [d.kem_public for d in self.devices() if not d.revoked]

    def key_message(self, device_id: str, hq_signing: Ed25519PrivateKey, now: float) -> bytes:
        """The device's key message; raises ConfigError if it has no key or is revoked."""
        for device in self.devices():
            if device.device_id == device_id:
                if device.revoked:
                    raise ConfigError(f"device {device_id!r} is revoked: it gets no key")
                return make_key_message(
                    device_id, device.kem_public, device.cache_key, int(now), hq_signing
                )
        raise ConfigError(f"device {device_id!r} has no registered watchlist key")


def read_kem_request(
    request_dir: Path, device_id: str, signing_public: Ed25519PublicKey
) -> X25519PublicKey:
    """A device's watchlist key from its request, checked against its signing key.

    Raises ConfigError if the files are missing, malformed or not signed by that key.
    """
    pub_path = request_dir / f"{device_id}{KEM_PUB_SUFFIX}"
    try:
        key = serialization.load_pem_public_key(pub_path.read_bytes())
        signature = bytes.fromhex(
            (request_dir / f"{device_id}{KEM_SIG_SUFFIX}").read_text("ascii").strip()
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the watchlist key request of {device_id}: {exc}") from exc
    if not isinstance(key, X25519PublicKey):
        raise ConfigError(f"{pub_path} is not an X25519 public key")
    try:
        signing_public.verify(signature, kem_proof_bytes(device_id, key))
    except InvalidSignature as exc:
        raise ConfigError(
            f"the watchlist key of {device_id} is not signed by its enrolled signing key"
        ) from exc
    return key


def publish_key_messages(
    registry: WatchlistKeyRegistry,
    hq_signing: Ed25519PrivateKey,
    target: BrokerTarget,
    prefix: str,
    now: float,
) -> tuple[int, int]:
    """Retain each unrevoked device's key message and empty each revoked one's.

    Returns (sent, withdrawn). Raises TransportError, StorageError.
    """
    messages: list[tuple[str, bytes]] = []
    withdrawn = 0
    for device in registry.devices():
        topic = watchlist_key_topic(prefix, device.device_id)
        if device.revoked:
            messages.append((topic, b""))  # an empty retained message deletes the old one
            withdrawn += 1
            continue
        payload = make_key_message(
            device.device_id, device.kem_public, device.cache_key, int(now), hq_signing
        )
        messages.append((topic, payload))
    publish_many(messages, target)
    sent = len(messages) - withdrawn
    log.info("watchlist keys published: %d sent, %d withdrawn", sent, withdrawn)
    return sent, withdrawn
