"""The signed watchlist wire format: canonical JSON, keys, root and list metadata, the bundle.

Pure functions over bytes: nothing here reads files, the clock or the network.
Every signed structure carries ``format`` and ``spec_version``; every key and
signature carries ``alg``. See docs/watchlist.md for the byte-level layout.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.watchlist.errors import (
    BadSignatureError,
    BelowThresholdError,
    MalformedError,
    OversizedError,
    RevokedKeyError,
    TruncatedError,
    UnknownKeyError,
)

SPEC_VERSION: Final = 1
ALG: Final = "ed25519"
ROOT_FORMAT: Final = "raqib-root"
LIST_FORMAT: Final = "raqib-watchlist"
MAGIC: Final = b"RQWL"
FRAME_VERSION: Final = 1
FLAG_ZLIB: Final = 0x01
_FRAME = struct.Struct(">4sBBI")

MAX_BUNDLE_BYTES: Final = 64 * 1024 * 1024
"""A bundle larger than this is refused before any parsing."""
MAX_HEADER_BYTES: Final = 1024 * 1024
MAX_CONTENT_BYTES: Final = 128 * 1024 * 1024
"""Largest content once decompressed (about 3 million entries)."""
MAX_ENTRIES: Final = 2_000_000
MAX_ROOTS_IN_BUNDLE: Final = 16

Kind = Literal["full", "delta"]


# -- canonical JSON -----------------------------------------------------------


def canonical_json(value: object) -> bytes:
    """The one byte spelling of a JSON value: sorted keys, no spaces, UTF-8, integers only."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _no_floats(text: str) -> object:
    raise MalformedError(f"non-integer number {text!r} (only integers are allowed)")


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object from untrusted bytes; raises MalformedError (duplicate keys, floats...)."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_no_floats,
            parse_constant=_no_floats,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedError(f"{what} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedError(f"{what} is not a JSON object")
    return value


def _get(obj: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = obj.get(key)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise MalformedError(f"{what}.{key} is missing or not a {kind.__name__} (got {value!r})")
    return value


def _exact_keys(obj: Mapping[str, Any], keys: set[str], what: str) -> None:
    extra, missing = set(obj) - keys, keys - set(obj)
    if extra or missing:
        raise MalformedError(
            f"{what}: unknown keys {sorted(extra)}, missing keys {sorted(missing)}"
        )


def _hex(text: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise MalformedError(f"{what} is not hexadecimal") from exc
    if len(raw) != size or raw.hex() != text:
        raise MalformedError(f"{what} is not {size} bytes of lower-case hex")
    return raw


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- keys and signatures ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key; its id is the SHA-256 of its canonical JSON."""

    public: bytes
    alg: str = ALG

    def to_dict(self) -> dict[str, str]:
        return {"alg": self.alg, "public": self.public.hex()}

    @property
    def keyid(self) -> str:
        return sha256_hex(canonical_json(self.to_dict()))

    @classmethod
    def from_dict(cls, obj: object, what: str) -> PublicKey:
        if not isinstance(obj, dict):
            raise MalformedError(f"{what} is not an object")
        _exact_keys(obj, {"alg", "public"}, what)
        if obj["alg"] != ALG:
            raise MalformedError(f"{what}.alg {obj['alg']!r} is not {ALG!r}")
        return cls(_hex(_get(obj, "public", str, what), 32, f"{what}.public"))

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> PublicKey:
        return cls(private.public_key().public_bytes_raw())


@dataclass(frozen=True, slots=True)
class Signature:
    keyid: str
    sig: bytes
    alg: str = ALG

    def to_dict(self) -> dict[str, str]:
        return {"alg": self.alg, "keyid": self.keyid, "sig": self.sig.hex()}

    @classmethod
    def from_dict(cls, obj: object, what: str) -> Signature:
        if not isinstance(obj, dict):
            raise MalformedError(f"{what} is not an object")
        _exact_keys(obj, {"alg", "keyid", "sig"}, what)
        if obj["alg"] != ALG:
            raise MalformedError(f"{what}.alg {obj['alg']!r} is not {ALG!r}")
        keyid = _get(obj, "keyid", str, what)
        _hex(keyid, 32, f"{what}.keyid")
        return cls(keyid, _hex(_get(obj, "sig", str, what), 64, f"{what}.sig"))


def sign(private: Ed25519PrivateKey, signed_bytes: bytes) -> Signature:
    """An Ed25519 signature over ``signed_bytes`` (the canonical JSON of a ``signed`` object)."""
    return Signature(PublicKey.of(private).keyid, private.sign(signed_bytes))


def _signatures(obj: object, what: str) -> tuple[Signature, ...]:
    if not isinstance(obj, list) or len(obj) > 64:
        raise MalformedError(f"{what} is not a list of at most 64 signatures")
    return tuple(Signature.from_dict(s, f"{what}[{i}]") for i, s in enumerate(obj))


def check_threshold(
    signed_bytes: bytes,
    signatures: tuple[Signature, ...],
    keys: Mapping[str, PublicKey],
    threshold: int,
    *,
    revoked: frozenset[str],
    what: str,
) -> int:
    """Count distinct trusted keys with a valid signature; raise if fewer than ``threshold``.

    Raises (most telling first, only when the threshold is not met): BadSignatureError
    when a trusted key's signature does not verify, RevokedKeyError when a rotated-out
    key signed, UnknownKeyError when only unknown keys signed, else BelowThresholdError.
    Extra signatures by unknown keys are ignored once the threshold is met.
    """
    valid: set[str] = set()
    bad: list[str] = []
    revoked_seen: list[str] = []
    unknown: list[str] = []
    for signature in signatures:
        key = keys.get(signature.keyid)
        if key is None:
            (revoked_seen if signature.keyid in revoked else unknown).append(signature.keyid)
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(signature.sig, signed_bytes)
        except InvalidSignature:
            bad.append(signature.keyid)
            continue
        valid.add(signature.keyid)
    if len(valid) >= threshold:
        return len(valid)
    summary = f"{what}: {len(valid)} valid signature(s) of {threshold} required"
    if bad:
        raise BadSignatureError(f"{summary}; signature by key {bad[0][:16]} does not verify")
    if revoked_seen:
        raise RevokedKeyError(
            f"{summary}; key {revoked_seen[0][:16]} was revoked by a root rotation"
        )
    if unknown and not valid:
        raise UnknownKeyError(f"{summary}; key {unknown[0][:16]} is not trusted")
    raise BelowThresholdError(summary)


# -- root ---------------------------------------------------------------------


def _keys(obj: object, what: str) -> dict[str, PublicKey]:
    if not isinstance(obj, dict) or not obj or len(obj) > 64:
        raise MalformedError(f"{what} is not a non-empty object of at most 64 keys")
    keys = {}
    for keyid, raw in obj.items():
        key = PublicKey.from_dict(raw, f"{what}[{keyid[:16]}]")
        if key.keyid != keyid:
            raise MalformedError(f"{what}: key id {keyid[:16]} is not the hash of its key")
        keys[keyid] = key
    return keys


@dataclass(frozen=True)
class Root:
    """The trust anchor: root keys sign roots, admin keys sign lists, each with a threshold."""

    fleet: str
    version: int
    issued_at: int
    root_keys: Mapping[str, PublicKey]
    root_threshold: int
    admin_keys: Mapping[str, PublicKey]
    threshold: int
    revoked: frozenset[str] = frozenset()
    signatures: tuple[Signature, ...] = ()
    expires_at: int | None = None
    """After this (epoch s) the root is only good for reaching a newer one; ``None``:
    a root made before roots expired (no ``expires_at`` in its signed part)."""

    def signed_dict(self) -> dict[str, Any]:
        signed = self._signed_fields()
        if self.expires_at is not None:
            signed["expires_at"] = self.expires_at
        return signed

    def _signed_fields(self) -> dict[str, Any]:
        return {
            "format": ROOT_FORMAT,
            "spec_version": SPEC_VERSION,
            "fleet": self.fleet,
            "version": self.version,
            "issued_at": self.issued_at,
            "root_keys": {k: v.to_dict() for k, v in self.root_keys.items()},
            "root_threshold": self.root_threshold,
            "admin_keys": {k: v.to_dict() for k, v in self.admin_keys.items()},
            "threshold": self.threshold,
            "revoked": sorted(self.revoked),
        }

    def signed_bytes(self) -> bytes:
        return canonical_json(self.signed_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "signed": self.signed_dict(),
            "signatures": [s.to_dict() for s in self.signatures],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, obj: object) -> Root:
        """Parse (not verify) a root envelope; raises MalformedError."""
        if not isinstance(obj, dict):
            raise MalformedError("root is not an object")
        _exact_keys(obj, {"signed", "signatures"}, "root")
        s = obj["signed"]
        if not isinstance(s, dict):
            raise MalformedError("root.signed is not an object")
        names = {"format", "spec_version", "fleet", "version", "issued_at", "root_keys"}
        names |= {"root_threshold", "admin_keys", "threshold", "revoked"}
        if "expires_at" in s:
            names.add("expires_at")
        _exact_keys(s, names, "root.signed")
        if s["format"] != ROOT_FORMAT or s["spec_version"] != SPEC_VERSION:
            raise MalformedError(f"root is not {ROOT_FORMAT} spec version {SPEC_VERSION}")
        revoked = s["revoked"]
        if not isinstance(revoked, list) or not all(isinstance(k, str) for k in revoked):
            raise MalformedError("root.signed.revoked is not a list of key ids")
        root = cls(
            fleet=_get(s, "fleet", str, "root.signed"),
            version=_get(s, "version", int, "root.signed"),
            issued_at=_get(s, "issued_at", int, "root.signed"),
            root_keys=_keys(s["root_keys"], "root.signed.root_keys"),
            root_threshold=_get(s, "root_threshold", int, "root.signed"),
            admin_keys=_keys(s["admin_keys"], "root.signed.admin_keys"),
            threshold=_get(s, "threshold", int, "root.signed"),
            revoked=frozenset(revoked),
            signatures=_signatures(obj["signatures"], "root.signatures"),
            expires_at=_get(s, "expires_at", int, "root.signed") if "expires_at" in s else None,
        )
        if root.expires_at is not None and root.expires_at <= root.issued_at:
            raise MalformedError("root.signed.expires_at is not after issued_at")
        if not 1 <= root.root_threshold <= len(root.root_keys):
            raise MalformedError(
                "root.signed.root_threshold is not between 1 and the root key count"
            )
        if not 1 <= root.threshold <= len(root.admin_keys):
            raise MalformedError("root.signed.threshold is not between 1 and the admin key count")
        if root.version < 1:
            raise MalformedError("root.signed.version must be at least 1")
        return root

    @classmethod
    def from_bytes(cls, data: bytes) -> Root:
        if len(data) > MAX_HEADER_BYTES:
            raise OversizedError(f"root document is {len(data)} bytes (limit {MAX_HEADER_BYTES})")
        return cls.from_dict(parse_json(data, "root"))


# -- list metadata ------------------------------------------------------------

_META_KEYS = {
    "format",
    "spec_version",
    "fleet",
    "version",
    "issued_at",
    "expires_at",
    "kind",
    "base_version",
    "content_sha256",
    "content_length",
    "entry_count",
    "result_sha256",
    "result_length",
}


@dataclass(frozen=True, slots=True)
class Metadata:
    """What admins sign about one list version; ``result_*`` describe the full list after apply."""

    fleet: str
    version: int
    issued_at: int
    expires_at: int
    kind: Kind
    base_version: int | None
    content_sha256: str
    content_length: int
    entry_count: int
    result_sha256: str
    result_length: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LIST_FORMAT,
            "spec_version": SPEC_VERSION,
            "fleet": self.fleet,
            "version": self.version,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "kind": self.kind,
            "base_version": self.base_version,
            "content_sha256": self.content_sha256,
            "content_length": self.content_length,
            "entry_count": self.entry_count,
            "result_sha256": self.result_sha256,
            "result_length": self.result_length,
        }

    def signed_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, obj: object) -> Metadata:
        """Parse list metadata; raises MalformedError (unknown or missing keys, wrong types)."""
        if not isinstance(obj, dict):
            raise MalformedError("metadata is not an object")
        _exact_keys(obj, _META_KEYS, "signed")
        if obj["format"] != LIST_FORMAT or obj["spec_version"] != SPEC_VERSION:
            raise MalformedError(f"metadata is not {LIST_FORMAT} spec version {SPEC_VERSION}")
        kind = obj["kind"]
        if kind not in ("full", "delta"):
            raise MalformedError(f"signed.kind {kind!r} is not 'full' or 'delta'")
        base = obj["base_version"]
        if kind == "full" and base is not None:
            raise MalformedError("a full list has base_version null")
        if kind == "delta":
            base = _get(obj, "base_version", int, "signed")
        for name in ("content_sha256", "result_sha256"):
            _hex(_get(obj, name, str, "signed"), 32, f"signed.{name}")
        meta = cls(
            fleet=_get(obj, "fleet", str, "signed"),
            version=_get(obj, "version", int, "signed"),
            issued_at=_get(obj, "issued_at", int, "signed"),
            expires_at=_get(obj, "expires_at", int, "signed"),
            kind=kind,
            base_version=base,
            content_sha256=obj["content_sha256"],
            content_length=_get(obj, "content_length", int, "signed"),
            entry_count=_get(obj, "entry_count", int, "signed"),
            result_sha256=obj["result_sha256"],
            result_length=_get(obj, "result_length", int, "signed"),
        )
        if max(meta.content_length, meta.result_length) > MAX_CONTENT_BYTES:
            raise OversizedError(
                f"content of {meta.result_length} bytes (limit {MAX_CONTENT_BYTES})"
            )
        if meta.entry_count > MAX_ENTRIES:
            raise OversizedError(f"{meta.entry_count} entries (limit {MAX_ENTRIES})")
        if kind == "full" and (
            meta.result_sha256 != meta.content_sha256 or meta.result_length != meta.content_length
        ):
            raise MalformedError("a full list's result hash and length are its content's")
        return meta


# -- the bundle ---------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """One decoded wire bundle: metadata, signatures, the roots it carries, the content.

    The content is decompressed and length-checked only when first read, so a
    verifier inflates nothing before the signatures and the version passed.
    """

    metadata: Metadata
    signatures: tuple[Signature, ...]
    body: bytes = field(repr=False)
    """The content as carried (zlib-compressed if ``compressed``)."""
    compressed: bool = False
    roots: tuple[Root, ...] = ()
    header: bytes = field(default=b"", repr=False)
    """The canonical header bytes exactly as received (metadata + signatures + roots)."""

    @cached_property
    def content(self) -> bytes:
        """The content, decompressed; raises OversizedError, TruncatedError, MalformedError."""
        expected = self.metadata.content_length
        content = _inflate(self.body, expected) if self.compressed else self.body
        if len(content) < expected:
            raise TruncatedError(f"content is {len(content)} bytes, signed length {expected}")
        if len(content) > expected:
            raise MalformedError(f"content is {len(content)} bytes, signed length {expected}")
        return content


def encode_bundle(
    metadata: Metadata,
    signatures: tuple[Signature, ...],
    content: bytes,
    roots: tuple[Root, ...] = (),
    *,
    compress: bool = True,
) -> bytes:
    """The wire bytes of a bundle (see docs/watchlist.md, "Bundle")."""
    header = canonical_json(
        {
            "signed": metadata.to_dict(),
            "signatures": [s.to_dict() for s in signatures],
            "roots": [r.to_dict() for r in roots],
        }
    )
    body = zlib.compress(content, 6) if compress else content
    flags = FLAG_ZLIB if compress else 0
    return _FRAME.pack(MAGIC, FRAME_VERSION, flags, len(header)) + header + body


def _inflate(body: bytes, expected: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(body, expected + 1)
    except zlib.error as exc:
        raise MalformedError(f"content is not valid zlib data: {exc}") from exc
    if len(out) > expected:
        raise OversizedError(f"content inflates past its signed length of {expected} bytes")
    if not inflater.eof:
        raise TruncatedError("compressed content ends early")
    if inflater.unused_data:
        raise MalformedError("bytes after the compressed content")
    return out


def decode_bundle(data: bytes) -> Bundle:
    """Split and parse a wire bundle's frame and header; verifies nothing cryptographic.

    Raises OversizedError (checked before parsing), TruncatedError, MalformedError;
    the content is checked when :attr:`Bundle.content` is first read.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise OversizedError(f"bundle is {len(data)} bytes (limit {MAX_BUNDLE_BYTES})")
    if len(data) < _FRAME.size:
        raise TruncatedError(
            f"bundle is {len(data)} bytes, shorter than its {_FRAME.size}-byte frame"
        )
    magic, version, flags, header_len = _FRAME.unpack_from(data)
    if magic != MAGIC:
        raise MalformedError("not a raqib watchlist bundle (bad magic)")
    if version != FRAME_VERSION or flags & ~FLAG_ZLIB:
        raise MalformedError(f"unsupported bundle frame version {version} / flags {flags:#x}")
    if header_len > MAX_HEADER_BYTES:
        raise OversizedError(f"bundle header is {header_len} bytes (limit {MAX_HEADER_BYTES})")
    end = _FRAME.size + header_len
    if len(data) < end:
        raise TruncatedError(f"bundle ends inside its {header_len}-byte header")
    header = data[_FRAME.size : end]
    obj = parse_json(header, "bundle header")
    _exact_keys(obj, {"signed", "signatures", "roots"}, "bundle header")
    metadata = Metadata.from_dict(obj["signed"])
    roots_raw = obj["roots"]
    if not isinstance(roots_raw, list) or len(roots_raw) > MAX_ROOTS_IN_BUNDLE:
        raise MalformedError(f"bundle roots is not a list of at most {MAX_ROOTS_IN_BUNDLE}")
    return Bundle(
        metadata=metadata,
        signatures=_signatures(obj["signatures"], "signatures"),
        body=data[end:],
        compressed=bool(flags & FLAG_ZLIB),
        roots=tuple(Root.from_dict(r) for r in roots_raw),
        header=header,
    )
