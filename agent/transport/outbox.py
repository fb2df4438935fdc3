"""The durable outbox: every message for HQ waits here until HQ acknowledges it.

paho keeps unsent messages in memory only, so this SQLite file is the source of
truth for what HQ still has to receive. A message is deleted only when HQ's
application ack names its sequence number (``ack``), never because the broker
took it. Commits use WAL with ``synchronous=FULL`` so a power cut cannot lose a
commit that ``put`` has returned from.

Sequence numbers are per device, start at 1, and are never reused: the next one
lives in a counter row that only ever goes up, so deleting acked messages or
reopening the file cannot hand out a number HQ has already seen.

When the outbox holds ``max_messages``, ``put`` makes room by dropping the oldest
message of a strictly lower priority (a status report before a hit; the drop is
logged), and otherwise refuses with ``StorageError``: a hit is never silently
dropped to make room, the caller learns that it could not be kept.

All methods are thread-safe (one lock around one SQLite connection at a time):
the daemon puts from its pipeline thread while the uplink reads and acks from
its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from agent.errors import StorageError
from agent.sqlite import sqlite_engine

log = logging.getLogger(__name__)

PRIORITY_HIT: Final = 0
PRIORITY_LEDGER: Final = 1
PRIORITY_STATUS: Final = 2
"""Lower sends first; on a full outbox a higher number is dropped first."""

_CHUNK: Final = 500
"""Sequence numbers per ``IN (...)`` statement, well under SQLite's variable limit."""

_metadata = MetaData()
_messages = Table(
    "outbox_messages",
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_sent_at", Float, nullable=True),
    Index("ix_outbox_priority_seq", "priority", "seq"),
)
_counters = Table(
    "outbox_counters",
    _metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Integer, nullable=False),
)
_NEXT_SEQ: Final = "next_seq"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One stored message, ready to publish."""

    seq: int
    kind: str
    topic: str
    priority: int
    payload: bytes
    created_at: float
    last_sent_at: float | None


def create_private_file(path: Path) -> None:
    """Create the parent directory (0700) and an empty file (0600) if they do not exist.

    SQLite gives its -wal and -shm files the main file's permissions, so hits at
    rest are readable by the service user only.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)


def _chunks(seqs: Iterable[int]) -> Iterator[list[int]]:
    batch: list[int] = []
    for seq in seqs:
        batch.append(seq)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


class Outbox:
    """A durable, prioritised queue of messages for HQ, keyed by sequence number."""

    def __init__(
        self,
        path: Path,
        max_messages: int = 100_000,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (or create) the outbox file; raises StorageError if it cannot be opened."""
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self.path = path
        self.max_messages = max_messages
        self._clock = clock
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        try:
            create_private_file(path)
        except OSError as exc:
            raise StorageError(f"outbox {path}: cannot create: {exc.strerror or exc}") from exc
        self._engine = sqlite_engine(path)
        try:
            with self._guard("open"), self._engine.begin() as conn:
                self._depth = self._prepare(conn)
        except StorageError:
            self.close()
            raise

    @staticmethod
    def _prepare(conn: Connection) -> int:
        """Create the tables and the counter row if new; return how many messages wait."""
        _metadata.create_all(conn)
        counter = select(_counters.c.value).where(_counters.c.name == _NEXT_SEQ)
        if conn.execute(counter).first() is None:
            conn.execute(insert(_counters).values(name=_NEXT_SEQ, value=1))
        return int(conn.execute(select(func.count()).select_from(_messages)).scalar_one())

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            reason = exc.orig if exc.orig is not None else exc
            raise StorageError(f"outbox {self.path}: cannot {operation}: {reason}") from exc

    def _open_engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("outbox is closed")
        return self._engine

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Connection]:
        with self._lock, self._guard(operation), self._open_engine().begin() as conn:
            yield conn

    def put(
        self, kind: str, topic: str, make_payload: Callable[[int], bytes], priority: int
    ) -> int:
        """Store one message durably and return its sequence number.

        ``make_payload(seq)`` builds the wire bytes once the number is known (the
        envelope carries it). Raises StorageError if the disk refuses the write or
        the outbox is full of messages at least as important as this one; in that
        case nothing was stored and no sequence number was consumed.
        """
        dropped: tuple[int, str] | None = None
        with self._lock:
            with self._guard("store a message"), self._open_engine().begin() as conn:
                if self._depth >= self.max_messages:
                    dropped = self._make_room(conn, priority)
                seq = self._take_seq(conn)
                row = {
                    "seq": seq,
                    "kind": kind,
                    "topic": topic,
                    "priority": priority,
                    "payload": make_payload(seq),
                    "created_at": self._clock(),
                    "last_sent_at": None,
                }
                conn.execute(insert(_messages).values(row))
            # committed: only now does the in-memory count follow the file
            self._depth += 1 if dropped is None else 0
        if dropped is not None:
            log.warning(
                "outbox full: dropped %s message seq=%d to make room", dropped[1], dropped[0]
            )
        return seq

    def put_many(
        self, kind: str, topic: str, makers: Sequence[Callable[[int], bytes]], priority: int
    ) -> list[int]:
        """Store several messages in one transaction (one fsync); all or none are stored.

        For bulk producers (ledger backfill, benchmarks, tests). Refuses with
        StorageError, storing nothing, if they do not all fit under ``max_messages``.
        """
        if not makers:
            return []
        with self._lock:
            if self._depth + len(makers) > self.max_messages:
                raise StorageError(
                    f"outbox {self.path} is full: {self._depth} waiting, "
                    f"{len(makers)} more do not fit under {self.max_messages}"
                )
            with self._guard("store messages"), self._open_engine().begin() as conn:
                where = _counters.c.name == _NEXT_SEQ
                first = int(conn.execute(select(_counters.c.value).where(where)).scalar_one())
                seqs = list(range(first, first + len(makers)))
                now = self._clock()
                rows = [
                    {
                        "seq": seq,
                        "kind": kind,
                        "topic": topic,
                        "priority": priority,
                        "payload": make(seq),
                        "created_at": now,
                        "last_sent_at": None,
                    }
                    for seq, make in zip(seqs, makers, strict=True)
                ]
                conn.execute(insert(_messages), rows)
                conn.execute(update(_counters).where(where).values(value=first + len(makers)))
            self._depth += len(makers)
        return seqs

    @staticmethod
    def _take_seq(conn: Connection) -> int:
        where = _counters.c.name == _NEXT_SEQ
        seq = int(conn.execute(select(_counters.c.value).where(where)).scalar_one())
        conn.execute(update(_counters).where(where).values(value=seq + 1))
        return seq

    def _make_room(self, conn: Connection, priority: int) -> tuple[int, str]:
        victim = conn.execute(
            select(_messages.c.seq, _messages.c.kind)
            .where(_messages.c.priority > priority)
            .order_by(_messages.c.priority.desc(), _messages.c.seq)
            .limit(1)
        ).first()
        if victim is None:
            raise StorageError(
                f"outbox {self.path} is full ({self.max_messages} messages waiting for HQ) "
                f"and holds nothing less important to drop"
            )
        conn.execute(delete(_messages).where(_messages.c.seq == victim.seq))
        return int(victim.seq), str(victim.kind)

    def due(
        self, now: float, resend_after: float, limit: int, *, resends_only: bool = False
    ) -> list[OutboxItem]:
        """Messages to publish now: never sent, or sent ``resend_after`` seconds ago or more
        (only the latter with ``resends_only``).

        Most important first (priority), then oldest first (seq).
        """
        cutoff = now - resend_after
        overdue = _messages.c.last_sent_at <= cutoff
        query = (
            select(_messages)
            .where(overdue if resends_only else or_(_messages.c.last_sent_at.is_(None), overdue))
            .order_by(_messages.c.priority, _messages.c.seq)
            .limit(limit)
        )
        with self._transaction("read due messages") as conn:
            rows = conn.execute(query).all()
        return [
            OutboxItem(
                seq=row.seq,
                kind=row.kind,
                topic=row.topic,
                priority=row.priority,
                payload=bytes(row.payload),
                created_at=row.created_at,
                last_sent_at=row.last_sent_at,
            )
            for row in rows
        ]

    def mark_sent(self, seqs: Sequence[int], now: float) -> None:
        """Record that these messages were handed to the broker at ``now``."""
        if not seqs:
            return
        with self._transaction("mark messages sent") as conn:
            for batch in _chunks(seqs):
                conn.execute(
                    update(_messages).where(_messages.c.seq.in_(batch)).values(last_sent_at=now)
                )

    def reset_sent(self) -> int:
        """Make every unacknowledged message due again (the broker lost our session)."""
        with self._transaction("reset sent messages") as conn:
            result = conn.execute(
                update(_messages)
                .where(_messages.c.last_sent_at.is_not(None))
                .values(last_sent_at=None)
            )
        return int(result.rowcount)

    def ack(self, seqs: Sequence[int]) -> int:
        """Delete the messages HQ acknowledged; returns how many were still here."""
        if not seqs:
            return 0
        removed = 0
        with self._lock:
            with self._guard("delete acknowledged messages"), self._open_engine().begin() as conn:
                for batch in _chunks(seqs):
                    query = delete(_messages).where(_messages.c.seq.in_(batch))
                    removed += int(conn.execute(query).rowcount)
            self._depth -= removed
        return removed

    def depth(self) -> int:
        """How many messages wait for HQ's ack."""
        with self._lock:
            return self._depth

    @property
    def next_seq(self) -> int:
        """The sequence number the next ``put`` will assign."""
        with self._transaction("read the sequence counter") as conn:
            value = conn.execute(
                select(_counters.c.value).where(_counters.c.name == _NEXT_SEQ)
            ).scalar_one()
        return int(value)

    def close(self) -> None:
        """Close the file; safe to call twice. Later calls raise RuntimeError."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
