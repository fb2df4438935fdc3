"""The pure verification core: bytes, trusted root, current state and a time in; a verified
update out, or a precise :class:`~agent.watchlist.errors.WatchlistRefusedError`.

Order of checks (as in TUF's client workflow): size, framing, roots carried in
the bundle (each rotation signed by the old and the new root keys), signatures
and threshold under the newest trusted root, fleet, version (no rollback, no
replay), expiry, delta base, content hash and length, then the resulting full
list's hash, length and entry count. Nothing here reads a file or the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from agent.watchlist.content import (
    Change,
    EntryTable,
    apply_delta,
    parse_delta,
    parse_full,
)
from agent.watchlist.errors import (
    ExpiredError,
    HashMismatchError,
    MalformedError,
    ReplayError,
    RollbackError,
    WrongBaseError,
    WrongFleetError,
)
from agent.watchlist.format import (
    Bundle,
    Metadata,
    Root,
    Signature,
    check_threshold,
    decode_bundle,
    parse_json,
    sha256_hex,
)


@dataclass(frozen=True, eq=False)
class CurrentState:
    """What the device holds now: the list version, the full list, the applied header's hash."""

    version: int
    table: EntryTable
    header_sha256: str = ""


@dataclass(frozen=True, eq=False)
class VerifiedUpdate:
    """An update that passed every check; ``table`` is the full list after applying it."""

    metadata: Metadata
    signatures: tuple[Signature, ...]
    header: bytes
    root: Root
    """The newest trusted root (``new_roots[-1]`` if the bundle rotated it)."""
    new_roots: tuple[Root, ...]
    """Roots this bundle made trusted, oldest first; persist them with the list."""
    content: bytes
    table: EntryTable
    change: Change | None
    """For a delta: how rows moved, so the matcher follows without a rebuild."""

    @property
    def header_sha256(self) -> str:
        return sha256_hex(self.header)


def verify_root(new: Root, trusted: Root) -> Root:
    """``new`` if it is the next version, same fleet, signed by both old and new root keys.

    Raises RollbackError (not the next version), WrongFleetError, BadSignatureError,
    RevokedKeyError,
    UnknownKeyError, BelowThresholdError.
    """
    if new.version != trusted.version + 1:
        raise RollbackError(f"root version {new.version} does not follow trusted {trusted.version}")
    if new.fleet != trusted.fleet:
        raise WrongFleetError(f"root for fleet {new.fleet!r}, trusted root is {trusted.fleet!r}")
    signed = new.signed_bytes()
    what = f"root v{new.version}"
    for keys, threshold in (
        (trusted.root_keys, trusted.root_threshold),
        (new.root_keys, new.root_threshold),
    ):
        check_threshold(signed, new.signatures, keys, threshold, revoked=frozenset(), what=what)
    return new


def verify_root_chain(trusted: Root, roots: Iterable[Root]) -> tuple[Root, tuple[Root, ...]]:
    """The newest root reached from ``trusted`` through ``roots`` (older ones skipped)."""
    accepted: list[Root] = []
    for root in sorted(roots, key=lambda r: r.version):
        if root.version <= trusted.version:
            continue
        trusted = verify_root(root, trusted)
        accepted.append(trusted)
    return trusted, tuple(accepted)


def check_root_fresh(root: Root, now: float) -> None:
    """The newest trusted root must not have expired (TUF: older roots of a chain may have:
    they only vouch for the next one, so a device offline for a year still catches up)."""
    if root.expires_at is not None and root.expires_at <= now:
        raise ExpiredError(
            f"root v{root.version} expired at {root.expires_at} (now {int(now)}): "
            "the fleet admins must rotate to a new root"
        )


def check_metadata(metadata: Metadata, signatures: tuple[Signature, ...], root: Root) -> None:
    """Signatures reach the root's admin threshold and the fleet is the root's."""
    check_threshold(
        metadata.signed_bytes(),
        signatures,
        root.admin_keys,
        root.threshold,
        revoked=root.revoked,
        what=f"watchlist v{metadata.version}",
    )
    if metadata.fleet != root.fleet:
        raise WrongFleetError(
            f"list for fleet {metadata.fleet!r}, this device is in {root.fleet!r}"
        )


def check_result(metadata: Metadata, table: EntryTable, *, hashed: bool = False) -> None:
    """The full list has the signed result hash, length and entry count, else HashMismatchError.

    ``hashed``: the caller already checked these exact bytes against ``result_sha256``.
    """
    content = table.content
    if len(content) != metadata.result_length:
        raise HashMismatchError(
            f"list v{metadata.version} is {len(content)} bytes, signed {metadata.result_length}"
        )
    if not hashed and hashlib.sha256(content).hexdigest() != metadata.result_sha256:
        raise HashMismatchError(f"list v{metadata.version} does not have its signed SHA-256")
    if len(table) != metadata.entry_count:
        raise HashMismatchError(
            f"list v{metadata.version} has {len(table)} entries, signed {metadata.entry_count}"
        )


def _check_freshness(
    bundle: Bundle, current: CurrentState | None, now: float, header_sha256: str
) -> None:
    meta = bundle.metadata
    if current is not None and meta.version < current.version:
        raise RollbackError(f"version {meta.version} is older than the current {current.version}")
    if current is not None and meta.version == current.version:
        identical = header_sha256 == current.header_sha256
        raise ReplayError(
            f"version {meta.version} is the current version"
            + (" (same bundle again)" if identical else " (a different bundle: replay)"),
            identical=identical,
        )
    if meta.expires_at <= now:
        raise ExpiredError(f"list v{meta.version} expired at {meta.expires_at} (now {int(now)})")
    if meta.kind == "delta":
        held = "no list" if current is None else f"v{current.version}"
        if current is None or meta.base_version != current.version:
            raise WrongBaseError(
                f"delta v{meta.version} is against v{meta.base_version}; device has {held}"
            )


def _apply(bundle: Bundle, current: CurrentState | None) -> tuple[EntryTable, Change | None]:
    meta = bundle.metadata
    if hashlib.sha256(bundle.content).hexdigest() != meta.content_sha256:
        raise HashMismatchError(f"content of v{meta.version} does not have its signed SHA-256")
    if meta.kind == "full":
        return parse_full(bundle.content), None
    if current is None:  # checked in _check_freshness; kept for the type checker
        raise WrongBaseError("a delta needs a current list")
    return apply_delta(current.table, parse_delta(bundle.content))


def verify_update(
    bundle: bytes, trusted_root: Root, current: CurrentState | None, now: float
) -> VerifiedUpdate:
    """Verify a wire bundle against the trusted root and the current list at time ``now``.

    Raises (all WatchlistRefusedError): OversizedError, TruncatedError, MalformedError,
    BadSignatureError, UnknownKeyError, RevokedKeyError, BelowThresholdError, WrongFleetError,
    RollbackError, ReplayError,
    ExpiredError, WrongBaseError, HashMismatchError.
    """
    decoded = decode_bundle(bundle)
    root, new_roots = verify_root_chain(trusted_root, decoded.roots)
    check_root_fresh(root, now)
    check_metadata(decoded.metadata, decoded.signatures, root)
    header_sha256 = sha256_hex(decoded.header)
    _check_freshness(decoded, current, now, header_sha256)
    table, change = _apply(decoded, current)
    check_result(decoded.metadata, table, hashed=change is None)
    return VerifiedUpdate(
        metadata=decoded.metadata,
        signatures=decoded.signatures,
        header=decoded.header,
        root=root,
        new_roots=new_roots,
        content=decoded.content,
        table=table,
        change=change,
    )


def verify_stored(header: bytes, content: bytes, root: Root) -> tuple[Metadata, EntryTable]:
    """Re-verify a list at rest: signatures under ``root``, full content hash, parse.

    Expiry is not checked here: a device keeps an expired list and reports it stale.
    Raises WatchlistRefusedError subclasses.
    """
    obj = parse_json(header, "stored header")
    if set(obj) != {"signed", "signatures", "roots"}:
        raise MalformedError("stored header has unexpected keys")
    decoded = decode_header_obj(obj)
    metadata, signatures = decoded
    check_metadata(metadata, signatures, root)
    if len(content) != metadata.result_length or sha256_hex(content) != metadata.result_sha256:
        raise HashMismatchError(f"stored list v{metadata.version} does not have its signed SHA-256")
    table = parse_full(content)
    check_result(metadata, table, hashed=True)
    return metadata, table


def decode_header_obj(obj: dict[str, object]) -> tuple[Metadata, tuple[Signature, ...]]:
    """Metadata and signatures of a parsed header object; raises MalformedError."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, list):
        raise MalformedError("signatures is not a list")
    return Metadata.from_dict(obj.get("signed")), tuple(
        Signature.from_dict(s, f"signatures[{i}]") for i, s in enumerate(signatures)
    )
