"""The watchlist at rest on the device: the cache key, how it arrives, and the blobs it seals.

The cached list is encrypted (AES-256-GCM) with a *cache key* that HQ makes
for each device and keeps. The key is not stored beside the cache: HQ sends it
as a **key message** (HPKE-sealed to the device's X25519 key, signed by HQ's
Ed25519 key) on the device's own ``watchlist-key`` topic, and by default the
device holds it in memory only, so a powered-off lost camera holds ciphertext
and no key. A device reported lost is revoked at HQ: HQ stops sending it the
key and withdraws the retained message, and the broker's CRL keeps it out.

Grace mode (``watchlist.key_policy = "grace"``) keeps the received key message
on disk for ``grace_hours`` so the device can boot offline with its list. That
file is sealed to the device key, which sits on the same disk: someone who
takes the storage within the window can read the list (see docs/watchlist.md).

Each sealed blob's associated data names the device and what the blob is, so a
cache file copied from one device does not open on another (another key) and a
blob moved between rows does not open either.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from agent.errors import StorageError
from agent.fsutil import atomic_write
from agent.watchlist.errors import CacheTamperedError, WatchlistRefusedError
from agent.watchlist.format import canonical_json

CACHE_KEY_BYTES: Final = 32
BLOB_MAGIC: Final = b"RQWC\x01"
NONCE_BYTES: Final = 12
KEY_MESSAGE_VERSION: Final = 1
KEY_KIND: Final = "watchlist_key"
KEY_ALG: Final = "hpke-base-x25519-sha256-aes128gcm+ed25519"
MAX_KEY_MESSAGE_BYTES: Final = 4096
_SUITE: Final = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
_BLOB_LABEL: Final = b"raqib-wl-cache-v1\x00"
_KEY_SEAL_LABEL: Final = b"raqib-wl-key-seal-v1\x00"
_KEY_SIGN_LABEL: Final = b"raqib-wl-key-sign-v1\x00"
_KEY_FIELDS: Final = frozenset({"v", "alg", "kind", "device", "issued_at", "ct", "sig"})


class CacheLockedError(WatchlistRefusedError):
    """The cache is encrypted and this device does not hold its key (yet)."""

    reason = "locked"


class KeyMessageError(WatchlistRefusedError):
    """A watchlist key message that is malformed, for another device, or not signed by HQ."""

    reason = "bad_key_message"


class CacheCipher:
    """Seals and opens the cache's blobs with one device's cache key."""

    def __init__(self, key: bytes, device_id: str) -> None:
        if len(key) != CACHE_KEY_BYTES:
            raise ValueError("a cache key is 32 bytes")
        self._aead = AESGCM(key)
        self._device = device_id.encode("utf-8")

    def _aad(self, purpose: str) -> bytes:
        return _BLOB_LABEL + self._device + b"\x00" + purpose.encode("utf-8")

    def seal(self, purpose: str, data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return BLOB_MAGIC + nonce + self._aead.encrypt(nonce, data, self._aad(purpose))

    def open(self, purpose: str, blob: bytes) -> bytes:
        """The clear blob; raises CacheTamperedError (clear, edited, or another device's)."""
        if blob[: len(BLOB_MAGIC)] != BLOB_MAGIC:
            raise CacheTamperedError(f"cache blob {purpose} is not sealed")
        nonce = blob[len(BLOB_MAGIC) : len(BLOB_MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(
                nonce, blob[len(BLOB_MAGIC) + NONCE_BYTES :], self._aad(purpose)
            )
        except InvalidTag as exc:
            raise CacheTamperedError(
                f"cache blob {purpose} does not open with this device's key "
                "(edited, or copied from another device)"
            ) from exc


# -- key messages -------------------------------------------------------------------------


def _context(device_id: str, issued_at: int) -> bytes:
    return canonical_json([KEY_MESSAGE_VERSION, KEY_ALG, KEY_KIND, device_id, issued_at])


def make_key_message(
    device_id: str,
    device_kem: X25519PublicKey,
    cache_key: bytes,
    issued_at: int,
    hq_signing: Ed25519PrivateKey,
) -> bytes:
    """HQ: the cache key sealed to one device and signed by HQ (JSON, < 1 KiB)."""
    ctx = _context(device_id, issued_at)
    ct = base64.b64encode(_SUITE.encrypt(cache_key, device_kem, info=_KEY_SEAL_LABEL + ctx))
    sig = hq_signing.sign(_KEY_SIGN_LABEL + ctx + b"\x00" + ct)
    return canonical_json(
        {
            "v": KEY_MESSAGE_VERSION,
            "alg": KEY_ALG,
            "kind": KEY_KIND,
            "device": device_id,
            "issued_at": issued_at,
            "ct": ct.decode("ascii"),
            "sig": base64.b64encode(sig).decode("ascii"),
        }
    )


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """An opened key message: the cache key and when HQ issued it."""

    key: bytes
    issued_at: int


def _fields(payload: bytes) -> dict[str, object]:
    if len(payload) > MAX_KEY_MESSAGE_BYTES:
        raise KeyMessageError(f"key message is {len(payload)} bytes")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyMessageError("key message is not UTF-8 JSON") from exc
    if not isinstance(obj, dict) or set(obj) != _KEY_FIELDS:
        raise KeyMessageError("key message does not have exactly the expected fields")
    if (obj["v"], obj["alg"], obj["kind"]) != (KEY_MESSAGE_VERSION, KEY_ALG, KEY_KIND):
        raise KeyMessageError("key message version, algorithm or kind is not supported")
    if not isinstance(obj["issued_at"], int) or isinstance(obj["issued_at"], bool):
        raise KeyMessageError("key message issued_at is not an integer")
    if not all(isinstance(obj[k], str) for k in ("device", "ct", "sig")):
        raise KeyMessageError("key message device, ct and sig must be strings")
    return obj


def open_key_message(
    payload: bytes,
    device_id: str,
    device_kem: X25519PrivateKey,
    hq_signing: Ed25519PublicKey,
) -> KeyGrant:
    """The cache key in HQ's message for this device; raises KeyMessageError."""
    obj = _fields(payload)
    if obj["device"] != device_id:
        raise KeyMessageError(f"key message is for device {obj['device']!r}, not {device_id!r}")
    issued_at = int(obj["issued_at"])  # type: ignore[call-overload]
    ctx = _context(device_id, issued_at)
    ct_text = str(obj["ct"]).encode("ascii", "replace")
    try:
        sig = base64.b64decode(str(obj["sig"]), validate=True)
        ct = base64.b64decode(ct_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyMessageError("key message ct or sig is not base64") from exc
    try:
        hq_signing.verify(sig, _KEY_SIGN_LABEL + ctx + b"\x00" + ct_text)
    except InvalidSignature as exc:
        raise KeyMessageError("key message is not signed by HQ") from exc
    try:
        key = _SUITE.decrypt(ct, device_kem, info=_KEY_SEAL_LABEL + ctx)
    except (InvalidTag, ValueError) as exc:
        raise KeyMessageError("key message is not sealed to this device's key") from exc
    if len(key) != CACHE_KEY_BYTES:
        raise KeyMessageError("key message does not hold a 32-byte key")
    return KeyGrant(key, issued_at)


# -- grace copy ------------------------------------------------------------------------------


class GraceCopy:
    """The key message kept on disk in grace mode (0600), with the time it was received."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, payload: bytes, received_at: float) -> None:
        """Raises StorageError."""
        data = {"received_at": received_at, "message": base64.b64encode(payload).decode("ascii")}
        atomic_write(self.path, json.dumps(data).encode("utf-8"), 0o600)

    def load(self, now: float, grace_s: float) -> bytes | None:
        """The kept key message if it is younger than ``grace_s``; None otherwise (and expired
        copies are deleted)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            received = float(data["received_at"])
            payload = base64.b64decode(data["message"], validate=True)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, binascii.Error):
            self.delete()
            return None
        if not received <= now < received + grace_s:
            self.delete()
            return None
        return payload

    def delete(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {self.path}: {exc.strerror}") from exc
