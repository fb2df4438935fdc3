"""The sealed wire envelope around every message a device sends, and HQ's signed acks.

Format version 2 (``docs/wire-format.md`` is the reference). What the broker
sees is UTF-8 JSON whose payload is ciphertext::

    {"v": 2, "alg": "hpke-x25519-sha256-aes128gcm+ed25519", "kind": "hit",
     "device": "cam-01", "seq": 42, "ct": "<base64: HPKE enc || AEAD ciphertext>"}

- ``ct`` is HPKE (RFC 9180, base mode, single shot) to HQ's X25519 key with
  HKDF-SHA256 and AES-128-GCM; its ``info`` is :func:`context` of the header
  *and the MQTT topic*, so a changed header, or a message moved to another
  topic, does not decrypt.
- The plaintext is ``signature (64 bytes) || content`` where ``content`` is the
  JSON ``{"sent_at": ..., "body": {...}}`` and the Ed25519 signature by the
  device key covers ``"raqib-sign-v2" 0x00 context 0x00 content``: it binds the
  format version, algorithm, device id, sequence number, kind and topic.

An ack, HQ -> device on ``.../devices/{id}/acks``, is signed by HQ's Ed25519
key so that nobody else can make a device delete messages it has not delivered::

    {"v": 2, "alg": "ed25519", "kind": "ack", "device": "cam-01", "seqs": [41, 42],
     "sig": "<base64 signature of 'raqib-ack-v2' 0x00 [v, alg, device, seqs]>"}

A command, HQ -> device on ``.../devices/{id}/commands``, is signed by the same
HQ key; the device acts only on a command that verifies, names it, is fresh and
has not been seen before (``agent.commands`` keeps that memory)::

    {"v": 2, "alg": "ed25519", "kind": "command", "command_id": "9f1c...",
     "device_id": "cam-01", "action": "start_recording", "args": {},
     "issued_at": 1764000000.0, "expires_at": 1764000060.0, "sig": "<base64>"}

its signature covers ``'raqib-command-v2' 0x00`` and the canonical JSON (sorted
keys, no spaces) of the object without ``sig``.

Everything here is pure: bytes and keys in, a checked value or ``PayloadError``
out, with a message that says precisely what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from agent.errors import PayloadError

VERSION: Final = 2
ALG_SEALED: Final = "hpke-x25519-sha256-aes128gcm+ed25519"
SUPPORTED_ALGS: Final = frozenset({ALG_SEALED})
ALG_ACK: Final = "ed25519"
ACK_KIND: Final = "ack"
MAX_MESSAGE_BYTES: Final = 512 * 1024
"""A message larger than this is refused before it is parsed (a hit with its crop fits)."""
MAX_ACK_BYTES: Final = 64 * 1024
MAX_ACK_SEQS: Final = 2048
MAX_SEQ: Final = 2**63 - 1
"""Sequence numbers are stored as signed 64-bit integers on both sides."""
SIGNATURE_BYTES: Final = 64

_SUITE: Final = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
_SIGN_LABEL: Final = b"raqib-sign-v2\x00"
_SEAL_LABEL: Final = b"raqib-seal-v2\x00"
_ACK_LABEL: Final = b"raqib-ack-v2\x00"
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DEVICE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_HEADER_KEYS: Final = frozenset({"v", "alg", "kind", "device", "seq", "ct"})
_CONTENT_KEYS: Final = frozenset({"sent_at", "body"})
_ACK_KEYS: Final = frozenset({"v", "alg", "kind", "device", "seqs", "sig"})


@dataclass(frozen=True, slots=True)
class Header:
    """The clear part of a sealed message: enough to find the sender's key, nothing more."""

    v: int
    alg: str
    kind: str
    device: str
    seq: int
    ct: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """An opened, verified message: who sent it, its sequence number and its (unchecked) body."""

    v: int
    alg: str
    kind: str
    device: str
    seq: int
    topic: str
    sent_at: float
    body: dict[str, Any]


def _dumps(obj: object) -> bytes:
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"message cannot be encoded as JSON: {exc}") from exc
    return text.encode("utf-8")


def context(
    kind: str, device: str, seq: int, topic: str, *, v: int = VERSION, alg: str = ALG_SEALED
) -> bytes:
    """The bytes both HPKE ``info`` and the signature bind: header fields and the topic."""
    return _dumps([v, alg, kind, device, seq, topic])


def _check_names(kind: str, device_id: str, seq: int) -> None:
    if not _KIND_RE.fullmatch(kind):
        raise PayloadError(f"message kind {kind!r} is not a lower-case identifier")
    if not _DEVICE_RE.fullmatch(device_id):
        raise PayloadError(f"device id {device_id!r} is not valid")
    if not 0 <= seq <= MAX_SEQ:
        raise PayloadError(f"sequence number {seq} is out of range")


def seal_message(
    kind: str,
    device_id: str,
    seq: int,
    topic: str,
    body: dict[str, Any],
    *,
    sent_at: float,
    signing_key: Ed25519PrivateKey,
    hq_key: X25519PublicKey,
) -> bytes:
    """The wire bytes of one message, signed by the device and sealed to HQ.

    Raises PayloadError if the message could not be decoded back (bad name, too large).
    """
    _check_names(kind, device_id, seq)
    ctx = context(kind, device_id, seq, topic)
    content = _dumps({"sent_at": sent_at, "body": body})
    signature = signing_key.sign(_SIGN_LABEL + ctx + b"\x00" + content)
    ct = _SUITE.encrypt(signature + content, hq_key, info=_SEAL_LABEL + ctx)
    payload = _dumps(
        {
            "v": VERSION,
            "alg": ALG_SEALED,
            "kind": kind,
            "device": device_id,
            "seq": seq,
            "ct": base64.b64encode(ct).decode("ascii"),
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


def _int_field(obj: dict[str, Any], key: str, what: str = "envelope") -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{what} field {key!r} missing or not an integer")
    return value


def _str_field(
    obj: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None, what: str = "envelope"
) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise PayloadError(f"{what} field {key!r} missing or not a string")
    if pattern is not None and not pattern.fullmatch(value):
        raise PayloadError(f"{what} field {key!r} has an invalid value {value[:70]!r}")
    return value


def _b64_field(obj: dict[str, Any], key: str, what: str) -> bytes:
    text = _str_field(obj, key, what=what)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PayloadError(f"{what} field {key!r} is not base64") from exc


def _check_version(obj: dict[str, Any], what: str = "envelope") -> None:
    version = _int_field(obj, "v", what)
    if version != VERSION:
        raise PayloadError(f"{what} version {version} is not supported (expected {VERSION})")


def _check_seq(seq: int) -> None:
    if seq < 0:
        raise PayloadError(f"envelope sequence number {seq} is negative")
    if seq > MAX_SEQ:
        raise PayloadError("envelope sequence number is larger than 2**63 - 1")


def decode_message(payload: bytes | bytearray) -> Header:
    """Parse and check the clear header of a sealed message; needs no key.

    Raises PayloadError saying precisely what is wrong. Nothing in the header is
    trusted until :func:`open_message` has decrypted and verified the message.
    """
    obj = _parse_json(payload, MAX_MESSAGE_BYTES, "message")
    if not isinstance(obj, dict):
        raise PayloadError("message is not a JSON object")
    _check_version(obj)
    unknown = set(obj) - _HEADER_KEYS
    if unknown:
        raise PayloadError(f"envelope has unknown fields {sorted(unknown)[:5]}")
    alg = _str_field(obj, "alg")
    if alg not in SUPPORTED_ALGS:
        raise PayloadError(f"envelope algorithm {alg[:40]!r} is not supported")
    kind = _str_field(obj, "kind", _KIND_RE)
    device = _str_field(obj, "device", _DEVICE_RE)
    seq = _int_field(obj, "seq")
    _check_seq(seq)
    ct = _b64_field(obj, "ct", "envelope")
    return Header(VERSION, alg, kind, device, seq, ct)


def _parse_content(content: bytes) -> tuple[float, dict[str, Any]]:
    obj = _parse_json(content, MAX_MESSAGE_BYTES, "sealed content")
    if not isinstance(obj, dict):
        raise PayloadError("sealed content is not a JSON object")
    unknown = set(obj) - _CONTENT_KEYS
    if unknown:
        raise PayloadError(f"sealed content has unknown fields {sorted(unknown)[:5]}")
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
    return sent, body


def open_message(
    header: Header,
    topic: str,
    *,
    hq_key: X25519PrivateKey,
    device_key: Ed25519PublicKey,
) -> Envelope:
    """Decrypt with HQ's key and verify the device's signature; raises PayloadError if not."""
    ctx = context(header.kind, header.device, header.seq, topic, v=header.v, alg=header.alg)
    try:
        plaintext = _SUITE.decrypt(header.ct, hq_key, info=_SEAL_LABEL + ctx)
    except (InvalidTag, ValueError) as exc:
        raise PayloadError(
            "message cannot be decrypted: not sealed to this HQ key, or its header or topic "
            "was changed"
        ) from exc
    if len(plaintext) < SIGNATURE_BYTES:
        raise PayloadError("sealed content is shorter than its signature")
    signature, content = plaintext[:SIGNATURE_BYTES], plaintext[SIGNATURE_BYTES:]
    try:
        device_key.verify(signature, _SIGN_LABEL + ctx + b"\x00" + content)
    except InvalidSignature as exc:
        raise PayloadError(
            f"signature does not verify against device {header.device!r}'s enrolled key"
        ) from exc
    sent_at, body = _parse_content(content)
    return Envelope(
        header.v, header.alg, header.kind, header.device, header.seq, topic, sent_at, body
    )


# -- acks ----------------------------------------------------------------------------


def _ack_signed_bytes(device_id: str, seqs: list[int]) -> bytes:
    return _ACK_LABEL + _dumps([VERSION, ALG_ACK, device_id, seqs])


def encode_ack(device_id: str, seqs: list[int], signing_key: Ed25519PrivateKey) -> bytes:
    """HQ's signed acknowledgement that these messages of ``device_id`` are stored."""
    if not _DEVICE_RE.fullmatch(device_id):
        raise PayloadError(f"device id {device_id!r} is not valid")
    if len(seqs) > MAX_ACK_SEQS:
        raise PayloadError(f"an ack holds at most {MAX_ACK_SEQS} sequence numbers, not {len(seqs)}")
    if any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEQ for s in seqs):
        raise PayloadError("ack sequence numbers must be non-negative integers")
    seqs = list(seqs)
    signature = signing_key.sign(_ack_signed_bytes(device_id, seqs))
    return _dumps(
        {
            "v": VERSION,
            "alg": ALG_ACK,
            "kind": ACK_KIND,
            "device": device_id,
            "seqs": seqs,
            "sig": base64.b64encode(signature).decode("ascii"),
        }
    )


def _ack_fields(obj: dict[str, Any]) -> tuple[str, list[int], bytes]:
    _check_version(obj, "ack")
    unknown = set(obj) - _ACK_KEYS
    if unknown:
        raise PayloadError(f"ack has unknown fields {sorted(unknown)[:5]}")
    if obj.get("kind") != ACK_KIND:
        raise PayloadError("ack field 'kind' is not 'ack'")
    alg = _str_field(obj, "alg", what="ack")
    if alg != ALG_ACK:
        raise PayloadError(f"ack algorithm {alg[:40]!r} is not supported")
    device = _str_field(obj, "device", _DEVICE_RE, what="ack")
    seqs = obj.get("seqs")
    if not isinstance(seqs, list):
        raise PayloadError("ack field 'seqs' missing or not a list")
    if len(seqs) > MAX_ACK_SEQS:
        raise PayloadError(f"ack names {len(seqs)} sequence numbers, more than {MAX_ACK_SEQS}")
    if any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEQ for s in seqs):
        raise PayloadError("ack field 'seqs' holds something other than non-negative integers")
    return device, seqs, _b64_field(obj, "sig", "ack")


def decode_ack(
    payload: bytes | bytearray, device_id: str, hq_signing_key: Ed25519PublicKey
) -> list[int]:
    """The sequence numbers a genuine HQ ack for ``device_id`` names.

    Raises PayloadError if the ack is malformed, meant for another device, or
    not signed by HQ.
    """
    obj = _parse_json(payload, MAX_ACK_BYTES, "ack")
    if not isinstance(obj, dict):
        raise PayloadError("ack is not a JSON object")
    device, seqs, signature = _ack_fields(obj)
    if device != device_id:
        raise PayloadError(f"ack is for device {device!r}, not {device_id!r}")
    try:
        hq_signing_key.verify(signature, _ack_signed_bytes(device, seqs))
    except InvalidSignature as exc:
        raise PayloadError("ack signature does not verify against HQ's key") from exc
    return list(seqs)


# -- commands ------------------------------------------------------------------------

COMMAND_KIND: Final = "command"
ALG_COMMAND: Final = "ed25519"
MAX_COMMAND_BYTES: Final = 16 * 1024
MAX_COMMAND_TTL_S: Final = 3600.0
"""A command may be valid for at most an hour: the device's replay memory covers that long."""
CLOCK_SKEW_S: Final = 60.0
"""How far ahead of the device's clock a command's ``issued_at`` may be."""
_COMMAND_LABEL: Final = b"raqib-command-v2\x00"
_COMMAND_KEYS: Final = frozenset(
    {"v", "alg", "kind", "command_id", "device_id", "action", "args", "issued_at", "expires_at"}
)
_COMMAND_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True, slots=True)
class Command:
    """A command whose signature and addressee were checked (not yet its freshness)."""

    command_id: str
    device_id: str
    action: str
    args: dict[str, Any]
    issued_at: float
    expires_at: float


def _canonical(obj: object) -> bytes:
    try:
        text = json.dumps(
            obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True
        )
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"command cannot be encoded as JSON: {exc}") from exc
    return text.encode("utf-8")


def encode_command(command: Command, signing_key: Ed25519PrivateKey) -> bytes:
    """HQ's signed command; raises PayloadError if it could not be decoded back."""
    content: dict[str, Any] = {
        "v": VERSION,
        "alg": ALG_COMMAND,
        "kind": COMMAND_KIND,
        "command_id": command.command_id,
        "device_id": command.device_id,
        "action": command.action,
        "args": command.args,
        "issued_at": command.issued_at,
        "expires_at": command.expires_at,
    }
    _command_fields(content)  # refuse what the device would refuse
    signature = signing_key.sign(_COMMAND_LABEL + _canonical(content))
    payload = _dumps({**content, "sig": base64.b64encode(signature).decode("ascii")})
    if len(payload) > MAX_COMMAND_BYTES:
        raise PayloadError(f"command is {len(payload)} bytes, more than {MAX_COMMAND_BYTES}")
    return payload


def _finite(obj: dict[str, Any], key: str) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PayloadError(f"command field {key!r} missing or not a number")
    number = float(value)
    if not math.isfinite(number):
        raise PayloadError(f"command field {key!r} is not finite")
    return number


def _command_fields(obj: dict[str, Any]) -> Command:
    _check_version(obj, "command")
    unknown = set(obj) - _COMMAND_KEYS - {"sig"}
    if unknown:
        raise PayloadError(f"command has unknown fields {sorted(unknown)[:5]}")
    if obj.get("kind") != COMMAND_KIND:
        raise PayloadError("command field 'kind' is not 'command'")
    alg = _str_field(obj, "alg", what="command")
    if alg != ALG_COMMAND:
        raise PayloadError(f"command algorithm {alg[:40]!r} is not supported")
    args = obj.get("args")
    if not isinstance(args, dict):
        raise PayloadError("command field 'args' missing or not an object")
    issued_at, expires_at = _finite(obj, "issued_at"), _finite(obj, "expires_at")
    if not 0 < expires_at - issued_at <= MAX_COMMAND_TTL_S:
        raise PayloadError(
            f"command lifetime {expires_at - issued_at:.0f} s is not within "
            f"(0, {MAX_COMMAND_TTL_S:.0f}] s"
        )
    return Command(
        command_id=_str_field(obj, "command_id", _COMMAND_ID_RE, what="command"),
        device_id=_str_field(obj, "device_id", _DEVICE_RE, what="command"),
        action=_str_field(obj, "action", _ACTION_RE, what="command"),
        args=args,
        issued_at=issued_at,
        expires_at=expires_at,
    )


def decode_command(
    payload: bytes | bytearray, device_id: str, hq_signing_key: Ed25519PublicKey
) -> Command:
    """A genuine HQ command for ``device_id``; freshness and replay are the caller's checks
    (:func:`check_command_fresh`, ``agent.commands.SeenCommands``).

    Raises PayloadError if it is malformed, not signed by HQ, or meant for another device.
    """
    obj = _parse_json(payload, MAX_COMMAND_BYTES, "command")
    if not isinstance(obj, dict):
        raise PayloadError("command is not a JSON object")
    command = _command_fields(obj)
    signature = _b64_field(obj, "sig", "command")
    content = {k: v for k, v in obj.items() if k != "sig"}
    try:
        hq_signing_key.verify(signature, _COMMAND_LABEL + _canonical(content))
    except InvalidSignature as exc:
        raise PayloadError("command signature does not verify against HQ's key") from exc
    if command.device_id != device_id:
        raise PayloadError(f"command is for device {command.device_id!r}, not {device_id!r}")
    return command


def check_command_fresh(command: Command, now: float, skew_s: float = CLOCK_SKEW_S) -> None:
    """Raises PayloadError if ``command`` has expired or was issued in the future."""
    if now >= command.expires_at:
        raise PayloadError(
            f"command {command.command_id} expired {now - command.expires_at:.0f} s ago"
        )
    if command.issued_at > now + skew_s:
        raise PayloadError(
            f"command {command.command_id} is issued {command.issued_at - now:.0f} s in the "
            f"future (clock skew allowed: {skew_s:.0f} s)"
        )
