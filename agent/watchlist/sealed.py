"""Confidential watchlist bundles: the signed list inside, encrypted for the enrolled fleet.

A *sealed* bundle (magic ``RQWS``, see docs/watchlist.md "Sealed bundle") carries:

- a clear header: the **release** (what is being distributed: fleet, version,
  expiry, kind, the ciphertext's hash and the recipient table's hash, a key
  commitment), its admin signatures, and the roots needed to check them;
- a **recipient table**: the bundle's content key (AES-256, fresh per bundle)
  wrapped with HPKE (RFC 9180 base mode, X25519 / HKDF-SHA256 / AES-128-GCM)
  for each enrolled device key, sorted by key id;
- the **ciphertext**: AES-256-GCM of a complete signed ``RQWL`` bundle.

Admins sign twice: the inner list metadata (what they approved; every check of
:func:`agent.watchlist.verify.verify_update` still runs on it after
decryption) and the release (to whom it goes). A table re-wrapped for another
device, or a list re-encrypted under another key, no longer matches a release
signed by the threshold of admin keys and is refused. Nothing a broker sees
names a plate: not the content, not its hash (a one-line delta's hash could be
guessed), not the inner signatures.

Everything here is pure: bytes and keys in, a checked value or a
:class:`~agent.watchlist.errors.WatchlistRefusedError` out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from agent.watchlist.errors import (
    ExpiredError,
    HashMismatchError,
    MalformedError,
    OversizedError,
    RollbackError,
    TruncatedError,
    WatchlistRefusedError,
    WrongFleetError,
)
from agent.watchlist.format import (
    MAX_BUNDLE_BYTES,
    MAX_HEADER_BYTES,
    MAX_ROOTS_IN_BUNDLE,
    Kind,
    Root,
    Signature,
    _exact_keys,
    _get,
    _hex,
    _signatures,
    canonical_json,
    check_threshold,
    decode_bundle,
    parse_json,
    sha256_hex,
    sign,
)
from agent.watchlist.verify import CurrentState, VerifiedUpdate, verify_root_chain, verify_update

MAGIC_SEALED: Final = b"RQWS"
SEALED_FRAME_VERSION: Final = 1
RELEASE_FORMAT: Final = "raqib-watchlist-release"
RELEASE_SPEC_VERSION: Final = 1
AEAD_ALG: Final = "aes-256-gcm"
WRAP_ALG: Final = "hpke-base-x25519-sha256-aes128gcm"
KEYID_BYTES: Final = 16
ENC_BYTES: Final = 32
WRAPPED_BYTES: Final = 32 + 16
RECIPIENT_BYTES: Final = KEYID_BYTES + ENC_BYTES + WRAPPED_BYTES
"""One recipient row: key id, HPKE encapsulated key, wrapped content key (96 bytes)."""
MAX_RECIPIENTS: Final = 200_000
NONCE_BYTES: Final = 12
_FRAME = struct.Struct(">4sBBII")
_SUITE: Final = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
_WRAP_LABEL: Final = b"raqib-wl-wrap-v1\x00"
_DATA_LABEL: Final = b"raqib-wl-data-v1\x00"
_COMMIT_LABEL: Final = b"raqib-wl-key-commitment-v1"
_RELEASE_KEYS: Final = frozenset(
    {
        "format",
        "spec_version",
        "fleet",
        "version",
        "issued_at",
        "expires_at",
        "kind",
        "base_version",
        "aead",
        "wrap",
        "ciphertext_sha256",
        "ciphertext_length",
        "recipients_sha256",
        "recipient_count",
        "key_commitment",
    }
)


class NotRecipientError(WatchlistRefusedError):
    """The bundle holds no content key for this device (not enrolled, or revoked before it)."""

    reason = "not_a_recipient"


class BadWrapError(WatchlistRefusedError):
    """This device's wrapped key, or the ciphertext, does not open with the keys it holds."""

    reason = "bad_wrap"


class NotSealedError(WatchlistRefusedError):
    """A clear (unencrypted) bundle offered to a device that accepts only sealed ones."""

    reason = "not_sealed"


def kem_keyid(public: X25519PublicKey) -> bytes:
    """A device key's id in recipient tables: the first 16 bytes of SHA-256 of the raw key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:KEYID_BYTES]


def is_sealed(payload: bytes) -> bool:
    return payload[:4] == MAGIC_SEALED


@dataclass(frozen=True, slots=True)
class Release:
    """What admins sign about one distribution of a list: version, expiry, whom, which bytes."""

    fleet: str
    version: int
    issued_at: int
    expires_at: int
    kind: Kind
    base_version: int | None
    ciphertext_sha256: str
    ciphertext_length: int
    recipients_sha256: str
    recipient_count: int
    key_commitment: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RELEASE_FORMAT,
            "spec_version": RELEASE_SPEC_VERSION,
            "fleet": self.fleet,
            "version": self.version,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "kind": self.kind,
            "base_version": self.base_version,
            "aead": AEAD_ALG,
            "wrap": WRAP_ALG,
            "ciphertext_sha256": self.ciphertext_sha256,
            "ciphertext_length": self.ciphertext_length,
            "recipients_sha256": self.recipients_sha256,
            "recipient_count": self.recipient_count,
            "key_commitment": self.key_commitment,
        }

    def signed_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, obj: object) -> Release:
        """Parse a release; raises MalformedError."""
        if not isinstance(obj, dict):
            raise MalformedError("release is not an object")
        _exact_keys(obj, set(_RELEASE_KEYS), "release")
        if obj["format"] != RELEASE_FORMAT or obj["spec_version"] != RELEASE_SPEC_VERSION:
            raise MalformedError(f"release is not {RELEASE_FORMAT} v{RELEASE_SPEC_VERSION}")
        if obj["aead"] != AEAD_ALG or obj["wrap"] != WRAP_ALG:
            raise MalformedError(f"release algorithms {obj['aead']!r}/{obj['wrap']!r} unsupported")
        kind = obj["kind"]
        if kind not in ("full", "delta"):
            raise MalformedError(f"release.kind {kind!r} is not 'full' or 'delta'")
        base = None if kind == "full" else _get(obj, "base_version", int, "release")
        if kind == "full" and obj["base_version"] is not None:
            raise MalformedError("a full release has base_version null")
        for name in ("ciphertext_sha256", "recipients_sha256", "key_commitment"):
            _hex(_get(obj, name, str, "release"), 32, f"release.{name}")
        release = cls(
            fleet=_get(obj, "fleet", str, "release"),
            version=_get(obj, "version", int, "release"),
            issued_at=_get(obj, "issued_at", int, "release"),
            expires_at=_get(obj, "expires_at", int, "release"),
            kind=kind,
            base_version=base,
            ciphertext_sha256=obj["ciphertext_sha256"],
            ciphertext_length=_get(obj, "ciphertext_length", int, "release"),
            recipients_sha256=obj["recipients_sha256"],
            recipient_count=_get(obj, "recipient_count", int, "release"),
            key_commitment=obj["key_commitment"],
        )
        if not 0 <= release.recipient_count <= MAX_RECIPIENTS:
            raise OversizedError(f"{release.recipient_count} recipients (limit {MAX_RECIPIENTS})")
        return release


@dataclass(frozen=True)
class SealedBundle:
    """A decoded sealed bundle (nothing verified yet)."""

    release: Release
    signatures: tuple[Signature, ...]
    roots: tuple[Root, ...]
    header: bytes = field(repr=False)
    recipients: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)


def encode_sealed(
    release: Release,
    signatures: tuple[Signature, ...],
    roots: tuple[Root, ...],
    recipients: bytes,
    ciphertext: bytes,
) -> bytes:
    header = canonical_json(
        {
            "release": release.to_dict(),
            "signatures": [s.to_dict() for s in signatures],
            "roots": [r.to_dict() for r in roots],
        }
    )
    frame = _FRAME.pack(MAGIC_SEALED, SEALED_FRAME_VERSION, 0, len(header), len(recipients))
    return frame + header + recipients + ciphertext


def decode_sealed(data: bytes) -> SealedBundle:
    """Split and parse a sealed bundle; raises OversizedError, TruncatedError, MalformedError."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise OversizedError(f"bundle is {len(data)} bytes (limit {MAX_BUNDLE_BYTES})")
    if len(data) < _FRAME.size:
        raise TruncatedError(f"sealed bundle is {len(data)} bytes, shorter than its frame")
    magic, version, flags, header_len, recipients_len = _FRAME.unpack_from(data)
    if magic != MAGIC_SEALED:
        raise MalformedError("not a sealed raqib watchlist bundle (bad magic)")
    if version != SEALED_FRAME_VERSION or flags:
        raise MalformedError(f"unsupported sealed frame version {version} / flags {flags:#x}")
    if header_len > MAX_HEADER_BYTES:
        raise OversizedError(f"bundle header is {header_len} bytes (limit {MAX_HEADER_BYTES})")
    if recipients_len % RECIPIENT_BYTES or recipients_len // RECIPIENT_BYTES > MAX_RECIPIENTS:
        raise MalformedError(f"recipient table of {recipients_len} bytes is not whole rows")
    head_end = _FRAME.size + header_len
    table_end = head_end + recipients_len
    if len(data) < table_end:
        raise TruncatedError("sealed bundle ends inside its header or recipient table")
    header = data[_FRAME.size : head_end]
    obj = parse_json(header, "sealed bundle header")
    _exact_keys(obj, {"release", "signatures", "roots"}, "sealed bundle header")
    roots_raw = obj["roots"]
    if not isinstance(roots_raw, list) or len(roots_raw) > MAX_ROOTS_IN_BUNDLE:
        raise MalformedError(f"bundle roots is not a list of at most {MAX_ROOTS_IN_BUNDLE}")
    return SealedBundle(
        release=Release.from_dict(obj["release"]),
        signatures=_signatures(obj["signatures"], "signatures"),
        roots=tuple(Root.from_dict(r) for r in roots_raw),
        header=header,
        recipients=data[head_end:table_end],
        ciphertext=data[table_end:],
    )


# -- sealing (HQ) -----------------------------------------------------------------------


def _wrap_info(fleet: str, version: int) -> bytes:
    return _WRAP_LABEL + canonical_json([fleet, version])


def _data_aad(fleet: str, version: int, kind: str, base: int | None) -> bytes:
    return _DATA_LABEL + canonical_json([fleet, version, kind, base])


def key_commitment(content_key: bytes) -> str:
    """HMAC-SHA256 of a fixed label under the content key: binds the release to one key."""
    return hmac.new(content_key, _COMMIT_LABEL, hashlib.sha256).hexdigest()


def wrap_for(
    content_key: bytes, recipients: Iterable[X25519PublicKey], fleet: str, version: int
) -> bytes:
    """The recipient table: one HPKE-wrapped copy of ``content_key`` per distinct device key."""
    info = _wrap_info(fleet, version)
    rows = {}
    for public in recipients:
        rows[kem_keyid(public)] = _SUITE.encrypt(content_key, public, info=info)
    return b"".join(keyid + rows[keyid] for keyid in sorted(rows))


def seal_bundle(inner: bytes, recipients: Iterable[X25519PublicKey]) -> bytes:
    """A sealed bundle (release unsigned) carrying the signed clear bundle ``inner``.

    ``inner`` must already carry its admin signatures: they travel encrypted.
    Raises WatchlistRefusedError if ``inner`` is not a well-formed bundle.
    """
    decoded = decode_bundle(inner)
    meta = decoded.metadata
    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    aad = _data_aad(meta.fleet, meta.version, meta.kind, meta.base_version)
    ciphertext = nonce + AESGCM(content_key).encrypt(nonce, inner, aad)
    table = wrap_for(content_key, recipients, meta.fleet, meta.version)
    release = Release(
        fleet=meta.fleet,
        version=meta.version,
        issued_at=meta.issued_at,
        expires_at=meta.expires_at,
        kind=meta.kind,
        base_version=meta.base_version,
        ciphertext_sha256=sha256_hex(ciphertext),
        ciphertext_length=len(ciphertext),
        recipients_sha256=sha256_hex(table),
        recipient_count=len(table) // RECIPIENT_BYTES,
        key_commitment=key_commitment(content_key),
    )
    return encode_sealed(release, (), decoded.roots, table, ciphertext)


def sign_sealed(bundle: bytes, key: Ed25519PrivateKey) -> bytes:
    """``bundle`` with ``key``'s signature over its release added (replacing an older one)."""
    decoded = decode_sealed(bundle)
    signature = sign(key, decoded.release.signed_bytes())
    others = tuple(s for s in decoded.signatures if s.keyid != signature.keyid)
    return encode_sealed(
        decoded.release,
        (*others, signature),
        decoded.roots,
        decoded.recipients,
        decoded.ciphertext,
    )


def with_recipients(bundle: bytes, recipients: bytes) -> bytes:
    """``bundle`` with another recipient table (what a re-wrapping attacker does; tests)."""
    decoded = decode_sealed(bundle)
    return encode_sealed(
        decoded.release, decoded.signatures, decoded.roots, recipients, decoded.ciphertext
    )


def rewrapped(bundle: bytes, content_key: bytes, recipients: Iterable[X25519PublicKey]) -> bytes:
    """The same release with the table rebuilt for ``recipients`` (an attack, for tests)."""
    decoded = decode_sealed(bundle)
    release = decoded.release
    table = wrap_for(content_key, recipients, release.fleet, release.version)
    return encode_sealed(release, decoded.signatures, decoded.roots, table, decoded.ciphertext)


# -- opening (device) -------------------------------------------------------------------


def find_wrap(recipients: bytes, keyid: bytes) -> bytes | None:
    """This key's row (enc || wrapped key) by binary search over the sorted table, or None."""
    lo, hi = 0, len(recipients) // RECIPIENT_BYTES
    while lo < hi:
        mid = (lo + hi) // 2
        at = mid * RECIPIENT_BYTES
        row_id = recipients[at : at + KEYID_BYTES]
        if row_id == keyid:
            return recipients[at + KEYID_BYTES : at + RECIPIENT_BYTES]
        if row_id < keyid:
            lo = mid + 1
        else:
            hi = mid
    return None


def unwrap(row: bytes, device_key: X25519PrivateKey, fleet: str, version: int) -> bytes:
    """The content key in one recipient row (enc || wrapped key); raises BadWrapError."""
    try:
        return _SUITE.decrypt(row, device_key, info=_wrap_info(fleet, version))
    except (InvalidTag, ValueError) as exc:
        raise BadWrapError(f"this device's wrapped key of v{version} does not open") from exc


def check_release(
    sealed: SealedBundle, trusted_root: Root, current: CurrentState | None, now: float
) -> Root:
    """Signatures (threshold), fleet, rollback, expiry and the signed hashes of the clear parts.

    Returns the newest trusted root. Raises WatchlistRefusedError subclasses.
    """
    root, _new = verify_root_chain(trusted_root, sealed.roots)
    release = sealed.release
    check_threshold(
        release.signed_bytes(),
        sealed.signatures,
        root.admin_keys,
        root.threshold,
        revoked=root.revoked,
        what=f"watchlist release v{release.version}",
    )
    if release.fleet != root.fleet:
        raise WrongFleetError(f"release for fleet {release.fleet!r}, device is in {root.fleet!r}")
    if current is not None and release.version < current.version:
        raise RollbackError(
            f"version {release.version} is older than the current {current.version}"
        )
    if release.expires_at <= now:
        raise ExpiredError(f"list v{release.version} expired at {release.expires_at}")
    if (
        sha256_hex(sealed.recipients) != release.recipients_sha256
        or len(sealed.recipients) // RECIPIENT_BYTES != release.recipient_count
    ):
        raise HashMismatchError("the recipient table is not the one the admins signed")
    if (
        len(sealed.ciphertext) != release.ciphertext_length
        or sha256_hex(sealed.ciphertext) != release.ciphertext_sha256
    ):
        raise HashMismatchError("the ciphertext is not the one the admins signed")
    return root


def open_sealed(sealed: SealedBundle, device_key: X25519PrivateKey) -> bytes:
    """The inner clear bundle; raises NotRecipientError, BadWrapError.

    Call only after :func:`check_release` passed.
    """
    release = sealed.release
    row = find_wrap(sealed.recipients, kem_keyid(device_key.public_key()))
    if row is None:
        raise NotRecipientError(
            f"list v{release.version} is not wrapped for this device's key "
            "(not enrolled for it, or revoked)"
        )
    content_key = unwrap(row, device_key, release.fleet, release.version)
    if not hmac.compare_digest(key_commitment(content_key), release.key_commitment):
        raise BadWrapError(f"the content key of v{release.version} is not the signed one")
    nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
    aad = _data_aad(release.fleet, release.version, release.kind, release.base_version)
    try:
        return AESGCM(content_key).decrypt(nonce, body, aad)
    except (InvalidTag, ValueError) as exc:
        raise BadWrapError(f"the ciphertext of v{release.version} does not decrypt") from exc


def _check_same(release: Release, update: VerifiedUpdate) -> None:
    meta = update.metadata
    ours = (meta.fleet, meta.version, meta.issued_at, meta.expires_at, meta.kind, meta.base_version)
    theirs = (
        release.fleet,
        release.version,
        release.issued_at,
        release.expires_at,
        release.kind,
        release.base_version,
    )
    if ours != theirs:
        raise MalformedError(f"release v{release.version} does not describe the list it carries")


def verify_sealed_update(
    bundle: bytes,
    trusted_root: Root,
    current: CurrentState | None,
    now: float,
    device_key: X25519PrivateKey,
) -> VerifiedUpdate:
    """Verify the release, open this device's wrap, then verify the inner list in full.

    Raises every error of :func:`agent.watchlist.verify.verify_update` plus
    NotRecipientError and BadWrapError. A tampered recipient table or
    ciphertext is refused before any decryption is tried.
    """
    sealed = decode_sealed(bundle)
    check_release(sealed, trusted_root, current, now)
    inner = open_sealed(sealed, device_key)
    update = verify_update(inner, trusted_root, current, now)
    _check_same(sealed.release, update)
    return update


def offered(payload: bytes) -> tuple[int | None, str | None]:
    """The version and kind a sealed payload claims (unverified), for the refusal report."""
    try:
        release = decode_sealed(payload).release
    except WatchlistRefusedError:
        return None, None
    return release.version, release.kind
