"""The watchlist cached on the device: SQLite (WAL, ``synchronous=FULL``) through SQLAlchemy Core.

What is stored is what was signed, so the cache at rest verifies itself:

- ``wl_roots``: root documents newer than the provisioned anchor, each verified
  again on load as a chain from the anchor;
- ``wl_lists``: one *base* row (a bundle header whose ``result_sha256`` is the
  hash of the stored full content) then zero or more *delta* rows (bundle
  header + delta content), applied in order on load. A full update replaces
  every row; a delta adds one row (a few kilobytes, not the whole list), and
  :meth:`WatchlistCache.compact` folds the deltas into a new base;
- ``wl_state``: the last refusal (informative only; nothing trusts it).

Each update is one transaction. :meth:`WatchlistCache.load` re-verifies every
signature, hash and delta base and raises :class:`CacheTamperedError` if anything
was edited on disk.

An *encrypted* cache (every device: ``encrypted=True``) seals each list row's
header and content with the device's cache key (:mod:`agent.watchlist.atrest`);
until :meth:`WatchlistCache.unlock` gives it that key, :meth:`load` and
:meth:`apply` raise :class:`CacheLockedError`. Roots name no plate and stay clear.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    cast,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StorageError
from agent.sqlite import sqlite_engine
from agent.transport.outbox import create_private_file
from agent.watchlist.atrest import BLOB_MAGIC, CacheCipher, CacheLockedError
from agent.watchlist.content import EntryTable, apply_delta, parse_delta
from agent.watchlist.errors import (
    CacheTamperedError,
    MalformedError,
    WatchlistRefusedError,
    WrongBaseError,
)
from agent.watchlist.format import Metadata, Root, parse_json, sha256_hex
from agent.watchlist.verify import (
    VerifiedUpdate,
    check_metadata,
    check_result,
    decode_header_obj,
    verify_root_chain,
    verify_stored,
)

log = logging.getLogger(__name__)

MAX_DELTA_ROWS: Final = 32
"""Past this many stored deltas an apply compacts them into a new base (bounded load time)."""

_md = MetaData()
roots_table = Table(
    "wl_roots",
    _md,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("doc", LargeBinary, nullable=False),
)
lists_table = Table(
    "wl_lists",
    _md,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("version", Integer, nullable=False),
    Column("header", LargeBinary, nullable=False),
    Column("content", LargeBinary, nullable=False),
)
state_table = Table(
    "wl_state",
    _md,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_refusal", String, nullable=True),
    Column("last_refusal_detail", String, nullable=True),
    Column("last_refusal_at", Float, nullable=True),
    Column("applied_at", Float, nullable=True),
)


@dataclass(frozen=True, eq=False)
class CachedList:
    """A verified list as the device holds it."""

    metadata: Metadata
    table: EntryTable
    header_sha256: str
    header: bytes = field(default=b"", repr=False)
    """The signed header of the newest row (what a rewrite stores with the full content)."""


class WatchlistCache:
    """The device's list store; one instance per file, used from one thread at a time."""

    def __init__(self, path: Path, anchor: Root, *, encrypted: bool = False) -> None:
        """Open (and create) the cache; ``anchor`` is the provisioned root. Raises StorageError.

        ``encrypted``: list rows are sealed with the key given to :meth:`unlock`.
        """
        self._path = path
        self._anchor = anchor
        self._root = anchor
        self._current: CachedList | None = None
        self._deltas = 0
        self._encrypted = encrypted
        self._cipher: CacheCipher | None = None
        try:
            create_private_file(path)
            self._engine = sqlite_engine(path)
            event.listen(self._engine, "connect", _secure_delete)
            _md.create_all(self._engine)
        except (OSError, SQLAlchemyError) as exc:
            raise StorageError(f"cannot open watchlist cache {path}: {exc}") from exc

    @property
    def encrypted(self) -> bool:
        return self._encrypted

    @property
    def locked(self) -> bool:
        """True while an encrypted cache has no key: nothing can be read or stored."""
        return self._encrypted and self._cipher is None

    def unlock(self, cipher: CacheCipher) -> None:
        """Give the cache its key (held in memory only); call :meth:`load` next."""
        self._cipher = cipher

    def _seal(self, purpose: str, data: bytes) -> bytes:
        if not self._encrypted:
            return data
        if self._cipher is None:
            raise CacheLockedError("the watchlist cache is locked: no key from HQ yet")
        return self._cipher.seal(purpose, data)

    def _open(self, purpose: str, blob: bytes) -> bytes:
        if not self._encrypted:
            return blob
        if self._cipher is None:
            raise CacheLockedError("the watchlist cache is locked: no key from HQ yet")
        return self._cipher.open(purpose, blob)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> WatchlistCache:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def root(self) -> Root:
        """The newest trusted root (the anchor until a rotation was applied)."""
        return self._root

    @property
    def current(self) -> CachedList | None:
        return self._current

    # -- load -------------------------------------------------------------------

    def load(self) -> CachedList | None:
        """Verify and return the stored list (None if empty).

        Raises CacheTamperedError, StorageError.

        Every root, signature, hash and delta base is checked again, so a cache
        edited on disk is refused. Expiry is not a reason to refuse: see :meth:`status`.
        """
        if self.locked:
            raise CacheLockedError("the watchlist cache is locked: no key from HQ yet")
        try:
            with self._engine.connect() as conn:
                roots = conn.execute(select(roots_table.c.doc)).scalars().all()
                c = lists_table.c
                # read as blobs whatever is stored, and tell a value made text apart
                rows = conn.execute(
                    select(
                        c.kind,
                        c.version,
                        cast(c.header, LargeBinary),
                        cast(c.content, LargeBinary),
                        func.typeof(c.header) == "blob",
                        func.typeof(c.content) == "blob",
                    ).order_by(c.seq)
                ).all()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read watchlist cache {self._path}: {exc}") from exc
        if self._encrypted and rows and _is_clear(rows[0][2]):
            rows = self._drop_clear_rows(rows)
        try:
            if not all(isinstance(v, bytes) for v in roots) or not all(r[4] and r[5] for r in rows):
                raise MalformedError("a stored document is not a blob")
            root, _new = verify_root_chain(self._anchor, [Root.from_bytes(r) for r in roots])
            opened = [
                (
                    kind,
                    self._open(f"{kind}:{version}:header", header),
                    self._open(f"{kind}:{version}:content", content),
                )
                for kind, version, header, content, _h, _c in rows
            ]
            loaded = _replay(root, opened)
        except WatchlistRefusedError as exc:
            raise CacheTamperedError(
                f"watchlist cache {self._path} does not verify: {exc}"
            ) from exc
        self._root = root
        self._current = loaded
        self._deltas = max(0, len(rows) - 1)
        return loaded

    def _drop_clear_rows(self, rows: Sequence[Any]) -> list[Any]:
        """A list stored in clear before encryption was turned on: erase it (secure_delete)."""
        log.warning("watchlist cache held a clear list from before encryption: erased")
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(lists_table))
            with self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot erase the clear watchlist cache: {exc}") from exc
        return []

    # -- apply ------------------------------------------------------------------

    def apply(self, update: VerifiedUpdate, now: float) -> CachedList:
        """Store a verified update in one transaction; raises StorageError (nothing changed)."""
        meta = update.metadata
        compact = meta.kind == "delta" and self._deltas + 1 > MAX_DELTA_ROWS
        if self.locked:
            raise CacheLockedError("the watchlist cache is locked: no key from HQ yet")
        try:
            with self._engine.begin() as conn:
                for root in update.new_roots:
                    conn.execute(
                        insert(roots_table).values(version=root.version, doc=root.to_bytes())
                    )
                if meta.kind == "full" or compact:
                    conn.execute(delete(lists_table))
                    content = update.table.content
                    kind = "base"
                else:
                    content = update.content
                    kind = "delta"
                conn.execute(
                    insert(lists_table).values(
                        kind=kind,
                        version=meta.version,
                        header=self._seal(f"{kind}:{meta.version}:header", update.header),
                        content=self._seal(f"{kind}:{meta.version}:content", content),
                    )
                )
                self._write_state(conn, applied_at=now)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot store watchlist v{meta.version}: {exc}") from exc
        self._root = update.root
        self._deltas = self._deltas + 1 if kind == "delta" else 0
        self._current = CachedList(meta, update.table, update.header_sha256, update.header)
        return self._current

    def compact(self) -> None:
        """Fold stored deltas into one base row (the current full list); raises StorageError."""
        current = self._current
        if current is None or self._deltas == 0:
            return
        version = current.metadata.version
        try:
            with self._engine.begin() as conn:
                last = conn.execute(
                    select(lists_table.c.kind, lists_table.c.header)
                    .order_by(lists_table.c.seq.desc())
                    .limit(1)
                ).one()
                header = self._open(f"{last.kind}:{version}:header", last.header)
                conn.execute(delete(lists_table))
                conn.execute(
                    insert(lists_table).values(
                        kind="base",
                        version=version,
                        header=self._seal(f"base:{version}:header", header),
                        content=self._seal(f"base:{version}:content", current.table.content),
                    )
                )
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot compact watchlist cache: {exc}") from exc
        self._deltas = 0

    def rekey(self, cipher: CacheCipher) -> None:
        """Store the list held in memory again under a new key (HQ replaced the device's key).

        One transaction: every row is replaced by one base row sealed with ``cipher``.
        Raises StorageError.
        """
        current = self._current
        self._cipher = cipher
        if current is None:
            return
        version = current.metadata.version
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(lists_table))
                conn.execute(
                    insert(lists_table).values(
                        kind="base",
                        version=version,
                        header=self._seal(f"base:{version}:header", current.header),
                        content=self._seal(f"base:{version}:content", current.table.content),
                    )
                )
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot store the watchlist under its new key: {exc}") from exc
        self._deltas = 0

    # -- state ------------------------------------------------------------------

    def record_refusal(self, reason: str, detail: str, now: float) -> None:
        """Remember the last refused update (shown by :meth:`status`); raises StorageError."""
        try:
            with self._engine.begin() as conn:
                self._write_state(
                    conn, last_refusal=reason, last_refusal_detail=detail, last_refusal_at=now
                )
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot record watchlist refusal: {exc}") from exc

    def _write_state(self, conn: Connection, **values: Any) -> None:
        exists = conn.execute(select(func.count()).select_from(state_table)).scalar_one()
        if exists:
            conn.execute(state_table.update().where(state_table.c.id == 1).values(**values))
        else:
            conn.execute(insert(state_table).values(id=1, **values))

    def status(self, now: float) -> dict[str, Any]:
        """Version, entries, expiry, staleness and the last refusal, for the device's status."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(select(state_table).where(state_table.c.id == 1)).first()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read watchlist cache state: {exc}") from exc
        current = self._current
        meta = current.metadata if current else None
        return {
            "version": meta.version if meta else None,
            "entries": len(current.table) if current else 0,
            "issued_at": meta.issued_at if meta else None,
            "expires_at": meta.expires_at if meta else None,
            "stale": meta is None or meta.expires_at <= now,
            "root_version": self._root.version,
            "root_expires_at": self._root.expires_at,
            "root_expired": self._root.expires_at is not None and self._root.expires_at <= now,
            "last_refusal": row.last_refusal if row else None,
            "last_refusal_detail": row.last_refusal_detail if row else None,
            "last_refusal_at": row.last_refusal_at if row else None,
        }


def _is_clear(blob: object) -> bool:
    return isinstance(blob, bytes) and not blob.startswith(BLOB_MAGIC)


def _secure_delete(dbapi_conn: Any, _record: Any) -> None:
    """Deleted rows are overwritten with zeros, so a replaced list leaves nothing behind."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA secure_delete=ON")
    finally:
        cursor.close()


def _replay(root: Root, rows: Sequence[tuple[str, bytes, bytes]]) -> CachedList | None:
    """Verify the base row then apply each stored delta; raises WatchlistRefusedError."""
    if not rows:
        return None
    kind, header, content = rows[0]
    if kind != "base":
        raise MalformedError("the first stored list is not a base")
    metadata, table = verify_stored(header, content, root)
    for kind, header, content in rows[1:]:
        if kind != "delta":
            raise MalformedError("a stored list after the base is not a delta")
        delta_meta, signatures = decode_header_obj(parse_json(header, "stored delta header"))
        check_metadata(delta_meta, signatures, root)
        if delta_meta.kind != "delta" or delta_meta.base_version != metadata.version:
            raise WrongBaseError(
                f"stored delta v{delta_meta.version} does not follow v{metadata.version}"
            )
        if sha256_hex(content) != delta_meta.content_sha256:
            raise MalformedError(
                f"stored delta v{delta_meta.version} content does not match its hash"
            )
        table, _change = apply_delta(table, parse_delta(content))
        check_result(delta_meta, table)
        metadata = delta_meta
    return CachedList(metadata, table, sha256_hex(header), header)
