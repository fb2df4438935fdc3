"""HQ's database: the device registry, hits, other device messages and status, via SQLAlchemy Core.

Strings that come from a device are ``Text`` so that no length limit of one
backend turns a valid message into a storage error that would be retried forever.
Portable types only (SQLite for the demo and tests, PostgreSQL in production):
``BigInteger`` ids (plain ``INTEGER`` on SQLite so the row id autoincrements),
``Float`` epoch seconds, ``LargeBinary`` crops.

Exactly once: ``UNIQUE(device_id, epoch, seq)`` on ``hits`` and on
``device_messages`` (ledger entries and any later outbox kind) makes storing
idempotent, and ``store_batch`` writes a whole batch in one transaction: it locks
the batch's device rows (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite takes its
write lock at ``BEGIN IMMEDIATE``), so two workers never store the same message.

Epochs: a re-provisioned device (state wiped, a new signing key made on first
start, enrolled again) starts its sequence at 1 again. Enrolling a *different*
key for a known device id opens a new epoch (``devices.epoch`` + 1) and resets its
gap accounting, so its new messages are not taken for duplicates of the old
incarnation's. The epoch of a message is the epoch of the key that verified its
signature, so nothing on the wire changes. A message of a superseded epoch that
arrives late (verified with the old key from a worker's cached registry) is
stored for the record but not acknowledged: its sender no longer exists, and an
ack naming its sequence numbers would make the new incarnation delete messages
HQ never stored.

Gap accounting: sequence numbers start at 1 and are shared by every kind a
device queues in its outbox (hits, ledger entries), and HQ stores every such
kind, so ``gaps = last_seq - received`` is exactly the number of sequence
numbers below the highest seen that HQ does not hold (yet): a late resend lowers
it again. Status heartbeats are not queued and carry ``seq`` 0, so they never
count as gaps.

Dispositions (an officer's verdict from the device, an operator's from the
console) and remote commands with the device's reply have their own tables;
what a device sent is also kept in ``device_messages`` as the audit trail.
Columns added after a release are added to an existing database at open
(``_add_missing_columns``), so an older HQ database keeps working.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
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
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from agent.errors import ConfigError, StorageError
from agent.messages import (
    COMMAND_REPLY_KIND,
    DISPOSITION_KIND,
    HIT_KIND,
    HitRecord,
    parse_command_reply_body,
    parse_disposition_body,
)
from agent.pki import ed25519_public_from_pem, public_pem
from agent.sqlite import READ_ONLY_OPTION, make_durable

log = logging.getLogger(__name__)

_Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()
hits = Table(
    "hits",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("epoch", Integer, nullable=False, default=0, server_default="0"),
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
    Column("sent_at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("model_version", Text, nullable=True),
    UniqueConstraint("device_id", "epoch", "seq", name="uq_hits_device_epoch_seq"),
    Index("ix_hits_received_at", "received_at"),
)
device_messages = Table(
    "device_messages",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("epoch", Integer, nullable=False, default=0, server_default="0"),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("sent_at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    UniqueConstraint("device_id", "epoch", "seq", name="uq_device_messages_device_epoch_seq"),
)
devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("public_key", Text, nullable=False),
    Column("enrolled_at", Float, nullable=False),
    Column("epoch", Integer, nullable=False, default=0, server_default="0"),
    Column("revoked_at", Float, nullable=True),
    Column("first_seen", Float, nullable=True),
    Column("last_seen", Float, nullable=True),
    Column("last_seq", BigInteger, nullable=False, default=0),
    Column("received", BigInteger, nullable=False, default=0),
    Column("status", Text, nullable=True),
    Column("status_sent_at", Float, nullable=True),
    Column("connected_at", Float, nullable=True),
    Column("online", Integer, nullable=True),
)
dispositions = Table(
    "dispositions",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("hit_seq", BigInteger, nullable=False),
    Column("source", String(16), nullable=False),
    Column("verdict", String(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_dispositions_device_hit", "device_id", "hit_seq"),
)
commands = Table(
    "commands",
    metadata,
    Column("command_id", String(64), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("args", Text, nullable=False),
    Column("issued_by", Text, nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("reply_ok", Integer, nullable=True),
    Column("reply_detail", Text, nullable=True),
    Column("replied_at", Float, nullable=True),
    Index("ix_commands_device_issued", "device_id", "issued_at"),
)

DISPOSITION_SOURCES: Final = ("officer", "operator")
"""Who gave a verdict: the officer on the device, or an operator in the console."""
VERDICTS: Final = ("confirmed", "false_read", "dispatched", "rejected")
FALSE_VERDICTS: Final = ("false_read", "rejected")
"""Verdicts that say the alert was wrong (an operator's false read, an officer's rejection)."""
STATUS_COLUMNS: Final = (
    "battery_pct",
    "temperature_c",
    "storage_free_mb",
    "queue_depth",
    "watchlist_version",
    "watchlist_stale",
    "watchlist_last_refusal",
    "watchlist_locked",
    "model_version",
    "agent_version",
)
"""Heartbeat fields ``list_devices`` also gives at the top level of each row (None if unknown)."""
_ADDED_COLUMNS: Final = {"hits": {"model_version": "TEXT"}}


@dataclass(frozen=True, slots=True)
class Incoming:
    """One verified message ready to store: a hit (``record``) or another kind (``body``)."""

    device_id: str
    seq: int
    kind: str
    sent_at: float
    received_at: float
    record: HitRecord | None = None
    body: dict[str, Any] | None = None
    epoch: int | None = None
    """The enrolment epoch whose key verified the message (``HqDatabase.registry``);
    ``None``: the device's current epoch."""


def _engine_for(url: str) -> tuple[Engine, bool, str]:
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.get_driver_name() in ("psycopg2", "default"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is what we ship
    sqlite = backend == "sqlite"
    if sqlite and parsed.database not in (None, "", ":memory:"):
        try:
            Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"HQ database {shown}: cannot create its directory: {exc}") from exc
    if sqlite and parsed.database in (None, "", ":memory:"):
        # one shared connection, or each thread would see its own empty database
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        try:
            engine = create_engine(parsed, pool_pre_ping=not sqlite)
        except ImportError as exc:
            raise StorageError(f"HQ database {shown}: driver not installed: {exc}") from exc
    if sqlite:
        make_durable(engine, busy_timeout_ms=30000, immediate_writes=True)
    return engine, sqlite, shown


class SqlAccess:
    """One engine on an HQ database URL, its lock and its error mapping, for each store of
    HQ's (this registry, the console's accounts and audit log): failures raise StorageError."""

    _what = "HQ database"

    def __init__(self, url: str) -> None:
        self._engine, self._sqlite, self.url = _engine_for(url)
        # SQLite takes one writer at a time anyway; the lock also keeps threads
        # from interleaving transactions on the shared in-memory connection.
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if self._sqlite else contextlib.nullcontext()
        )

    @contextmanager
    def _write(self, operation: str) -> Iterator[Connection]:
        with self._lock, self._guard(operation), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        with self._lock, self._guard(operation), self._engine.connect() as conn:
            yield conn.execution_options(**{READ_ONLY_OPTION: True})

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise  # a constraint said no: the caller decides what that means
        except DBAPIError as exc:
            reason = exc.orig if exc.orig is not None else exc
            raise StorageError(f"{self._what} {self.url}: cannot {operation}: {reason}") from exc

    def close(self) -> None:
        self._engine.dispose()


class HqDatabase(SqlAccess):
    """Devices, hits and status as HQ stores them; database failures raise StorageError."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            with self._write("create tables") as conn:
                metadata.create_all(conn)
                _add_missing_columns(conn)
        except StorageError:
            self._engine.dispose()
            raise

    # -- registry ----------------------------------------------------------------

    def enrol_device(self, device_id: str, public_key: Ed25519PublicKey, now: float) -> None:
        """Register (or re-key) a device; a revoked device is enrolled again only this way."""
        pem = public_pem(public_key).decode("ascii")
        with self._write("enrol a device") as conn:
            found = conn.execute(
                select(devices.c.public_key, devices.c.epoch).where(
                    devices.c.device_id == device_id
                )
            ).first()
            if found is None:
                conn.execute(
                    insert(devices).values(
                        device_id=device_id,
                        public_key=pem,
                        enrolled_at=now,
                        epoch=0,
                        last_seq=0,
                        received=0,
                    )
                )
            elif found.public_key == pem:
                conn.execute(
                    update(devices)
                    .where(devices.c.device_id == device_id)
                    .values(enrolled_at=now, revoked_at=None)
                )
            else:  # re-provisioned: a new key, a sequence starting at 1 again
                conn.execute(
                    update(devices)
                    .where(devices.c.device_id == device_id)
                    .values(
                        public_key=pem,
                        enrolled_at=now,
                        revoked_at=None,
                        epoch=int(found.epoch) + 1,
                        last_seq=0,
                        received=0,
                    )
                )
                log.info("device %s re-keyed: epoch %d begins", device_id, int(found.epoch) + 1)

    def revoke_device(self, device_id: str, now: float) -> bool:
        """Refuse this device's messages from now on; False if it is not enrolled."""
        with self._write("revoke a device") as conn:
            result = conn.execute(
                update(devices).where(devices.c.device_id == device_id).values(revoked_at=now)
            )
        return bool(result.rowcount)

    def device_keys(self) -> dict[str, Ed25519PublicKey | None]:
        """Every enrolled device's public key; ``None`` for a revoked device."""
        return {device_id: key for device_id, (key, _epoch) in self.registry().items()}

    def registry(self) -> dict[str, tuple[Ed25519PublicKey | None, int]]:
        """Every enrolled device's ``(public key, epoch)``; the key is ``None`` if revoked."""
        with self._read("read the device registry") as conn:
            rows = conn.execute(
                select(
                    devices.c.device_id, devices.c.public_key, devices.c.revoked_at, devices.c.epoch
                )
            ).all()
        keys: dict[str, tuple[Ed25519PublicKey | None, int]] = {}
        for row in rows:
            epoch = int(row.epoch or 0)
            if row.revoked_at is not None:
                keys[row.device_id] = (None, epoch)
                continue
            try:
                key = ed25519_public_from_pem(
                    row.public_key.encode("ascii"), f"key of {row.device_id}"
                )
            except ConfigError as exc:
                log.error("device registry: %s; its messages are refused", exc)
                keys[row.device_id] = (None, epoch)
                continue
            keys[row.device_id] = (key, epoch)
        return keys

    # -- messages ------------------------------------------------------------------

    def store_batch(self, batch: Sequence[Incoming]) -> list[bool | None]:
        """Store a batch in one transaction; per item, True if new, False if already stored,
        None if it must not be acked: not stored because its device is not enrolled, or
        stored but of a superseded epoch (see the module docstring).

        Raises StorageError if the database refuses (then nothing of the batch is stored).
        """
        for _attempt in range(3):
            try:
                with self._write("store messages") as conn:
                    return self._store_in(conn, batch)
            except IntegrityError as exc:
                # Only possible if a device row was deleted under us; try again.
                log.warning("HQ database: conflict storing a batch, retrying: %s", exc.orig)
        raise StorageError(f"HQ database {self.url}: cannot store a batch: repeated conflicts")

    def _store_in(self, conn: Connection, batch: Sequence[Incoming]) -> list[bool | None]:
        ids = sorted({item.device_id for item in batch})
        rows = {
            row.device_id: row
            for row in conn.execute(
                select(devices)
                .where(devices.c.device_id.in_(ids))
                .order_by(devices.c.device_id)
                .with_for_update()
            )
        }
        batch = [_in_epoch(item, rows.get(item.device_id)) for item in batch]
        held = _held_keys(conn, batch)
        results: list[bool | None] = []
        hit_rows: list[dict[str, Any]] = []
        other_rows: list[dict[str, Any]] = []
        new_by_device: dict[str, list[Incoming]] = defaultdict(list)
        for item in batch:
            key = (item.device_id, item.epoch or 0, item.seq)
            row = rows.get(item.device_id)
            if row is None:
                results.append(None)
                continue
            current = item.epoch == int(row.epoch or 0)
            if key in held:
                results.append(False if current else None)
                continue
            held.add(key)
            if current:
                results.append(True)
                new_by_device[item.device_id].append(item)
            else:
                results.append(None)
                log.warning(
                    "device %s: stored %d of superseded epoch %d (not acked)",
                    item.device_id,
                    item.seq,
                    item.epoch,
                )
            if item.record is not None:
                hit_rows.append(_hit_row(item))
            else:
                other_rows.append(_other_row(item))
        if hit_rows:
            conn.execute(insert(hits), hit_rows)
        if other_rows:
            conn.execute(insert(device_messages), other_rows)
        for device_id, items in new_by_device.items():
            _store_events(conn, device_id, items)
            _note_device(conn, rows[device_id], items)
        return results

    def store_hit(
        self, device_id: str, seq: int, record: HitRecord, received_at: float, sent_at: float = 0.0
    ) -> bool:
        """Store one hit of an enrolled device; False if ``(device_id, seq)`` is already stored.

        Raises StorageError if the device is not enrolled or the database refuses.
        """
        item = Incoming(device_id, seq, HIT_KIND, sent_at, received_at, record=record)
        result = self.store_batch([item])[0]
        if result is None:
            raise StorageError(f"HQ database {self.url}: device {device_id!r} is not enrolled")
        return result

    def record_status(
        self,
        device_id: str,
        status: dict[str, Any],
        sent_at: float,
        *,
        received_at: float,
    ) -> bool:
        """Keep a device's newest status; False (nothing changes) if it is stale or a replay.

        A heartbeat must be newer (``sent_at``) than the one held. A last will
        (``online`` false) is sealed when the device connects, so it is older than
        that connection's heartbeats: it is accepted if its ``connected_at`` is not
        older than the held one's, which refuses the will of an earlier connection.
        A last will keeps the battery, storage and other figures of the status held.
        """
        return self.record_statuses([StatusReport(device_id, status, sent_at, received_at)])[0]

    def record_statuses(self, reports: Sequence[StatusReport]) -> list[bool]:
        """``record_status`` for many reports in one transaction (one commit for a whole
        batch of heartbeats, e.g. a fleet reporting a new watchlist at once)."""
        if not reports:
            return []
        ids = sorted({r.device_id for r in reports})
        with self._write("record statuses") as conn:
            # rows locked in id order, as store_batch does: two workers cannot deadlock
            rows = {
                row.device_id: row
                for row in conn.execute(
                    select(devices)
                    .where(devices.c.device_id.in_(ids))
                    .order_by(devices.c.device_id)
                    .with_for_update()
                )
            }
            return [_record_status_in(conn, rows, report) for report in reports]

    # -- queries ---------------------------------------------------------------------

    def count_hits(self, device_id: str | None = None) -> int:
        query = select(func.count()).select_from(hits)
        if device_id is not None:
            query = query.where(hits.c.device_id == device_id)
        with self._read("count hits") as conn:
            return int(conn.execute(query).scalar_one())

    def list_hits(
        self, device_id: str | None = None, limit: int = 100, *, oldest_first: bool = False
    ) -> list[dict[str, Any]]:
        """Hits, newest first (or oldest first), each as a dict of the ``hits`` columns."""
        order = hits.c.id.asc() if oldest_first else hits.c.id.desc()
        query = select(hits).order_by(order).limit(limit)
        if device_id is not None:
            query = query.where(hits.c.device_id == device_id)
        with self._read("list hits") as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def hit_seqs(self, device_id: str) -> list[int]:
        """Every stored hit's sequence number for one device, in the order HQ stored them."""
        query = select(hits.c.seq).where(hits.c.device_id == device_id).order_by(hits.c.id)
        with self._read("list hit numbers") as conn:
            return [int(s) for s in conn.execute(query).scalars()]

    def list_devices(self) -> list[dict[str, Any]]:
        """Every enrolled device, by id, with ``gaps``, ``revoked``, its last status decoded
        (``status``) and the heartbeat figures of ``STATUS_COLUMNS`` at the top level."""
        with self._read("list devices") as conn:
            rows = conn.execute(select(devices).order_by(devices.c.device_id)).all()
        result = []
        for row in rows:
            item = dict(row._mapping)
            item.pop("public_key")
            item["gaps"] = int(row.last_seq) - int(row.received)
            item["revoked"] = row.revoked_at is not None
            item["online"] = None if row.online is None else bool(row.online)
            status = json.loads(row.status) if row.status else None
            item["status"] = status
            for name in STATUS_COLUMNS:
                item[name] = status.get(name) if status else None
            result.append(item)
        return result

    # -- dispositions ------------------------------------------------------------------

    def record_disposition(
        self,
        device_id: str,
        hit_seq: int,
        *,
        source: str,
        verdict: str,
        note: str,
        actor: str,
        at: float,
    ) -> int:
        """Store an officer's or operator's verdict on one hit; returns the new row's id.

        Raises ValueError for a source or verdict outside ``DISPOSITION_SOURCES``/``VERDICTS``.
        """
        row = _disposition_row(
            device_id,
            hit_seq=hit_seq,
            source=source,
            verdict=verdict,
            note=note,
            actor=actor,
            at=at,
            received_at=time.time(),
        )
        with self._write("record a disposition") as conn:
            result = conn.execute(insert(dispositions).values(row))
        key = result.inserted_primary_key
        return int(key[0]) if key is not None else 0

    def list_dispositions(
        self, device_id: str | None = None, hit_seq: int | None = None
    ) -> list[dict[str, Any]]:
        """Dispositions, oldest first, of one device (and one hit) or of all."""
        query = select(dispositions).order_by(dispositions.c.id)
        if device_id is not None:
            query = query.where(dispositions.c.device_id == device_id)
        if hit_seq is not None:
            query = query.where(dispositions.c.hit_seq == hit_seq)
        with self._read("list dispositions") as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def false_read_rates(self) -> dict[str, dict[str, dict[str, float | int]]]:
        """False read rate per device and per model version.

        Rate = hits whose latest disposition says the alert was wrong
        (``FALSE_VERDICTS``) / hits with any disposition. A hit of a device that
        did not say its model version counts under ``"unknown"``. Shape:
        ``{"by_device": {id: {"dispositioned", "false_reads", "rate"}}, "by_model_version": ...}``.
        """
        latest = (
            select(
                dispositions.c.device_id,
                dispositions.c.hit_seq,
                func.max(dispositions.c.id).label("last_id"),
            )
            .group_by(dispositions.c.device_id, dispositions.c.hit_seq)
            .subquery()
        )
        query = (
            select(latest.c.device_id, dispositions.c.verdict, hits.c.model_version)
            .join(dispositions, dispositions.c.id == latest.c.last_id)
            .outerjoin(
                hits,
                (hits.c.device_id == latest.c.device_id) & (hits.c.seq == latest.c.hit_seq),
            )
        )
        with self._read("compute false read rates") as conn:
            rows = conn.execute(query).all()
        by_device: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        by_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in rows:
            false = int(row.verdict in FALSE_VERDICTS)
            for bucket, key in ((by_device, row.device_id), (by_model, row.model_version)):
                counts = bucket[key or "unknown"]
                counts[0] += 1
                counts[1] += false
        return {"by_device": _rates(by_device), "by_model_version": _rates(by_model)}

    # -- remote commands -------------------------------------------------------------------

    def record_command(self, row: dict[str, Any]) -> None:
        """Store a command HQ issued: ``command_id, device_id, action, args`` (a dict or its
        JSON), ``issued_by, issued_at, expires_at``. Raises StorageError if the id exists."""
        values = {
            "command_id": row["command_id"],
            "device_id": row["device_id"],
            "action": row["action"],
            "args": row["args"] if isinstance(row["args"], str) else _json(row["args"]),
            "issued_by": row["issued_by"],
            "issued_at": float(row["issued_at"]),
            "expires_at": float(row["expires_at"]),
        }
        try:
            with self._write("record a command") as conn:
                conn.execute(insert(commands).values(values))
        except IntegrityError as exc:
            raise StorageError(f"command {values['command_id']!r} is already recorded") from exc

    def record_command_reply(
        self,
        command_id: str,
        ok: bool,
        detail: str,
        at: float,
        *,
        device_id: str | None = None,
    ) -> bool:
        """Note a command's reply; False if no such command (of ``device_id``, when given)
        waits for one. The first reply stays: a later one changes nothing."""
        with self._write("record a command reply") as conn:
            return _reply_in(conn, command_id, ok=ok, detail=detail, at=at, device_id=device_id)

    def list_commands(self, device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Commands, newest first, each with its reply (``reply_ok`` None: none yet)."""
        query = (
            select(commands)
            .order_by(commands.c.issued_at.desc(), commands.c.command_id)
            .limit(limit)
        )
        if device_id is not None:
            query = query.where(commands.c.device_id == device_id)
        with self._read("list commands") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["args"] = json.loads(row["args"]) if row["args"] else {}
            row["reply_ok"] = None if row["reply_ok"] is None else bool(row["reply_ok"])
        return rows

    def __enter__(self) -> HqDatabase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _add_missing_columns(conn: Connection) -> None:
    """Columns added since a table was first created (nullable, so old rows stay valid)."""
    inspector = inspect(conn)
    for table, columns in _ADDED_COLUMNS.items():
        have = {column["name"] for column in inspector.get_columns(table)}
        for name, sql_type in columns.items():
            if name not in have:
                log.info("HQ database: adding column %s.%s", table, name)
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _rates(buckets: dict[str, list[int]]) -> dict[str, dict[str, float | int]]:
    return {
        key: {"dispositioned": total, "false_reads": false, "rate": false / total}
        for key, (total, false) in sorted(buckets.items())
    }


def _disposition_row(
    device_id: str,
    *,
    hit_seq: int,
    source: str,
    verdict: str,
    note: str,
    actor: str,
    at: float,
    received_at: float,
) -> dict[str, Any]:
    if source not in DISPOSITION_SOURCES:
        raise ValueError(f"disposition source {source!r} is not one of {DISPOSITION_SOURCES}")
    if verdict not in VERDICTS:
        raise ValueError(f"disposition verdict {verdict!r} is not one of {VERDICTS}")
    return {
        "device_id": device_id,
        "hit_seq": int(hit_seq),
        "source": source,
        "verdict": verdict,
        "note": note,
        "actor": actor,
        "at": float(at),
        "received_at": float(received_at),
    }


def _reply_in(
    conn: Connection, command_id: str, *, ok: bool, detail: str, at: float, device_id: str | None
) -> bool:
    where = (commands.c.command_id == command_id) & commands.c.reply_ok.is_(None)
    if device_id is not None:
        where = where & (commands.c.device_id == device_id)
    result = conn.execute(
        update(commands).where(where).values(reply_ok=int(ok), reply_detail=detail, replied_at=at)
    )
    return bool(result.rowcount)


def _store_events(conn: Connection, device_id: str, items: list[Incoming]) -> None:
    """Officer dispositions and command replies into their tables (bodies already checked)."""
    for item in items:
        if item.kind == DISPOSITION_KIND:
            record = parse_disposition_body(item.body)
            row = _disposition_row(
                device_id,
                hit_seq=record.hit_seq,
                source="officer",
                verdict=record.verdict,
                note=record.note,
                actor=record.officer or device_id,
                at=record.at,
                received_at=item.received_at,
            )
            conn.execute(insert(dispositions).values(row))
        elif item.kind == COMMAND_REPLY_KIND:
            reply = parse_command_reply_body(item.body)
            replied = _reply_in(
                conn,
                reply.command_id,
                ok=reply.ok,
                detail=reply.detail,
                at=reply.at,
                device_id=device_id,
            )
            if not replied:
                log.warning(
                    "device %s replied to command %s, which HQ did not send it or has an answer to",
                    device_id,
                    reply.command_id,
                )


def _in_epoch(item: Incoming, row: Any) -> Incoming:
    """The item with its epoch filled in: the device's current one unless it names one."""
    if item.epoch is not None or row is None:
        return item
    return dataclasses.replace(item, epoch=int(row.epoch or 0))


def _held_keys(conn: Connection, batch: Sequence[Incoming]) -> set[tuple[str, int, int]]:
    """Which ``(device, epoch, seq)`` of the batch HQ already holds."""
    by_stream: dict[tuple[str, int], list[int]] = defaultdict(list)
    for item in batch:
        by_stream[(item.device_id, item.epoch or 0)].append(item.seq)
    held: set[tuple[str, int, int]] = set()
    for (device_id, epoch), seqs in sorted(by_stream.items()):
        held |= _held_seqs(conn, device_id, epoch, seqs)
    return held


def _held_seqs(
    conn: Connection, device_id: str, epoch: int, seqs: list[int]
) -> set[tuple[str, int, int]]:
    held: set[tuple[str, int, int]] = set()
    for table in (hits, device_messages):
        query = select(table.c.seq).where(
            table.c.device_id == device_id, table.c.epoch == epoch, table.c.seq.in_(seqs)
        )
        held |= {(device_id, epoch, int(s)) for s in conn.execute(query).scalars()}
    return held


def _note_device(conn: Connection, row: Any, items: list[Incoming]) -> None:
    top = max(item.seq for item in items)
    last_seq = max(int(row.last_seq), top)
    received = int(row.received) + len(items)
    now = max(item.received_at for item in items)
    old_gaps = int(row.last_seq) - int(row.received)
    if last_seq - received > old_gaps:
        # usual and transient with several workers (they store out of order); what
        # stays missing shows as ``gaps`` in ``raqib hq devices``
        log.debug(
            "device %s: sequence reached %d with %d message(s) missing",
            row.device_id,
            last_seq,
            last_seq - received,
        )
    conn.execute(
        update(devices)
        .where(devices.c.device_id == row.device_id)
        .values(
            last_seq=last_seq,
            received=received,
            last_seen=now,
            first_seen=row.first_seen if row.first_seen is not None else now,
        )
    )


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One verified status (heartbeat or last will) of a device."""

    device_id: str
    status: dict[str, Any]
    sent_at: float
    received_at: float


def _record_status_in(conn: Connection, rows: dict[str, Any], report: StatusReport) -> bool:
    row = rows.get(report.device_id)
    if row is None:
        return False
    status = report.status
    online = bool(status.get("online", True))
    connected_at = status.get("connected_at")
    connected = float(connected_at) if isinstance(connected_at, int | float) else None
    if not _status_is_newer(row, online, report.sent_at, connected):
        return False
    if not online and row.status:
        # a last will says only "offline": keep the figures the last heartbeat gave
        status = {**json.loads(row.status), **status}
    values = {
        "status": json.dumps(status, separators=(",", ":")),
        "status_sent_at": report.sent_at,
        "connected_at": connected,
        "online": int(online),
        "last_seen": report.received_at,
    }
    conn.execute(update(devices).where(devices.c.device_id == report.device_id).values(values))
    rows[report.device_id] = _Held(row, values)  # a later report in the batch sees this one
    return True


class _Held:
    """A device row with this transaction's status changes laid over it."""

    def __init__(self, row: Any, values: dict[str, Any]) -> None:
        self._row = row
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._row, name)


def _status_is_newer(row: Any, online: bool, sent_at: float, connected: float | None) -> bool:
    if row.status_sent_at is None:
        return True
    if online:
        return sent_at > float(row.status_sent_at)
    held_connected = row.connected_at
    if connected is None or held_connected is None:
        return sent_at > float(row.status_sent_at)
    return connected >= float(held_connected) and bool(row.online)


def _hit_row(item: Incoming) -> dict[str, Any]:
    record = item.record
    assert record is not None
    return {
        "device_id": item.device_id,
        "epoch": item.epoch or 0,
        "seq": item.seq,
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
        "sent_at": item.sent_at,
        "received_at": item.received_at,
        "model_version": record.model_version,
    }


def _other_row(item: Incoming) -> dict[str, Any]:
    return {
        "device_id": item.device_id,
        "epoch": item.epoch or 0,
        "seq": item.seq,
        "kind": item.kind,
        "body": json.dumps(item.body or {}, separators=(",", ":"), ensure_ascii=False),
        "sent_at": item.sent_at,
        "received_at": item.received_at,
    }
