"""HQ's evidence store: footage files in a directory, ledger entries in the HQ database.

Layout of an HQ root directory ``ROOT`` (``raqib verify --hq ROOT``)::

    ROOT/evidence/<device>/<segment file>     uploaded footage, as the device sealed it
    ROOT/hq/hq.sqlite (or ROOT/hq.sqlite)     the HQ database

Ledger entries reach HQ two ways, and both count: over MQTT as they are made
(the ingest stores them in ``device_messages`` with kind ``ledger``) and with
the footage at upload (``store_ledger_entry`` into the ``ledger`` table here).
An entry is self-authenticating (signed by the device key), so where it came
from does not matter to the auditor; ``UNIQUE(device_id, ledger_seq)`` makes
storing idempotent.

Receiving a segment is resumable and crash-safe: bytes go to
``NAME.partial`` (a restarted upload appends to what is there), are fsynced,
renamed, and the directory fsynced; the store then re-reads the stored file and
returns its SHA-256, which the device compares with its ledger before deleting
its own copy. Footage may instead go to an S3-compatible object store
(``s3_store.S3FootageStore``, same guarantees); the database stays the HQ database.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent.errors import StorageError
from agent.evidence.entry import MESSAGE_KIND, check_ledger_message
from agent.evidence.errors import LedgerEntryError
from agent.evidence.footage import Footage, FootageStore, LocalFootage
from agent.evidence.sealing import canonical_json
from agent.evidence.store import PARTIAL, fsync_dir, parse_segment_name, sha256_file
from agent.sqlite import make_durable
from hq.db import HqDatabase, device_messages

log = logging.getLogger(__name__)

_Id = BigInteger().with_variant(Integer(), "sqlite")
_BLOCK: Final = 1 << 20

metadata = MetaData()
ledger = Table(
    "ledger",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("ledger_seq", BigInteger, nullable=False),
    Column("message_seq", BigInteger, nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    UniqueConstraint("device_id", "ledger_seq", name="uq_ledger_device_seq"),
)


def ledger_engine(url: str) -> Engine:
    """An engine on the HQ database with the ``ledger`` table created (the caller disposes it)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if url.startswith("sqlite"):
        make_durable(engine, busy_timeout_ms=30000)
    try:
        metadata.create_all(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise StorageError(f"HQ database: cannot create the ledger table: {exc.orig}") from exc
    return engine


def store_ledger_entry(
    engine_or_db: Engine | HqDatabase | str, device_id: str, seq: int, body: dict[str, Any]
) -> bool:
    """Store one ledger entry of ``device_id``; ``seq`` is its message number (0 if uploaded).

    True if new, False if this device's entry with that ledger number is already
    held (a conflicting second body is logged and not stored: the first wins and
    the auditor sees the chain as it first arrived). Raises LedgerEntryError if
    the body is not a ledger entry of that device, StorageError if the database fails.
    """
    entry = check_ledger_message(device_id, body)
    row = {
        "device_id": device_id,
        "ledger_seq": entry.seq,
        "message_seq": seq,
        "entry_hash": entry.hash,
        "body": canonical_json(body).decode("utf-8"),
        "received_at": time.time(),
    }
    if isinstance(engine_or_db, Engine):
        return _store(engine_or_db, device_id, entry.seq, entry.hash, row)
    url = engine_or_db.url if isinstance(engine_or_db, HqDatabase) else engine_or_db
    engine = ledger_engine(url)
    try:
        return _store(engine, device_id, entry.seq, entry.hash, row)
    finally:
        engine.dispose()


def _store(engine: Engine, device_id: str, seq: int, entry_hash: str, row: dict[str, Any]) -> bool:
    try:
        with engine.begin() as conn:
            held = conn.execute(
                select(ledger.c.entry_hash).where(
                    ledger.c.device_id == device_id, ledger.c.ledger_seq == seq
                )
            ).first()
            if held is not None:
                if held.entry_hash != entry_hash:
                    log.error("ledger: %s entry %d arrived again, different", device_id, seq)
                return False
            conn.execute(insert(ledger).values(row))
    except IntegrityError:
        return False
    except DBAPIError as exc:
        raise StorageError(f"HQ ledger: cannot store {device_id}/{seq}: {exc.orig}") from exc
    return True


def _append_copy(source: Path, partial: Path) -> str:
    """Append to ``partial`` what it lacks of ``source``, fsync; the SHA-256 of ``partial``."""
    have = partial.stat().st_size if partial.exists() else 0
    with source.open("rb") as src, partial.open("ab") as dst:
        if have > source.stat().st_size:
            dst.truncate(0)
            have = 0
        src.seek(have)
        for block in iter(lambda: src.read(_BLOCK), b""):
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    return sha256_file(partial)


@dataclass(frozen=True, slots=True)
class HqLayout:
    """Where an HQ root keeps its footage and its database."""

    root: Path

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    @property
    def database_url(self) -> str:
        for candidate in (self.root / "hq" / "hq.sqlite", self.root / "hq.sqlite"):
            if candidate.exists():
                return f"sqlite:///{candidate}"
        return f"sqlite:///{self.root / 'hq' / 'hq.sqlite'}"


class DirFootageStore:
    """Footage in a directory: ``DIR/<device>/<segment file>`` (the default store)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def close(self) -> None:
        """Nothing to release."""

    def path_of(self, device_id: str, name: str) -> Path:
        claimed = parse_segment_name(name)
        if claimed is None or claimed[0] != device_id:
            raise LedgerEntryError(f"{name!r} is not a segment file name of {device_id}")
        return self.root / device_id / name

    def stored_hash(self, device_id: str, name: str) -> str | None:
        path = self.path_of(device_id, name)
        return sha256_file(path) if path.exists() else None

    def receive_segment(self, device_id: str, name: str, source: Path, expected: str) -> str:
        """Copy ``source`` in, resuming a ``.partial``; returns the SHA-256 of what HQ holds.

        The copy is committed (renamed, directory fsynced) only if its hash is
        ``expected`` (the device's ledger hash); a resumed copy that does not
        match is started again from the beginning once. If it still does not
        match, nothing is committed and the hash of the refused copy is returned.
        Raises StorageError if HQ's disk refuses.
        """
        final = self.path_of(device_id, name)
        partial = final.with_name(final.name + PARTIAL)
        try:
            final.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            got = _append_copy(source, partial)
            if got != expected and partial.stat().st_size:
                partial.unlink()
                got = _append_copy(source, partial)
            if got != expected:
                partial.unlink()
                return got
            partial.replace(final)
            fsync_dir(final.parent)
        except OSError as exc:
            raise StorageError(f"HQ evidence store: cannot store {name}: {exc.strerror}") from exc
        return sha256_file(final)

    def files(self, device_id: str | None = None) -> list[Path]:
        pattern = f"{device_id}/*" if device_id else "*/*"
        return sorted(p for p in self.root.glob(pattern) if not p.name.endswith(PARTIAL))

    def held(self, device_id: str | None = None) -> list[Footage]:
        return [LocalFootage(path) for path in self.files(device_id)]


class HqEvidenceStore:
    """The HQ side of upload and audit: a footage store plus ledger and device registry."""

    def __init__(self, footage: Path | FootageStore, database_url: str) -> None:
        self.footage: FootageStore = (
            DirFootageStore(footage) if isinstance(footage, Path) else footage
        )
        self.db = HqDatabase(database_url)
        self.engine = ledger_engine(database_url)

    @classmethod
    def at(cls, root: Path) -> HqEvidenceStore:
        layout = HqLayout(root)
        return cls(layout.evidence, layout.database_url)

    def close(self) -> None:
        self.engine.dispose()
        self.db.close()
        self.footage.close()

    def __enter__(self) -> HqEvidenceStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- footage ---------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        """The footage directory (a directory store only)."""
        if not isinstance(self.footage, DirFootageStore):
            raise TypeError(f"HQ footage is in {self.footage.location}, not a directory")
        return self.footage.root

    def stored_hash(self, device_id: str, name: str) -> str | None:
        return self.footage.stored_hash(device_id, name)

    def receive_segment(self, device_id: str, name: str, source: Path, expected: str) -> str:
        return self.footage.receive_segment(device_id, name, source, expected)

    def files(self, device_id: str | None = None) -> list[Path]:
        """Footage files of a directory store (an object store has none: see ``held``)."""
        if isinstance(self.footage, DirFootageStore):
            return self.footage.files(device_id)
        return []

    def held(self, device_id: str | None = None) -> list[Footage]:
        return self.footage.held(device_id)

    # -- ledger and registry -----------------------------------------------------------

    def device_keys(self) -> dict[str, Ed25519PublicKey | None]:
        return self.db.device_keys()

    def ledger_bodies(self, device_id: str) -> Iterator[dict[str, Any]]:
        """Every ledger body HQ holds for a device: uploaded ones, then those from MQTT."""
        with self._guard("read the ledger"), self.engine.connect() as conn:
            rows = conn.execute(select(ledger.c.body).where(ledger.c.device_id == device_id)).all()
            mqtt = conn.execute(
                select(device_messages.c.body).where(
                    device_messages.c.device_id == device_id,
                    device_messages.c.kind == MESSAGE_KIND,
                )
            ).all()
        for row in [*rows, *mqtt]:
            try:
                body = json.loads(row.body)
            except json.JSONDecodeError:
                log.error("HQ ledger: a stored entry of %s is not JSON", device_id)
                continue
            if isinstance(body, dict):
                yield body

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            raise StorageError(f"HQ database: cannot {operation}: {exc.orig}") from exc
