"""Field enrolment in three steps; the device's private keys never leave it.

1. On the device, ``raqib enroll request --out DIR``: makes the device signing
   key and the TLS key (0600, under the keys directory) if missing, and writes
   to DIR only public material: the signing public key and a CSR whose common
   name is the device id.
2. At HQ, ``raqib hq enrol-request DIR --out PACK``: enrols the signing key in
   HQ's registry, has HQ's CA certify the CSR, and writes PACK: the CA and
   device certificates, HQ's public keys and the fleet's watchlist root.
3. On the device, ``raqib enroll install PACK``: checks the certificate is for
   its own TLS key and device id and was issued by the CA in the pack, then
   installs everything under the keys directory.

DIR and PACK travel on a provisioning laptop or USB stick; neither holds a secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from agent.config import RaqibConfig
from agent.errors import ConfigError
from agent.fsutil import atomic_write
from agent.pki import (
    DEVICE_KEY,
    HQ_ENCRYPTION_PUB,
    HQ_SIGNING_PUB,
    CertificateAuthority,
    HqKeys,
    cert_pem,
    ed25519_public_from_pem,
    fingerprint,
    load_certificate,
    load_ec_private,
    load_or_create_device_key,
    make_csr,
    make_tls_key,
    private_pem,
    public_pem,
)
from agent.watchlist.devicekeys import (
    KEM_KEY,
    KEM_PUB_SUFFIX,
    load_or_create_kem_key,
    write_kem_request,
)
from agent.watchlist.provision import ROOT_FILE
from hq.db import HqDatabase
from hq.watchlist_keys import WatchlistKeyRegistry, read_kem_request

TLS_DIR = "tls"
TLS_KEY = "tls.key"
TLS_CERT = "tls.crt"
CA_CERT = "ca.crt"
CSR_SUFFIX = ".csr.pem"
PUB_SUFFIX = ".pub.pem"


@dataclass(frozen=True, slots=True)
class EnrolRequest:
    device_id: str
    csr: Path
    signing_public: Path


def _tls_key(keys_dir: Path) -> Path:
    path = keys_dir / TLS_DIR / TLS_KEY
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, private_pem(make_tls_key()), 0o600)
    return path


def create_request(config: RaqibConfig, out_dir: Path) -> EnrolRequest:
    """Step 1 (device): keys made here if missing; only public material goes to ``out_dir``."""
    keys_dir = config.device.keys_path
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    signing = load_or_create_device_key(keys_dir / DEVICE_KEY)
    tls_key = load_ec_private(_tls_key(keys_dir), "device TLS key")
    device_id = config.device.id
    out_dir.mkdir(parents=True, exist_ok=True)
    request = EnrolRequest(
        device_id, out_dir / f"{device_id}{CSR_SUFFIX}", out_dir / f"{device_id}{PUB_SUFFIX}"
    )
    csr = make_csr(tls_key, device_id)
    atomic_write(request.csr, csr.public_bytes(serialization.Encoding.PEM), 0o644)
    atomic_write(request.signing_public, public_pem(signing.public_key()), 0o644)
    kem = load_or_create_kem_key(keys_dir / KEM_KEY)
    write_kem_request(device_id, kem, signing, out_dir)  # confidential watchlists
    return request


def create_kem_request(config: RaqibConfig, out_dir: Path) -> Path:
    """Migration of a device enrolled before confidential lists: its watchlist key only."""
    keys_dir = config.device.keys_path
    signing = load_or_create_device_key(keys_dir / DEVICE_KEY)
    kem = load_or_create_kem_key(keys_dir / KEM_KEY)
    return write_kem_request(config.device.id, kem, signing, out_dir)


def answer_kem_request(config: RaqibConfig, request_dir: Path, device_id: str) -> None:
    """HQ: register a migrating device's watchlist key, checked against its enrolled key."""
    db = HqDatabase(config.hq.database_url)
    try:
        signing = db.device_keys().get(device_id)
    finally:
        db.close()
    if signing is None:
        raise ConfigError(f"device {device_id!r} is not enrolled, or revoked")
    kem = read_kem_request(request_dir, device_id, signing)
    with WatchlistKeyRegistry(config.hq.database_url) as registry:
        registry.register(device_id, kem, time.time())


def _read_csr(path: Path) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read certificate request {path}: {exc}") from exc
    if not csr.is_signature_valid:
        raise ConfigError(f"certificate request {path} is not signed by its own key")
    return csr


def answer_request(
    config: RaqibConfig, request_dir: Path, device_id: str, out_dir: Path, root: Path | None
) -> str:
    """Step 2 (HQ): enrol the device and write its pack; returns the key fingerprint."""
    csr = _read_csr(request_dir / f"{device_id}{CSR_SUFFIX}")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [device_id]:
        raise ConfigError(f"the request is not for device {device_id!r}")
    pub_path = request_dir / f"{device_id}{PUB_SUFFIX}"
    try:
        signing_public = ed25519_public_from_pem(pub_path.read_bytes(), "device signing key")
    except OSError as exc:
        raise ConfigError(f"cannot read {pub_path}: {exc.strerror}") from exc
    keys = HqKeys.load_or_create(config.hq.keys_dir)
    ca = CertificateAuthority.load_or_create(config.hq.keys_dir / "ca")
    cert = ca.issue_device(csr, device_id)
    db = HqDatabase(config.hq.database_url)
    try:
        db.enrol_device(device_id, signing_public, time.time())
    finally:
        db.close()
    if (request_dir / f"{device_id}{KEM_PUB_SUFFIX}").exists():
        kem = read_kem_request(request_dir, device_id, signing_public)
        with WatchlistKeyRegistry(config.hq.database_url) as registry:
            registry.register(device_id, kem, time.time())
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / TLS_CERT, cert_pem(cert), 0o644)
    atomic_write(out_dir / CA_CERT, cert_pem(ca.cert), 0o644)
    keys.public().save(out_dir)
    if root is not None:
        atomic_write(out_dir / ROOT_FILE, root.read_bytes(), 0o644)
    return fingerprint(signing_public)


def _check_certificate(cert: x509.Certificate, ca: x509.Certificate, config: RaqibConfig) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError("the device certificate was not issued by the pack's CA") from exc
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [config.device.id]:
        raise ConfigError(f"the certificate is not for device {config.device.id!r}")
    own = load_ec_private(config.device.keys_path / TLS_DIR / TLS_KEY, "device TLS key")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if cert.public_key().public_bytes(pem, spki) != own.public_key().public_bytes(pem, spki):
        raise ConfigError("the certificate is for another key, not this device's TLS key")


def install_pack(config: RaqibConfig, pack_dir: Path) -> list[Path]:
    """Step 3 (device): check the pack against this device, then install it; returns paths."""
    keys_dir = config.device.keys_path
    cert = load_certificate(pack_dir / TLS_CERT)
    ca = load_certificate(pack_dir / CA_CERT)
    _check_certificate(cert, ca, config)
    installed = []
    for name, target in (
        (TLS_CERT, keys_dir / TLS_DIR / TLS_CERT),
        (CA_CERT, keys_dir / TLS_DIR / CA_CERT),
        (HQ_ENCRYPTION_PUB, keys_dir / HQ_ENCRYPTION_PUB),
        (HQ_SIGNING_PUB, keys_dir / HQ_SIGNING_PUB),
        (ROOT_FILE, config.watchlist.root_path or keys_dir / ROOT_FILE),
    ):
        source = pack_dir / name
        if not source.exists():
            if name == ROOT_FILE:
                continue  # a fleet without watchlists yet
            raise ConfigError(f"the enrolment pack lacks {name}")
        atomic_write(target, source.read_bytes(), 0o644)
        installed.append(target)
    return installed
