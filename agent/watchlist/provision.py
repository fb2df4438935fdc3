"""A fleet's watchlist signing set-up on one machine, and a device's trust anchor.

The demo and the tests play HQ's admins with :class:`FleetSigner` (one root key,
one admin key, threshold 1, all on disk); in the field the same steps are the
``raqib watchlist keygen/root/build/sign`` commands run by several admins. The
device side is :func:`open_device_watchlist`: the root document installed at
enrolment is the anchor every list is verified against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import RaqibConfig
from agent.errors import WatchlistError
from agent.fsutil import atomic_write
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
from agent.watchlist.format import PublicKey, Root
from agent.watchlist.manager import WatchlistManager

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


def anchor_path(config: RaqibConfig) -> Path:
    return config.watchlist.root_path or config.device.keys_path / ROOT_FILE


def install_anchor(config: RaqibConfig, root: Root) -> Path:
    """Give the device the root it will trust (at enrolment, over a trusted channel)."""
    path = anchor_path(config)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, root.to_bytes() + b"\n", mode=0o644)
    return path


def open_device_watchlist(config: RaqibConfig) -> WatchlistManager:
    """The device's verified list; raises WatchlistError if no anchor was installed."""
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
    )


def provision_watchlist(
    config: RaqibConfig, signer: FleetSigner, csv_path: Path, now: float, valid_days: int = 7
) -> bytes:
    """Enrolment step: install the anchor and the first signed list on the device.

    The list goes through the same verification as an MQTT update; the signed
    bundle is returned so it can also be published (retained) for the fleet.
    Raises WatchlistError if the device refuses it.
    """
    install_anchor(config, signer.root)
    bundle = signer.signed_full_list(csv_path, version=1, now=now, valid_days=valid_days)
    manager = open_device_watchlist(config)
    try:
        result = manager.handle_update(bundle, now)
    finally:
        manager.close()
    if not result.applied and result.reason != "replay":
        raise WatchlistError(
            f"device refused the first watchlist: {result.reason}: {result.detail}"
        )
    return bundle
