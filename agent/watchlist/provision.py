"""A fleet's watchlist signing set-up on one machine, and a device's trust anchor.

The demo and the tests play HQ's admins with :class:`FleetSigner` (one root key,
one admin key, threshold 1, all on disk); in the field the same steps are the
``raqib watchlist keygen/root/build/sign`` commands run by several admins. The
device side is :func:`open_device_watchlist`: the root document installed at
enrolment is the anchor every list is verified against.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.config import RaqibConfig
from agent.errors import ConfigError, WatchlistError
from agent.fsutil import atomic_write
from agent.pki import HQ_SIGNING_PUB, load_ed25519_public
from agent.watchlist.admin import (
    build_full,
    generate_key,
    load_private_key,
    load_root,
    make_root,
    read_csv,
    sign_bundle,
    sign_root,
)
from agent.watchlist.atrest import GraceCopy
from agent.watchlist.devicekeys import GRACE_FILE, KEM_KEY, DeviceKeys, load_or_create_kem_key
from agent.watchlist.format import PublicKey, Root
from agent.watchlist.manager import WatchlistManager
from agent.watchlist.sealed import seal_bundle, sign_sealed

log = logging.getLogger(__name__)

DAY_S = 86_400
ROOT_FILE = "watchlist-root.json"
CACHE_FILE = "watchlist.sqlite"


@dataclass(frozen=True, slots=True)
class FleetSigner:
    """HQ's watchlist keys for one fleet, kept in ``directory`` (made on first use)."""

    directory: Path
    root: Root
    admin_key: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, directory: Path, fleet: str, now: float) -> FleetSigner:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        keys = {}
        for name in ("root", "admin"):
            private = directory / f"{name}.key"
            if not private.exists():
                generate_key(private, directory / f"{name}.pub")
            keys[name] = load_private_key(private)
        root_path = directory / ROOT_FILE
        if root_path.exists():
            root = load_root(root_path)
        else:
            unsigned = make_root(
                fleet,
                [PublicKey.of(keys["root"])],
                [PublicKey.of(keys["admin"])],
                threshold=1,
                issued_at=int(now),
            )
            root = sign_root(unsigned, keys["root"])
            atomic_write(root_path, root.to_bytes() + b"\n", mode=0o644)
        return cls(directory, root, keys["admin"])

    def signed_full_list(self, csv_path: Path, version: int, now: float, valid_days: int) -> bytes:
        """A signed full list of the CSV's entries; raises WatchlistError for a bad CSV."""
        bundle = build_full(
            read_csv(csv_path),
            fleet=self.root.fleet,
            version=version,
            issued_at=int(now),
            expires_at=int(now) + valid_days * DAY_S,
        )
        return sign_bundle(bundle, self.admin_key)

    def sealed_full_list(
        self,
        csv_path: Path,
        version: int,
        now: float,
        valid_days: int,
        recipients: Iterable[X25519PublicKey],
    ) -> bytes:
        """The signed list sealed for ``recipients`` with its release signed too."""
        inner = self.signed_full_list(csv_path, version, now, valid_days)
        return self.seal(inner, recipients)

    def seal(self, inner: bytes, recipients: Iterable[X25519PublicKey]) -> bytes:
        """Seal a signed clear bundle for ``recipients`` and sign the release."""
        return sign_sealed(seal_bundle(inner, recipients), self.admin_key)


def anchor_path(config: RaqibConfig) -> Path:
    return config.watchlist.root_path or config.device.keys_path / ROOT_FILE


def install_anchor(config: RaqibConfig, root: Root) -> Path:
    """Give the device the root it will trust (at enrolment, over a trusted channel)."""
    path = anchor_path(config)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, root.to_bytes() + b"\n", mode=0o644)
    return path


def device_keys(config: RaqibConfig) -> DeviceKeys:
    """The device's decryption key (made if missing), HQ's signing key and the key policy.

    Raises WatchlistError if HQ's public key is not installed (not enrolled). In
    memory-only mode a grace copy left from an earlier policy is deleted.
    """
    keys_dir = config.device.keys_path
    cfg = config.watchlist
    try:
        kem = load_or_create_kem_key(keys_dir / KEM_KEY)
        hq_signing = load_ed25519_public(keys_dir / HQ_SIGNING_PUB, "HQ signing key")
    except ConfigError as exc:
        raise WatchlistError(f"cannot read the watchlist keys (enrol the device): {exc}") from exc
    grace = GraceCopy(config.device.state_dir / GRACE_FILE)
    if cfg.key_policy == "memory":
        grace.delete()
        return DeviceKeys(config.device.id, kem, hq_signing)
    return DeviceKeys(config.device.id, kem, hq_signing, grace, cfg.grace_hours * 3600)


def open_device_watchlist(config: RaqibConfig) -> WatchlistManager:
    """The device's encrypted, verified list (locked until HQ's key arrives).

    Raises WatchlistError if no anchor or HQ key was installed, StorageError.
    """
    path = anchor_path(config)
    try:
        anchor = load_root(path)
    except WatchlistError as exc:
        raise WatchlistError(f"no trusted watchlist root (enrol the device): {exc}") from exc
    cfg = config.watchlist
    return WatchlistManager.open(
        config.device.state_dir / CACHE_FILE,
        anchor,
        fuzzy=cfg.fuzzy,
        fuzzy_min_confidence=cfg.fuzzy_min_confidence,
        edits=cfg.edits,
        max_changes=cfg.fuzzy_max_changes,
        keys=device_keys(config),
    )


def provision_watchlist(
    config: RaqibConfig, signer: FleetSigner, csv_path: Path, now: float, valid_days: int = 7
) -> bytes:
    """Enrolment step (demo, tests): install the anchor and the first list on the device.

    HQ (``config.hq``: the device must be enrolled with ``hq.enrol.enrol_local``)
    seals the list for every enrolled, unrevoked device and hands this device its
    key message, as it would over MQTT; the device stores the list encrypted and,
    in memory-only mode, forgets the key when this returns. The sealed bundle is
    returned so it can also be published (retained) for the fleet. Raises
    WatchlistError if the device refuses it.
    """
    from agent.pki import HqKeys  # HQ's private keys: only this enrolment helper loads them
    from hq.watchlist_keys import WatchlistKeyRegistry

    install_anchor(config, signer.root)
    hq_keys = HqKeys.load(config.hq.keys_dir)
    with WatchlistKeyRegistry(config.hq.database_url) as registry:
        recipients = registry.recipients()
        key_message = registry.key_message(config.device.id, hq_keys.signing, now)
    bundle = signer.sealed_full_list(csv_path, 1, now, valid_days, recipients)
    manager = open_device_watchlist(config)
    try:
        manager.handle_key(key_message, now)
        result = manager.handle_update(bundle, now)
    finally:
        manager.close()
    if not result.applied and result.reason != "replay":
        raise WatchlistError(
            f"device refused the first watchlist: {result.reason}: {result.detail}"
        )
    return bundle
