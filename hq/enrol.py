"""Enrolment and revocation: what HQ does to let a device in, or to shut it out.

Enrolling a device means: its public signing key goes into HQ's registry (so
ingest can verify what it signs), HQ's public keys go to the device (so it can
seal to HQ and verify acks), and, for mTLS, HQ's CA certifies the device's TLS
key. Revoking means: the registry refuses its messages, and its certificate's
serial goes on the CRL the broker loads.

``enrol_local`` does all of it on one machine for the demo, the benchmarks and
the tests; a field enrolment runs the same steps on two machines (``agent.pki``).
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.broker import RESERVED_USERS, BrokerTls
from agent.config import RaqibConfig
from agent.errors import ConfigError
from agent.fsutil import atomic_write
from agent.pki import (
    DEVICE_KEY,
    CertificateAuthority,
    HqKeys,
    TlsFiles,
    cert_pem,
    load_certificate,
    load_or_create_device_key,
    make_tls_key,
    private_pem,
    write_tls_identity,
)
from agent.watchlist.devicekeys import KEM_KEY, load_or_create_kem_key
from hq.db import HqDatabase
from hq.watchlist_keys import WatchlistKeyRegistry


def enrol_local(config: RaqibConfig, db: HqDatabase | None = None) -> Ed25519PublicKey:
    """Give the configured device and HQ their keys and enrol the device; returns its key.

    HQ's keys are made in ``hq.keys_dir`` and the device key in the device's
    keys directory if they do not exist yet; running it again changes nothing.
    """
    hq_keys = HqKeys.load_or_create(config.hq.keys_dir)
    device_dir = config.device.keys_path
    device_key = load_or_create_device_key(device_dir / DEVICE_KEY).public_key()
    hq_keys.public().save(device_dir)
    own = db is None
    database = db if db is not None else HqDatabase(config.hq.database_url)
    try:
        database.enrol_device(config.device.id, device_key, time.time())
    finally:
        if own:
            database.close()
    register_local_watchlist_key(config)
    return device_key


def register_local_watchlist_key(config: RaqibConfig) -> None:
    """Register the device's watchlist decryption key (made if missing) at HQ."""
    kem = load_or_create_kem_key(config.device.keys_path / KEM_KEY)
    with WatchlistKeyRegistry(config.hq.database_url) as registry:
        registry.register(config.device.id, kem.public_key(), time.time())


def issue_device_tls(ca_dir: Path, device_id: str, out_dir: Path) -> TlsFiles:
    """Certify a fresh TLS key for ``device_id`` with HQ's CA (made if missing)."""
    if device_id in RESERVED_USERS:
        raise ConfigError(f"device id {device_id!r} is reserved for an HQ service")
    ca = CertificateAuthority.load_or_create(ca_dir)
    return write_tls_identity(ca, out_dir, device_id)


def issue_hq_tls(ca_dir: Path, out_dir: Path, user: str = "hq-ingest") -> TlsFiles:
    """Certify a TLS key for an HQ service; its common name is its broker user name."""
    ca = CertificateAuthority.load_or_create(ca_dir)
    return write_tls_identity(ca, out_dir, user, device=False)


def revoke_device_tls(ca_dir: Path, cert_path: Path, crl_path: Path) -> None:
    """Put a device certificate on the CA's revocation list and rewrite the broker's CRL."""
    ca = CertificateAuthority.load(ca_dir)
    ca.revoke(load_certificate(cert_path))
    crl_path.write_bytes(ca.crl_pem())


def setup_local_tls(ca_dir: Path, broker_dir: Path, topic_prefix: str = "raqib/v1") -> BrokerTls:
    """A CA (made if missing), a broker certificate for 127.0.0.1 and an up-to-date CRL."""
    ca = CertificateAuthority.load_or_create(ca_dir)
    broker_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = make_tls_key()
    cert = ca.issue_server(key, ["127.0.0.1", "localhost"])
    tls = BrokerTls(
        ca=broker_dir / "ca.crt",
        cert=broker_dir / "broker.crt",
        key=broker_dir / "broker.key",
        crl=broker_dir / "crl.pem",
        topic_prefix=topic_prefix,
    )
    atomic_write(tls.ca, cert_pem(ca.cert), 0o644)
    atomic_write(tls.cert, cert_pem(cert), 0o644)
    atomic_write(tls.key, private_pem(key), 0o600)
    assert tls.crl is not None
    atomic_write(tls.crl, ca.crl_pem(), 0o644)
    return tls


def tls_overrides(files: TlsFiles) -> dict[str, str]:
    """The ``[mqtt]`` keys that make a client use these TLS files."""
    return {"tls_ca": str(files.ca), "tls_cert": str(files.cert), "tls_key": str(files.key)}
