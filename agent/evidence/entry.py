"""Ledger entries: what each one says, how it is signed and chained, and how it is checked.

An entry is a JSON object (``docs/evidence.md`` is the reference)::

    {"v": 1, "alg": "ed25519+sha256", "device": "cam-01", "seq": 7, "at": 1764000000.0,
     "prev": "<sha256 hex of entry 6>", "officer": "B-1234", "type": "segment",
     "segment": {"number": 12, "recording": "...", "part": 3, "file": "...",
                 "start": ..., "end": ..., "frames": 250, "sha256": "...", "size": ...,
                 "gnss": {"lat": ..., "lon": ..., "accuracy_m": ..., "timestamp": ...} | null,
                 "flags": ["pre_event", "truncated", "disk_full", "audio", "muted"]},
     "sig": "<base64 Ed25519 signature>"}

or ``"type": "action"`` with ``"action": {"name": "record_start", "by": "officer",
"detail": {...}}``. The signature covers ``b"raqib-ledger-v1\\x00"`` and the
canonical JSON (sorted keys, no spaces) of the entry without ``sig``; the entry's
hash, which the next entry names in ``prev``, is the SHA-256 of the same
canonical bytes. The first entry's ``prev`` is 64 zeros.

Pure: bodies and keys in, a checked value or ``LedgerEntryError`` out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.evidence.errors import LedgerEntryError
from agent.evidence.sealing import canonical_json

VERSION: Final = 1
ALG: Final = "ed25519+sha256"
MESSAGE_KIND: Final = "ledger"
"""The outbox/envelope kind an entry travels under (topic ``.../devices/{id}/ledger``)."""
GENESIS: Final = "0" * 64
TYPE_SEGMENT: Final = "segment"
TYPE_ACTION: Final = "action"
FLAG_PRE_EVENT: Final = "pre_event"
FLAG_TRUNCATED: Final = "truncated"
FLAG_DISK_FULL: Final = "disk_full"
FLAG_AUDIO: Final = "audio"
"""The segment holds a sound track (AAC) besides the picture."""
FLAG_MUTED: Final = "muted"
"""The officer muted the microphone during the segment (its sound is silence there)."""
_LABEL: Final = b"raqib-ledger-v1\x00"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COMMON: Final = frozenset({"v", "alg", "device", "seq", "at", "prev", "officer", "type", "sig"})
_SEGMENT_KEYS: Final = frozenset(
    {
        "number",
        "recording",
        "part",
        "file",
        "start",
        "end",
        "frames",
        "sha256",
        "size",
        "gnss",
        "flags",
    }
)


def signed_bytes(content: dict[str, Any]) -> bytes:
    """What the device signs: the label and the canonical entry without ``sig``."""
    return _LABEL + canonical_json({k: v for k, v in content.items() if k != "sig"})


def entry_hash(body: dict[str, Any]) -> str:
    """The chain hash of an entry (hex): SHA-256 of its canonical form without ``sig``."""
    return hashlib.sha256(canonical_json({k: v for k, v in body.items() if k != "sig"})).hexdigest()


def sign_entry(content: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The entry with its ``sig`` field added."""
    signature = key.sign(signed_bytes(content))
    return {**content, "sig": base64.b64encode(signature).decode("ascii")}


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """The segment part of a ledger entry, type-checked."""

    number: int
    recording: str
    part: int
    file: str
    start: float
    end: float
    frames: int
    sha256: str
    size: int
    gnss: dict[str, Any] | None
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A parsed entry; ``signature_ok`` is None until checked against a device key."""

    device: str
    seq: int
    at: float
    prev: str
    officer: str
    type: str
    hash: str
    segment: SegmentRecord | None
    action: dict[str, Any] | None
    body: dict[str, Any]

    def verify(self, key: Ed25519PublicKey) -> bool:
        """True if the entry's signature verifies against ``key``."""
        try:
            signature = base64.b64decode(str(self.body.get("sig", "")), validate=True)
            key.verify(signature, signed_bytes(self.body))
        except (binascii.Error, ValueError, InvalidSignature):
            return False
        return True


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LedgerEntryError(f"{what} field {key!r} missing or of the wrong type")
    return value


def _segment(obj: object) -> SegmentRecord:
    if not isinstance(obj, dict) or set(obj) != _SEGMENT_KEYS:
        raise LedgerEntryError("ledger entry 'segment' does not have the expected fields")
    sha = _get(obj, "sha256", str, "segment")
    if not _HEX64.fullmatch(sha):
        raise LedgerEntryError("segment field 'sha256' is not 64 hex digits")
    flags = obj.get("flags")
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise LedgerEntryError("segment field 'flags' is not a list of strings")
    gnss = obj.get("gnss")
    if gnss is not None and not isinstance(gnss, dict):
        raise LedgerEntryError("segment field 'gnss' is not an object")
    number = (int, float)
    return SegmentRecord(
        number=_get(obj, "number", int, "segment"),
        recording=_get(obj, "recording", str, "segment"),
        part=_get(obj, "part", int, "segment"),
        file=_get(obj, "file", str, "segment"),
        start=float(_get(obj, "start", number, "segment")),
        end=float(_get(obj, "end", number, "segment")),
        frames=_get(obj, "frames", int, "segment"),
        sha256=sha,
        size=_get(obj, "size", int, "segment"),
        gnss=gnss,
        flags=tuple(flags),
    )


def parse_entry(body: object) -> LedgerEntry:
    """Check an entry's shape (not its signature); raises LedgerEntryError naming the field."""
    if not isinstance(body, dict):
        raise LedgerEntryError("ledger entry is not an object")
    if body.get("v") != VERSION or body.get("alg") != ALG:
        raise LedgerEntryError(f"ledger entry format {body.get('v')!r} is not supported")
    kind = _get(body, "type", str, "ledger entry")
    extra = set(body) - _COMMON
    if extra != ({kind} if kind in (TYPE_SEGMENT, TYPE_ACTION) else set()) or kind not in (
        TYPE_SEGMENT,
        TYPE_ACTION,
    ):
        raise LedgerEntryError(f"ledger entry of type {kind!r} has unexpected fields")
    prev = _get(body, "prev", str, "ledger entry")
    if not _HEX64.fullmatch(prev):
        raise LedgerEntryError("ledger entry field 'prev' is not 64 hex digits")
    _get(body, "sig", str, "ledger entry")
    action = body.get(TYPE_ACTION)
    if kind == TYPE_ACTION and not isinstance(action, dict):
        raise LedgerEntryError("ledger entry field 'action' is not an object")
    return LedgerEntry(
        device=_get(body, "device", str, "ledger entry"),
        seq=_get(body, "seq", int, "ledger entry"),
        at=float(_get(body, "at", (int, float), "ledger entry")),
        prev=prev,
        officer=_get(body, "officer", str, "ledger entry"),
        type=kind,
        hash=entry_hash(body),
        segment=_segment(body[TYPE_SEGMENT]) if kind == TYPE_SEGMENT else None,
        action=action if kind == TYPE_ACTION else None,
        body=body,
    )


def check_ledger_message(device_id: str, body: object) -> LedgerEntry:
    """For the HQ ingest: a ledger message's body must be an entry of the sending device.

    Raises LedgerEntryError (a PayloadError) if not. The signature is checked by
    the auditor against the enrolled key; the envelope already proved the sender.
    """
    entry = parse_entry(body)
    if entry.device != device_id:
        raise LedgerEntryError(f"ledger entry names device {entry.device!r}, not {device_id!r}")
    return entry
