"""PostgreSQL for a fleet: hits and device messages partitioned by month, retention, indexes,
and a read-only role for the console's readers and the auditors.

``create_partitioned_schema`` runs before HQ first opens the database
(``raqib hq db-init``); ``HqDatabase`` then finds the tables and leaves them as
they are. The columns are those of :mod:`hq.db`, copied from its metadata, so
the two cannot drift apart.

Partitioning: ``RANGE (received_at)`` (epoch seconds, when HQ received the
message), one partition per calendar month (UTC), plus a ``DEFAULT`` partition
so an insert never fails for want of a partition. ``ensure_partitions`` creates
the coming months ahead of time; run it daily (a timer) or at ingest start.
Retention is dropping whole months (``drop_partitions_before``), which is
instant and leaves no bloat, unlike ``DELETE``. Hits and device messages (the
evidence ledger) have separate retention: the ledger must outlive any case
that might rely on its footage.

Exactly once with partitions: PostgreSQL enforces ``UNIQUE`` on a partitioned
table only if the constraint includes the partition key, which would no longer
make ``(device, epoch, seq)`` unique. It does not need to: ``store_batch`` locks
the device's row (``SELECT ... FOR UPDATE``) before it looks for the sequence
numbers it is about to store, so two workers never store one message twice; the
index on ``(device_id, epoch, seq)`` keeps that lookup fast in every partition.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from sqlalchemy import Column, MetaData, Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, CreateTable

from hq.db import device_messages, devices, hits

PARTITIONED: Final = ("hits", "device_messages")
_MONTH_RE: Final = re.compile(r"^(hits|device_messages)_(\d{4})_(\d{2})$")
READER_ROLE: Final = "raqib_reader"

INDEXES: Final = {
    "hits": [
        ("device_id", "epoch", "seq"),  # dedup, gap accounting
        ("device_id", "received_at"),  # a device's timeline (console, audit)
        ("plate", "received_at"),  # "every sighting of this plate"
        ("case_ref",),  # hits of one case
    ],
    "device_messages": [
        ("device_id", "epoch", "seq"),  # dedup, the auditor walks a device's chain in seq order
        ("kind", "received_at"),
    ],
}
"""Per partitioned table, the indexes the console and the auditors query by
(``received_at`` is indexed by the partition key's primary key already)."""


def _partitioned_table(source: Table, metadata: MetaData) -> Table:
    """``source``'s columns, primary key ``(id, received_at)``, no unique constraint."""
    columns: list[Column[object]] = []
    for column in source.columns:
        copy = column._copy()
        copy.primary_key = column.name in ("id", "received_at")
        if column.name == "id":
            copy.autoincrement = True
        columns.append(copy)
    return Table(source.name, metadata, *columns, postgresql_partition_by="RANGE (received_at)")


def _month_bounds(year: int, month: int) -> tuple[float, float]:
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
    return start.timestamp(), end.timestamp()


def create_partitioned_schema(conn: Connection, now: float, months_ahead: int = 3) -> None:
    """Create the partitioned tables, their indexes, default and monthly partitions, and
    the devices table; a table that exists already is left alone."""
    metadata = MetaData()
    for source in (hits, device_messages):
        exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": source.name}).scalar()
        if exists is not None:
            continue
        table = _partitioned_table(source, metadata)
        conn.execute(CreateTable(table))
        for columns in INDEXES[source.name]:
            name = f"ix_{source.name}_{'_'.join(columns)}"
            from sqlalchemy import Index

            conn.execute(CreateIndex(Index(name, *(table.c[c] for c in columns))))
        conn.execute(text(f"CREATE TABLE {source.name}_default PARTITION OF {source.name} DEFAULT"))
    devices.create(conn, checkfirst=True)
    ensure_partitions(conn, now, months_ahead)


def ensure_partitions(conn: Connection, now: float, months_ahead: int = 3) -> list[str]:
    """Monthly partitions from this month to ``months_ahead`` months on; returns those made."""
    made: list[str] = []
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    for offset in range(months_ahead + 1):
        index = today.month - 1 + offset
        year, month = today.year + index // 12, index % 12 + 1
        lower, upper = _month_bounds(year, month)
        for table in PARTITIONED:
            name = f"{table}_{year:04d}_{month:02d}"
            if conn.execute(text("SELECT to_regclass(:t)"), {"t": name}).scalar() is not None:
                continue
            conn.execute(
                text(
                    f"CREATE TABLE {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ({lower!r}) TO ({upper!r})"
                )
            )
            made.append(name)
    return made


def monthly_partitions(conn: Connection) -> list[str]:
    """The monthly partitions that exist, oldest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN ('hits', 'device_messages')"
        )
    ).scalars()
    return sorted((str(r) for r in rows if _MONTH_RE.match(str(r))), key=lambda n: n[-7:])


def drop_partitions_before(conn: Connection, table: str, cutoff: float) -> list[str]:
    """Drop ``table``'s months that end at or before ``cutoff`` (retention); returns them."""
    if table not in PARTITIONED:
        raise ValueError(f"{table!r} is not partitioned")
    dropped: list[str] = []
    for name in monthly_partitions(conn):
        found = _MONTH_RE.match(name)
        assert found is not None
        if found.group(1) != table:
            continue
        _lower, upper = _month_bounds(int(found.group(2)), int(found.group(3)))
        if upper <= cutoff:
            conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
            conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped


def create_reader_role(conn: Connection, login: str | None = None) -> None:
    """The ``raqib_reader`` role (SELECT on HQ's tables, now and later) and, if given, a
    login role that is a member of it; for the console's read views and the auditors."""
    exists = conn.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": READER_ROLE}
    ).first()
    if exists is None:
        conn.execute(text(f"CREATE ROLE {READER_ROLE} NOLOGIN"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {READER_ROLE}"))
    conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER_ROLE}"))
    conn.execute(
        text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER_ROLE}")
    )
    if login is not None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", login):
            raise ValueError(f"role name {login!r} is not a plain lower-case identifier")
        found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": login})
        if found.first() is None:
            conn.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE {READER_ROLE}"))
