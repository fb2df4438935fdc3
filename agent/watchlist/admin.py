"""The admin side: keys, root documents, building, diffing and signing bundles.

File I/O lives here and in the CLI, never in the verification core. Private
keys are PKCS#8 PEM files created with mode 0600 (never overwritten); public
keys are the JSON ``{"alg": "ed25519", "public": "<hex>"}`` that roots embed.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import WatchlistError
from agent.fsutil import atomic_write
from agent.reader.plate_text import canonicalize
from agent.watchlist.content import ListEntry, encode_delta, encode_entries, parse_full
from agent.watchlist.errors import MalformedError
from agent.watchlist.format import (
    Bundle,
    Metadata,
    PublicKey,
    Root,
    canonical_json,
    decode_bundle,
    encode_bundle,
    parse_json,
    sha256_hex,
    sign,
)

# -- keys ---------------------------------------------------------------------


def generate_key(private_path: Path, public_path: Path) -> PublicKey:
    """A new Ed25519 key pair: private PEM (0600, refuses to overwrite), public JSON."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise WatchlistError(f"{private_path} exists; refusing to overwrite a key") from exc
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    public = PublicKey.of(key)
    atomic_write(public_path, canonical_json(public.to_dict()) + b"\n")
    return public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Raises WatchlistError if the file is missing or not an Ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise WatchlistError(f"cannot load private key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise WatchlistError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> PublicKey:
    """A public key JSON file (or a private key PEM, whose public half is taken)."""
    data = _read(path)
    if data.startswith(b"-----BEGIN"):
        return PublicKey.of(load_private_key(path))
    return PublicKey.from_dict(parse_json(data, str(path)), str(path))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WatchlistError(f"cannot read {path}: {exc.strerror}") from exc


# -- roots --------------------------------------------------------------------


def make_root(
    fleet: str,
    root_keys: Sequence[PublicKey],
    admin_keys: Sequence[PublicKey],
    threshold: int,
    *,
    root_threshold: int = 1,
    issued_at: int,
    previous: Root | None = None,
    expires_at: int | None = None,
) -> Root:
    """An unsigned root: version 1, or ``previous.version + 1`` with dropped admin keys revoked.

    ``expires_at``: after it, devices refuse lists under this root until a rotation
    to a newer root reaches them (rotate well before; see docs/watchlist.md).
    """
    admins = {k.keyid: k for k in admin_keys}
    revoked: frozenset[str] = frozenset()
    version = 1
    if previous is not None:
        version = previous.version + 1
        revoked = (previous.revoked | set(previous.admin_keys)) - set(admins)
    root = Root(
        fleet=fleet,
        version=version,
        issued_at=issued_at,
        root_keys={k.keyid: k for k in root_keys},
        root_threshold=root_threshold,
        admin_keys=admins,
        threshold=threshold,
        revoked=revoked,
        expires_at=expires_at,
    )
    return Root.from_dict(root.to_dict())  # the same checks a device makes


def sign_root(root: Root, key: Ed25519PrivateKey) -> Root:
    """``root`` with ``key``'s signature added (replacing an older one by the same key)."""
    signature = sign(key, root.signed_bytes())
    others = tuple(s for s in root.signatures if s.keyid != signature.keyid)
    return replace(root, signatures=(*others, signature))


def load_root(path: Path) -> Root:
    return Root.from_bytes(_read(path))


# -- lists --------------------------------------------------------------------


def read_csv(path: Path) -> list[ListEntry]:
    """Entries from ``plate,reason,case_ref,priority[,expires_at]``; raises WatchlistError."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"plate", "reason"} <= set(reader.fieldnames or []):
                raise WatchlistError(f"{path}: columns plate and reason are required")
            return [_csv_entry(row, n, path) for n, row in enumerate(reader, start=2)]
    except OSError as exc:
        raise WatchlistError(f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise WatchlistError(f"{path} is not a UTF-8 CSV file: {exc}") from exc


def _csv_entry(row: dict[str, str], line: int, path: Path) -> ListEntry:
    plate, _fmt = canonicalize((row.get("plate") or "").strip())
    numbers = {}
    for name, default in (("priority", "1"), ("expires_at", "0")):
        text = (row.get(name) or default).strip()
        if not text.isdigit():
            raise WatchlistError(f"{path}:{line}: {name} {text!r} is not a whole number")
        numbers[name] = int(text)
    entry = ListEntry(
        plate,
        (row.get("reason") or "").strip(),
        (row.get("case_ref") or "").strip(),
        numbers["priority"],
        numbers["expires_at"],
    )
    try:
        return entry.check()
    except MalformedError as exc:
        raise WatchlistError(f"{path}:{line}: {exc}") from exc


def full_metadata(
    content: bytes, fleet: str, version: int, issued_at: int, expires_at: int
) -> Metadata:
    digest = sha256_hex(content)
    return Metadata(
        fleet=fleet,
        version=version,
        issued_at=issued_at,
        expires_at=expires_at,
        kind="full",
        base_version=None,
        content_sha256=digest,
        content_length=len(content),
        entry_count=len(parse_full(content)),
        result_sha256=digest,
        result_length=len(content),
    )


def build_full(
    entries: Iterable[ListEntry],
    *,
    fleet: str,
    version: int,
    issued_at: int,
    expires_at: int,
    roots: tuple[Root, ...] = (),
) -> bytes:
    """An unsigned full bundle."""
    content = encode_entries(entries)
    meta = full_metadata(content, fleet, version, issued_at, expires_at)
    return encode_bundle(meta, (), content, roots)


def build_delta(
    base: Bundle,
    target: Bundle,
    version: int | None = None,
    issued_at: int | None = None,
    roots: tuple[Root, ...] = (),
) -> bytes:
    """An unsigned delta taking ``base``'s full list to ``target``'s (both full bundles)."""
    if base.metadata.kind != "full" or target.metadata.kind != "full":
        raise WatchlistError("diff needs two full lists")
    old, new = parse_full(base.content), parse_full(target.content)
    old_entries = {e.plate: e for e in old.entries()}
    new_entries = {e.plate: e for e in new.entries()}
    removes = [p for p in old_entries if p not in new_entries]
    upserts = [e for p, e in new_entries.items() if old_entries.get(p) != e]
    content = encode_delta(removes, upserts)
    t = target.metadata
    meta = Metadata(
        fleet=t.fleet,
        version=t.version if version is None else version,
        issued_at=t.issued_at if issued_at is None else issued_at,
        expires_at=t.expires_at,
        kind="delta",
        base_version=base.metadata.version,
        content_sha256=sha256_hex(content),
        content_length=len(content),
        entry_count=t.entry_count,
        result_sha256=t.result_sha256,
        result_length=t.result_length,
    )
    return encode_bundle(meta, (), content, roots)


def sign_bundle(bundle: bytes, key: Ed25519PrivateKey) -> bytes:
    """``bundle`` with ``key``'s signature over its metadata added (replacing its older one)."""
    decoded = decode_bundle(bundle)
    signature = sign(key, decoded.metadata.signed_bytes())
    others = tuple(s for s in decoded.signatures if s.keyid != signature.keyid)
    return encode_bundle(decoded.metadata, (*others, signature), decoded.content, decoded.roots)
