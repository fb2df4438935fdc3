"""HQ's database of hits and devices, through SQLAlchemy Core.

Strings that come from a device are ``Text`` so that no length limit of one
backend turns a valid message into a storage error that would be retried forever.
Portable types only (SQLite for the demo and tests, PostgreSQL in production):
``BigInteger`` ids (plain ``INTEGER`` on SQLite so the row id autoincrements),
``Float`` epoch seconds, ``LargeBinary`` crops. ``UNIQUE(device_id, seq)`` is what
makes storing idempotent: a message resent by a device is recognised and not
stored twice, whichever worker receives it.

Gap accounting per device: ``last_seq`` is the highest sequence number seen and
``gaps`` the number of sequence numbers between the first and the highest that
have not arrived (yet). A message that arrives late (a resend overtaken by newer
ones) fills its hole and lowers ``gaps`` again. Sequence numbers are shared by
all kinds a device sends, so until HQ ingests every kind, a status or ledger
message between two hits counts as a hole here.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from agent.errors import StorageError
from agent.messages import HitRecord

log = logging.getLogger(__name__)

_Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()
hits = Table(
    "hits",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("plate", Text, nullable=False),
    Column("format", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("n_reads", Integer, nullable=False),
    Column("match", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("case_ref", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("entry_plate", Text, nullable=False),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("crop_jpeg", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    UniqueConstraint("device_id", "seq", name="uq_hits_device_seq"),
    Index("ix_hits_received_at", "received_at"),
)
devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("gaps", Integer, nullable=False, default=0),
)


_READ_ONLY = "raqib_read_only"


def _enable_sqlite_durability(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writes take the write lock at the start (IMMEDIATE), so two workers
        # never deadlock upgrading a read transaction to a write.
        reading = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


class HqDatabase:
    """Hits and devices as HQ stores them; database failures raise StorageError."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            try:
                Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"HQ database {self.url}: cannot create its directory: {exc}"
                ) from exc
        self._sqlite = parsed.get_backend_name() == "sqlite"
        in_memory = self._sqlite and parsed.database in (None, "", ":memory:")
        if in_memory:
            # one shared connection, or each thread would see its own empty database
            self._engine = create_engine(
                parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            self._engine = create_engine(parsed)
        if self._sqlite:
            _enable_sqlite_durability(self._engine)
        # SQLite takes one writer at a time anyway; the lock also keeps threads
        # from interleaving transactions on the shared in-memory connection.
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if self._sqlite else contextlib.nullcontext()
        )
        try:
            with self._write("create tables") as conn:
                metadata.create_all(conn)
        except StorageError:
            self._engine.dispose()
            raise

    @contextmanager
    def _write(self, operation: str) -> Iterator[Connection]:
        with self._lock, self._guard(operation), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        with self._lock, self._guard(operation), self._engine.connect() as conn:
            yield conn.execution_options(**{_READ_ONLY: True})

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise  # a constraint said no: the caller decides what that means
        except DBAPIError as exc:
            reason = exc.orig if exc.orig is not None else exc
            raise StorageError(f"HQ database {self.url}: cannot {operation}: {reason}") from exc

    def store_hit(self, device_id: str, seq: int, record: HitRecord, received_at: float) -> bool:
        """Store one hit; False if ``(device_id, seq)`` is already stored (nothing changes then).

        Raises StorageError if the database refuses the write.
        """
        for _attempt in range(2):
            try:
                with self._write("store a hit") as conn:
                    conn.execute(insert(hits).values(_hit_row(device_id, seq, record, received_at)))
                    self._note_device(conn, device_id, seq, received_at)
            except IntegrityError:
                # Either this hit is a resend, or another worker created the
                # device row first; look, and retry once in the second case.
                if self._hit_exists(device_id, seq):
                    return False
                continue
            return True
        raise StorageError(f"HQ database {self.url}: cannot store hit {device_id}/{seq}: conflict")

    def _hit_exists(self, device_id: str, seq: int) -> bool:
        query = select(hits.c.id).where(hits.c.device_id == device_id, hits.c.seq == seq)
        with self._read("look up a hit") as conn:
            return conn.execute(query).first() is not None

    @staticmethod
    def _note_device(conn: Connection, device_id: str, seq: int, now: float) -> None:
        row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
        if row is None:
            conn.execute(
                insert(devices).values(
                    device_id=device_id,
                    first_seen=now,
                    last_seen=now,
                    first_seq=seq,
                    last_seq=seq,
                    gaps=0,
                )
            )
            return
        values: dict[str, Any] = {"last_seen": now}
        if seq > row.last_seq:
            values["last_seq"] = seq
            values["gaps"] = row.gaps + (seq - row.last_seq - 1)
        elif seq > row.first_seq:
            values["gaps"] = max(row.gaps - 1, 0)  # a late message fills its hole
        else:
            values["first_seq"] = seq
            values["gaps"] = row.gaps + (row.first_seq - seq - 1)
        if values.get("gaps", row.gaps) > row.gaps:
            log.warning(
                "device %s: sequence jumped to %d, %d message(s) missing",
                device_id,
                seq,
                values["gaps"],
            )
        conn.execute(update(devices).where(devices.c.device_id == device_id).values(values))

    def count_hits(self, device_id: str | None = None) -> int:
        query = select(func.count()).select_from(hits)
        if device_id is not None:
            query = query.where(hits.c.device_id == device_id)
        with self._read("count hits") as conn:
            return int(conn.execute(query).scalar_one())

    def list_hits(self, device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest hits first, each as a dict of the ``hits`` columns."""
        query = select(hits).order_by(hits.c.id.desc()).limit(limit)
        if device_id is not None:
            query = query.where(hits.c.device_id == device_id)
        with self._read("list hits") as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def list_devices(self) -> list[dict[str, Any]]:
        """Every device that sent something, by id."""
        with self._read("list devices") as conn:
            rows = conn.execute(select(devices).order_by(devices.c.device_id))
            return [dict(row._mapping) for row in rows]

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> HqDatabase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _hit_row(device_id: str, seq: int, record: HitRecord, received_at: float) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "seq": seq,
        "plate": record.plate,
        "format": record.format,
        "confidence": record.confidence,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
        "n_reads": record.n_reads,
        "match": record.match,
        "reason": record.reason,
        "case_ref": record.case_ref,
        "priority": record.priority,
        "entry_plate": record.entry_plate,
        "lat": record.lat,
        "lon": record.lon,
        "crop_jpeg": record.crop_jpeg,
        "received_at": received_at,
    }
