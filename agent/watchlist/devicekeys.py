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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.pki import load_x25519_private, write_private
from agent.watchlist.atrest import CacheCipher, GraceCopy, KeyGrant, open_key_message

KEM_KEY: Final = "watchlist-kem.key"
GRACE_FILE: Final = "watchlist-key.grace"
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


def redact(detail: str) -> str:
    """A refusal detail without anything that could be a listed plate or an entry line.

    Details are logged, stored for ``status`` and entered in the ledger; errors
    about content quote the offending line or plate.
    """
    return _PLATE_SHAPED.sub("<plate>", _QUOTED.sub("<redacted>", detail))
