"""The plate of a hit that started a recording, sealed to HQ inside the signed ledger entry.

The ledger stays on the device (and travels to HQ); a ``record_start`` entry
names the hit that started it. Its plate and case reference are HPKE-sealed to
HQ's X25519 key, so a lost camera's ledger names no listed plate, while the
device's signature still covers the sealed bytes: an auditor verifies the chain
as before, and HQ opens the field with :func:`open_hit_detail` when a case needs it.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from agent.errors import PayloadError

FIELD: Final = "hit_sealed"
ALG: Final = "hpke-base-x25519-sha256-aes128gcm"
_SUITE: Final = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
_LABEL: Final = b"raqib-ledger-hit-v1\x00"


def seal_hit_detail(
    hq_key: X25519PublicKey, device_id: str, plate: str, case_ref: str
) -> dict[str, Any]:
    """``{"hit_sealed": {"alg": ..., "ct": base64}}`` for a ledger action's detail."""
    clear = json.dumps({"plate": plate, "case_ref": case_ref}).encode("utf-8")
    ct = _SUITE.encrypt(clear, hq_key, info=_LABEL + device_id.encode("utf-8"))
    return {FIELD: {"alg": ALG, "ct": base64.b64encode(ct).decode("ascii")}}


def open_hit_detail(
    hq_key: X25519PrivateKey, device_id: str, detail: dict[str, Any]
) -> dict[str, str]:
    """HQ: the plate and case reference in a sealed detail; raises PayloadError."""
    sealed = detail.get(FIELD)
    if not isinstance(sealed, dict) or sealed.get("alg") != ALG:
        raise PayloadError("ledger detail has no sealed hit")
    try:
        ct = base64.b64decode(str(sealed.get("ct")), validate=True)
        clear = _SUITE.decrypt(ct, hq_key, info=_LABEL + device_id.encode("utf-8"))
        opened = json.loads(clear)
    except (InvalidTag, ValueError) as exc:
        raise PayloadError(f"sealed hit of {device_id!r} does not open with HQ's key") from exc
    if not isinstance(opened, dict):
        raise PayloadError("sealed hit is not an object")
    return {"plate": str(opened.get("plate")), "case_ref": str(opened.get("case_ref"))}
