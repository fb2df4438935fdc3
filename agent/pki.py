"""Keys and certificates: HQ's keys and CA, a device's keys, certificate issuing and the CRL.

Two kinds of key, each for one job:

- **message keys** (``agent.envelope``): HQ holds an X25519 key that hits are
  sealed to and an Ed25519 key that signs acks (and later commands); each device
  holds an Ed25519 key that signs what it sends. HQ's device registry keeps each
  device's public signing key.
- **TLS identity** (mTLS to the broker): an HQ certificate authority issues each
  device a client certificate whose common name is the device id (the broker
  uses it as the user name for ACLs); revoking a device puts its certificate's
  serial number on the CRL the broker loads. TLS keys are ECDSA P-256, which
  every TLS stack accepts.

Private keys are written 0600 through ``atomic_write``. The functions are small
and file-based so a later ``raqib enroll`` command can call them one by one:
device makes key + CSR, HQ signs the CSR and registers the public key.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.errors import ConfigError
from agent.fsutil import atomic_write

DEVICE_KEY: Final = "device.key"
HQ_ENCRYPTION_PUB: Final = "hq-encryption.pub"
HQ_SIGNING_PUB: Final = "hq-signing.pub"
HQ_ENCRYPTION_KEY: Final = "hq-encryption.key"
HQ_SIGNING_KEY: Final = "hq-signing.key"
CA_KEY: Final = "ca.key"
CA_CERT: Final = "ca.crt"
CA_REVOKED: Final = "revoked.json"
CERT_DAYS: Final = 825


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- key files --------------------------------------------------------------------


def private_pem(key: Ed25519PrivateKey | X25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: Ed25519PublicKey | X25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_private(path: Path, key: Ed25519PrivateKey | X25519PrivateKey) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, private_pem(key), 0o600)


def write_public(path: Path, key: Ed25519PublicKey | X25519PublicKey) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, public_pem(key), 0o644)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _private(path: Path, what: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(_read(path, what), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} {path} is not a PEM private key: {exc}") from exc


def _public(data: bytes, what: str) -> PublicKeyTypes:
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} is not a PEM public key: {exc}") from exc


def load_ed25519_private(path: Path, what: str) -> Ed25519PrivateKey:
    """Raises ConfigError naming the file if it is missing or not an Ed25519 key."""
    key = _private(path, what)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{what} {path} is not an Ed25519 private key")
    return key


def load_x25519_private(path: Path, what: str) -> X25519PrivateKey:
    key = _private(path, what)
    if not isinstance(key, X25519PrivateKey):
        raise ConfigError(f"{what} {path} is not an X25519 private key")
    return key


def load_ec_private(path: Path, what: str) -> ec.EllipticCurvePrivateKey:
    key = _private(path, what)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{what} {path} is not an EC private key")
    return key


def ed25519_public_from_pem(data: bytes, what: str) -> Ed25519PublicKey:
    key = _public(data, what)
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{what} is not an Ed25519 public key")
    return key


def load_ed25519_public(path: Path, what: str) -> Ed25519PublicKey:
    return ed25519_public_from_pem(_read(path, what), f"{what} {path}")


def load_x25519_public(path: Path, what: str) -> X25519PublicKey:
    key = _public(_read(path, what), f"{what} {path}")
    if not isinstance(key, X25519PublicKey):
        raise ConfigError(f"{what} {path} is not an X25519 public key")
    return key


# -- message keys -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HqPublicKeys:
    """What every device trusts: HQ's encryption key and HQ's signing key."""

    encryption: X25519PublicKey
    signing: Ed25519PublicKey

    def save(self, directory: Path) -> None:
        write_public(directory / HQ_ENCRYPTION_PUB, self.encryption)
        write_public(directory / HQ_SIGNING_PUB, self.signing)

    @classmethod
    def load(cls, directory: Path) -> HqPublicKeys:
        """Raises ConfigError if a file is missing or not the right kind of key."""
        return cls(
            load_x25519_public(directory / HQ_ENCRYPTION_PUB, "HQ encryption key"),
            load_ed25519_public(directory / HQ_SIGNING_PUB, "HQ signing key"),
        )


@dataclass(frozen=True, slots=True)
class HqKeys:
    """HQ's private message keys (they never leave HQ)."""

    encryption: X25519PrivateKey
    signing: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> HqKeys:
        return cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())

    def public(self) -> HqPublicKeys:
        return HqPublicKeys(self.encryption.public_key(), self.signing.public_key())

    def save(self, directory: Path) -> None:
        write_private(directory / HQ_ENCRYPTION_KEY, self.encryption)
        write_private(directory / HQ_SIGNING_KEY, self.signing)
        self.public().save(directory)

    @classmethod
    def load(cls, directory: Path) -> HqKeys:
        return cls(
            load_x25519_private(directory / HQ_ENCRYPTION_KEY, "HQ encryption key"),
            load_ed25519_private(directory / HQ_SIGNING_KEY, "HQ signing key"),
        )

    @classmethod
    def load_or_create(cls, directory: Path) -> HqKeys:
        if (directory / HQ_ENCRYPTION_KEY).exists():
            return cls.load(directory)
        keys = cls.generate()
        keys.save(directory)
        return keys


def load_or_create_device_key(path: Path) -> Ed25519PrivateKey:
    """The device's message signing key, made on first use (like an SSH host key)."""
    if path.exists():
        return load_ed25519_private(path, "device key")
    key = Ed25519PrivateKey.generate()
    write_private(path, key)
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """A short, printable identity of a public key (first 16 bytes of SHA-256, hex)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    return digest.finalize()[:16].hex()


# -- TLS: CA, CSR, certificates, CRL --------------------------------------------------


def make_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: ec.EllipticCurvePrivateKey, device_id: str) -> x509.CertificateSigningRequest:
    """The device's certificate request: common name = device id."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CertificateAuthority:
    """HQ's CA on disk: key, self-signed certificate and the list of revoked serials."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        self.directory = directory
        self.key = key
        self.cert = cert

    @property
    def cert_path(self) -> Path:
        return self.directory / CA_CERT

    @classmethod
    def load_or_create(cls, directory: Path, name: str = "Raqib HQ CA") -> CertificateAuthority:
        if (directory / CA_KEY).exists():
            return cls.load(directory)
        key = make_tls_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _utcnow()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(directory / CA_KEY, private_pem(key), 0o600)
        atomic_write(directory / CA_CERT, cert_pem(cert), 0o644)
        return cls(directory, key, cert)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        key = load_ec_private(directory / CA_KEY, "CA key")
        try:
            cert = x509.load_pem_x509_certificate(_read(directory / CA_CERT, "CA certificate"))
        except ValueError as exc:
            raise ConfigError(f"CA certificate in {directory} is not PEM: {exc}") from exc
        return cls(directory, key, cert)

    def _issue(
        self, public_key: ec.EllipticCurvePublicKey, common_name: str, server_names: list[str]
    ) -> x509.Certificate:
        now = _utcnow()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server_names:
            alt: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names if n[0].isalpha()]
            alt += [_ip_name(n) for n in server_names if not n[0].isalpha()]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_device(self, csr: x509.CertificateSigningRequest, device_id: str) -> x509.Certificate:
        """Sign a device's CSR; refuses one that is not self-signed or names another device."""
        if not csr.is_signature_valid:
            raise ConfigError("certificate request signature does not verify")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [n.value for n in names] != [device_id]:
            raise ConfigError(f"certificate request is not for device {device_id!r}")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ConfigError("certificate request key is not an EC key")
        return self._issue(key, device_id, [])

    def issue_server(
        self, key: ec.EllipticCurvePrivateKey, names: list[str], common_name: str = "broker"
    ) -> x509.Certificate:
        return self._issue(key.public_key(), common_name, names)

    def issue_client(self, key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
        """A client certificate for an HQ service (its CN is its broker user name)."""
        return self._issue(key.public_key(), common_name, [])

    def revoked(self) -> list[int]:
        path = self.directory / CA_REVOKED
        if not path.exists():
            return []
        data = json.loads(_read(path, "revocation list"))
        return [int(s) for s in data]

    def revoke(self, cert: x509.Certificate) -> None:
        serials = sorted({*self.revoked(), cert.serial_number})
        atomic_write(self.directory / CA_REVOKED, json.dumps(serials).encode(), 0o600)

    def crl_pem(self, valid_days: int = 7) -> bytes:
        """A CRL naming every revoked serial, signed by the CA (what the broker loads)."""
        now = _utcnow()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=valid_days))
        )
        for serial in self.revoked():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - dt.timedelta(minutes=5))
                .build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)


def _ip_name(text: str) -> x509.GeneralName:
    import ipaddress

    return x509.IPAddress(ipaddress.ip_address(text))


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Paths of one client's TLS material: CA certificate, own certificate and key."""

    ca: Path
    cert: Path
    key: Path


def write_tls_identity(
    ca: CertificateAuthority, directory: Path, common_name: str, *, device: bool = True
) -> TlsFiles:
    """Make a key, have the CA certify it (as a device via its CSR, or an HQ client), write both."""
    key = make_tls_key()
    if device:
        cert = ca.issue_device(make_csr(key, common_name), common_name)
    else:
        cert = ca.issue_client(key, common_name)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    atomic_write(files.key, private_pem(key), 0o600)
    atomic_write(files.cert, cert_pem(cert), 0o644)
    atomic_write(files.ca, cert_pem(ca.cert), 0o644)
    return files


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path, "certificate"))
    except ValueError as exc:
        raise ConfigError(f"certificate {path} is not PEM: {exc}") from exc
