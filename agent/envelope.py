"""The versioned wire envelope around every message a device sends, and HQ's acks.

Format version 1, algorithm ``none`` (this foundation release): UTF-8 JSON ::

    {"v": 1, "alg": "none", "kind": "hit", "device": "cam-01", "seq": 42,
     "sent_at": 1764060000.25, "body": {...}}

``seq`` is the per-device sequence number the outbox assigns (HQ deduplicates on
``(device, seq)`` and acknowledges by it); ``sent_at`` is the device clock when the
message was first written; ``body`` is the kind's content (``agent.messages``).

An ack, HQ -> device on ``.../devices/{id}/acks``::

    {"v": 1, "kind": "ack", "seqs": [41, 42]}

Sealing (signature by the device key, HPKE encryption to HQ) replaces this codec
later: ``alg`` names the algorithm and ``v`` the format, so a decoder refuses
what it does not know instead of guessing. Decoding is pure: bytes in, a
checked value or ``PayloadError`` out.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from agent.errors import PayloadError

VERSION: Final = 1
ALG_NONE: Final = "none"
SUPPORTED_ALGS: Final = frozenset({ALG_NONE})
ACK_KIND: Final = "ack"
MAX_MESSAGE_BYTES: Final = 512 * 1024
"""A message larger than this is refused before it is parsed (a hit with its crop fits)."""
MAX_ACK_BYTES: Final = 64 * 1024
MAX_ACK_SEQS: Final = 4096
MAX_SEQ: Final = 2**63 - 1
"""Sequence numbers are stored as signed 64-bit integers on both sides."""

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DEVICE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_ENVELOPE_KEYS: Final = frozenset({"v", "alg", "kind", "device", "seq", "sent_at", "body"})


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded message: who sent it, its sequence number and its (still unchecked) body."""

    v: int
    alg: str
    kind: str
    device: str
    seq: int
    sent_at: float
    body: dict[str, Any]


def _dumps(obj: object) -> bytes:
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"message cannot be encoded as JSON: {exc}") from exc
    return text.encode("utf-8")


def encode_message(
    kind: str, device_id: str, seq: int, body: dict[str, Any], sent_at: float
) -> bytes:
    """The wire bytes of one message; raises PayloadError if it could not be decoded back."""
    if not _KIND_RE.fullmatch(kind):
        raise PayloadError(f"message kind {kind!r} is not a lower-case identifier")
    if not _DEVICE_RE.fullmatch(device_id):
        raise PayloadError(f"device id {device_id!r} is not valid")
    if not 0 <= seq <= MAX_SEQ:
        raise PayloadError(f"sequence number {seq} is out of range")
    payload = _dumps(
        {
            "v": VERSION,
            "alg": ALG_NONE,
            "kind": kind,
            "device": device_id,
            "seq": seq,
            "sent_at": sent_at,
            "body": body,
        }
    )
    if len(payload) > MAX_MESSAGE_BYTES:
        raise PayloadError(f"message is {len(payload)} bytes, more than {MAX_MESSAGE_BYTES}")
    return payload


def _reject_constant(name: str) -> None:
    raise PayloadError(f"message contains the non-JSON number {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise PayloadError("message has a duplicated key")
    return obj


def _parse_json(payload: bytes | bytearray, limit: int, what: str) -> object:
    if len(payload) > limit:
        raise PayloadError(f"{what} is {len(payload)} bytes, more than {limit}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{what} is not UTF-8 (byte {exc.start})") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise PayloadError(f"{what} is not JSON: {exc.msg} at {where}") from exc
    except RecursionError as exc:
        raise PayloadError(f"{what} is nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer literal longer than Python accepts
        raise PayloadError(f"{what} is not acceptable JSON: {exc}") from exc


def _int_field(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"envelope field {key!r} missing or not an integer")
    return value


def _str_field(obj: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise PayloadError(f"envelope field {key!r} missing or not a string")
    if pattern is not None and not pattern.fullmatch(value):
        raise PayloadError(f"envelope field {key!r} has an invalid value {value[:70]!r}")
    return value


def _check_version(obj: dict[str, Any]) -> None:
    version = _int_field(obj, "v")
    if version != VERSION:
        raise PayloadError(f"envelope version {version} is not supported (expected {VERSION})")


def decode_message(payload: bytes | bytearray) -> Envelope:
    """Parse and check one message envelope; raises PayloadError saying precisely what is wrong.

    The body is only checked to be an object: its content is the kind's parser's concern.
    """
    obj = _parse_json(payload, MAX_MESSAGE_BYTES, "message")
    if not isinstance(obj, dict):
        raise PayloadError("message is not a JSON object")
    _check_version(obj)
    unknown = set(obj) - _ENVELOPE_KEYS
    if unknown:
        raise PayloadError(f"envelope has unknown fields {sorted(unknown)[:5]}")
    alg = _str_field(obj, "alg")
    if alg not in SUPPORTED_ALGS:
        raise PayloadError(f"envelope algorithm {alg[:40]!r} is not supported")
    kind = _str_field(obj, "kind", _KIND_RE)
    device = _str_field(obj, "device", _DEVICE_RE)
    seq = _int_field(obj, "seq")
    if seq < 0:
        raise PayloadError(f"envelope sequence number {seq} is negative")
    if seq > MAX_SEQ:
        raise PayloadError("envelope sequence number is larger than 2**63 - 1")
    sent_at = obj.get("sent_at")
    if not isinstance(sent_at, int | float) or isinstance(sent_at, bool):
        raise PayloadError("envelope field 'sent_at' missing or not a number")
    try:
        sent = float(sent_at)
    except OverflowError as exc:
        raise PayloadError("envelope field 'sent_at' is out of range") from exc
    if not math.isfinite(sent):
        raise PayloadError("envelope field 'sent_at' is not finite")
    body = obj.get("body")
    if not isinstance(body, dict):
        raise PayloadError("envelope field 'body' missing or not an object")
    return Envelope(VERSION, alg, kind, device, seq, sent, body)


def encode_ack(seqs: list[int]) -> bytes:
    """HQ's acknowledgement that the messages with these sequence numbers are stored."""
    if len(seqs) > MAX_ACK_SEQS:
        raise PayloadError(f"an ack holds at most {MAX_ACK_SEQS} sequence numbers, not {len(seqs)}")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seqs):
        raise PayloadError("ack sequence numbers must be non-negative integers")
    return _dumps({"v": VERSION, "kind": ACK_KIND, "seqs": list(seqs)})


def decode_ack(payload: bytes | bytearray) -> list[int]:
    """The sequence numbers an ack names; raises PayloadError if it is malformed."""
    obj = _parse_json(payload, MAX_ACK_BYTES, "ack")
    if not isinstance(obj, dict):
        raise PayloadError("ack is not a JSON object")
    _check_version(obj)
    if obj.get("kind") != ACK_KIND:
        raise PayloadError("ack field 'kind' is not 'ack'")
    seqs = obj.get("seqs")
    if not isinstance(seqs, list):
        raise PayloadError("ack field 'seqs' missing or not a list")
    if len(seqs) > MAX_ACK_SEQS:
        raise PayloadError(f"ack names {len(seqs)} sequence numbers, more than {MAX_ACK_SEQS}")
    if any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEQ for s in seqs):
        raise PayloadError("ack field 'seqs' holds something other than non-negative integers")
    return list(seqs)
