"""SQLite engines that keep what they commit: WAL, ``synchronous=FULL``, explicit transactions.

WAL with the default ``synchronous=NORMAL`` can lose the last commits at a
power cut; the outbox, the watchlist cache and HQ's database must not. pysqlite's
own transaction handling is switched off and ``BEGIN`` is emitted by SQLAlchemy's
``begin`` event, so every ``engine.begin()`` block is one real SQLite
transaction, reads included (SQLAlchemy's documented recipe).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Final

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

READ_ONLY_OPTION: Final = "raqib_read_only"
"""Execution option marking a transaction that only reads (plain ``BEGIN``)."""


def make_durable(
    engine: Engine, busy_timeout_ms: int = 5000, immediate_writes: bool = False
) -> Engine:
    """Configure a SQLite engine in place; returns it.

    ``immediate_writes`` takes the write lock at the start of every transaction
    not marked ``READ_ONLY_OPTION`` (BEGIN IMMEDIATE), so two processes writing
    one file never deadlock upgrading a read lock.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        reading = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate_writes and not reading else "BEGIN")

    return engine


def sqlite_engine(path: Path, busy_timeout_ms: int = 5000) -> Engine:
    """A durable engine on a SQLite file."""
    return make_durable(create_engine(f"sqlite:///{path}"), busy_timeout_ms)
