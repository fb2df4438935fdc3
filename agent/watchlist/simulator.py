"""An admin-side simulator: keys, roots and signed bundles in memory, for tests and the bench.

It drives the same functions the CLI uses (:mod:`agent.watchlist.admin`) and
records every bundle it produced, as python-tuf's repository simulator does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.watchlist.admin import make_root, sign_bundle, sign_root
from agent.watchlist.content import (
    EntryTable,
    ListEntry,
    apply_delta,
    encode_delta,
    encode_entries,
    parse_delta,
    parse_full,
)
from agent.watchlist.format import (
    Metadata,
    PublicKey,
    Root,
    Signature,
    encode_bundle,
    sha256_hex,
)
from agent.watchlist.sealed import seal_bundle, sign_sealed

DAY = 86_400


@dataclass
class AdminSimulator:
    """A fleet's admins: ``n_admins`` keys, a ``threshold``, one root key; signs what it builds."""

    fleet: str = "fleet-test"
    n_admins: int = 2
    threshold: int = 1
    now: int = 1_800_000_000
    root_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    admins: list[Ed25519PrivateKey] = field(default_factory=list)
    roots: list[Root] = field(default_factory=list)
    published: list[bytes] = field(default_factory=list)
    root_lifetime: int = 365 * DAY

    def __post_init__(self) -> None:
        if not self.admins:
            self.admins = [Ed25519PrivateKey.generate() for _ in range(self.n_admins)]
        root = make_root(
            self.fleet,
            [PublicKey.of(self.root_key)],
            [PublicKey.of(k) for k in self.admins],
            self.threshold,
            issued_at=self.now,
            expires_at=self.now + self.root_lifetime,
        )
        self.roots.append(sign_root(root, self.root_key))

    @property
    def root(self) -> Root:
        return self.roots[-1]

    def rotate(
        self, admins: Sequence[Ed25519PrivateKey], threshold: int, new_root_key: bool = False
    ) -> Root:
        """A new root with these admin keys (dropped ones revoked), signed by old and new root."""
        old_key = self.root_key
        if new_root_key:
            self.root_key = Ed25519PrivateKey.generate()
        root = make_root(
            self.fleet,
            [PublicKey.of(self.root_key)],
            [PublicKey.of(k) for k in admins],
            threshold,
            issued_at=self.now,
            previous=self.root,
            expires_at=self.now + self.root_lifetime,
        )
        root = sign_root(sign_root(root, old_key), self.root_key)
        self.admins, self.threshold = list(admins), threshold
        self.roots.append(root)
        return root

    def full(
        self,
        entries: Iterable[ListEntry],
        version: int,
        *,
        expires_in: int = 30 * DAY,
        signers: Sequence[Ed25519PrivateKey] | None = None,
        roots: tuple[Root, ...] = (),
    ) -> bytes:
        content = encode_entries(entries)
        digest = sha256_hex(content)
        meta = Metadata(
            self.fleet,
            version,
            self.now,
            self.now + expires_in,
            "full",
            None,
            digest,
            len(content),
            len(parse_full(content)),
            digest,
            len(content),
        )
        return self._signed(meta, content, signers, roots)

    def delta(
        self,
        base: Iterable[ListEntry],
        removes: Iterable[str],
        upserts: Iterable[ListEntry],
        version: int,
        base_version: int,
        *,
        expires_in: int = 30 * DAY,
        signers: Sequence[Ed25519PrivateKey] | None = None,
    ) -> bytes:
        removes, upserts = list(removes), list(upserts)
        result = {e.plate: e for e in base}
        for plate in removes:
            del result[plate]
        result.update({e.plate: e for e in upserts})
        full = encode_entries(result.values())
        content = encode_delta(removes, upserts)
        meta = Metadata(
            self.fleet,
            version,
            self.now,
            self.now + expires_in,
            "delta",
            base_version,
            sha256_hex(content),
            len(content),
            len(result),
            sha256_hex(full),
            len(full),
        )
        return self._signed(meta, content, signers, ())

    def delta_on(
        self,
        base: EntryTable,
        removes: Iterable[str],
        upserts: Iterable[ListEntry],
        version: int,
        base_version: int,
        *,
        expires_in: int = 30 * DAY,
    ) -> bytes:
        """Like :meth:`delta`, computing the result from an entry table (fast for big lists)."""
        content = encode_delta(removes, upserts)
        result, _change = apply_delta(base, parse_delta(content))
        meta = Metadata(
            self.fleet,
            version,
            self.now,
            self.now + expires_in,
            "delta",
            base_version,
            sha256_hex(content),
            len(content),
            len(result),
            sha256_hex(result.content),
            len(result.content),
        )
        return self._signed(meta, content, None, ())

    def seal(
        self,
        inner: bytes,
        recipients: Iterable[X25519PublicKey],
        *,
        signers: Sequence[Ed25519PrivateKey] | None = None,
    ) -> bytes:
        """``inner`` sealed for ``recipients``, the release signed by the threshold of admins."""
        bundle = seal_bundle(inner, recipients)
        for key in self.admins[: self.threshold] if signers is None else signers:
            bundle = sign_sealed(bundle, key)
        self.published.append(bundle)
        return bundle

    def _signed(
        self,
        meta: Metadata,
        content: bytes,
        signers: Sequence[Ed25519PrivateKey] | None,
        roots: tuple[Root, ...],
    ) -> bytes:
        bundle = encode_bundle(meta, tuple[Signature, ...](), content, roots)
        for key in self.admins[: self.threshold] if signers is None else signers:
            bundle = sign_bundle(bundle, key)
        self.published.append(bundle)
        return bundle
