"""What a device needs to read confidential lists: its X25519 key, HQ's signing key, the policy.

The X25519 key (``watchlist-kem.key`` in the keys directory, 0600) opens the
content key HQ wraps for this device in each sealed bundle, and the cache key
HQ seals to it. It is made on first use like the signing key and registered at
HQ through the enrolment request (see :mod:`agent.enroll`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.fsutil import atomic_write
from agent.pki import load_x25519_private, public_pem, write_private
from agent.watchlist.atrest import CacheCipher, GraceCopy, KeyGrant, open_key_message

KEM_KEY: Final = "watchlist-kem.key"
GRACE_FILE: Final = "watchlist-key.grace"
KEM_PUB_SUFFIX: Final = ".kem.pub.pem"
KEM_SIG_SUFFIX: Final = ".kem.sig"
_KEM_PROOF_LABEL: Final = b"raqib-wl-kem-v1\x00"
_QUOTED = re.compile(r"""b?'[^']*'|b?"[^"]*\"""")
_PLATE_SHAPED = re.compile(
    r"\b(?:\d{1,5}-[A-Z]{1,3}-\d{1,2}|[A-Z]{1,3}-?\d{1,4}-?[A-Z]{0,3}|[A-Z0-9]{1,16}(?:-[A-Z0-9]+)+)\b"
)


def load_or_create_kem_key(path: Path) -> X25519PrivateKey:
    """The device's watchlist decryption key, made on first use; raises ConfigError."""
    if path.exists():
        return load_x25519_private(path, "watchlist decryption key")
    key = X25519PrivateKey.generate()
    write_private(path, key)
    return key


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    """The device's side of confidential lists; ``grace`` is None in memory-only mode."""

    device_id: str
    kem: X25519PrivateKey
    hq_signing: Ed25519PublicKey
    grace: GraceCopy | None = None
    grace_s: float = 0.0

    def open(self, payload: bytes) -> tuple[KeyGrant, CacheCipher]:
        """Open HQ's key message; raises KeyMessageError."""
        grant = open_key_message(payload, self.device_id, self.kem, self.hq_signing)
        return grant, CacheCipher(grant.key, self.device_id)


def kem_proof_bytes(device_id: str, kem_public: X25519PublicKey) -> bytes:
    """What the device's signing key signs to vouch for its watchlist key."""
    raw = kem_public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _KEM_PROOF_LABEL + device_id.encode("utf-8") + b"\x00" + raw


def write_kem_request(
    device_id: str, kem: X25519PrivateKey, signing: Ed25519PrivateKey, out_dir: Path
) -> Path:
    """The public half of the watchlist key, signed by the device's enrolled signing key.

    Part of every enrolment request; on its own it migrates a device enrolled before
    confidential lists (HQ checks it against the signing key it already registered).
    """
    public = kem.public_key()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{device_id}{KEM_PUB_SUFFIX}"
    atomic_write(path, public_pem(public), 0o644)
    signature = signing.sign(kem_proof_bytes(device_id, public))
    atomic_write(out_dir / f"{device_id}{KEM_SIG_SUFFIX}", signature.hex().encode() + b"\n", 0o644)
    return path


def redact(detail: str) -> str:
    """A refusal detail without anything that could be a listed plate or an entry line.

    Details are logged, stored for ``status`` and entered in the ledger; errors
    about content quote the offending line or plate.
    """
    return _PLATE_SHAPED.sub("<plate>", _QUOTED.sub("<redacted>", detail))
