"""HQ's PostgreSQL for a fleet: monthly partitions with retention, the readers' indexes, a
read-only role, and exactly-once storage still holding on partitioned tables (real server)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from transport_kit import DEVICE, sample_hit

from agent.messages import HIT_KIND, hit_body, parse_hit_body
from hq.db import HqDatabase, Incoming
from hq.partitions import (
    create_partitioned_schema,
    create_reader_role,
    drop_partitions_before,
    ensure_partitions,
    monthly_partitions,
)
from hq.pgcluster import ThrowawayPostgres

pytestmark = pytest.mark.slow

NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp()
OCT = dt.datetime(2026, 10, 5, tzinfo=dt.UTC).timestamp()


@pytest.fixture(scope="module")
def pg() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as cluster:
        engine = create_engine(cluster.url)
        with engine.begin() as conn:
            create_partitioned_schema(conn, NOW, months_ahead=2)
        engine.dispose()
        yield cluster


def hit(seq: int, received_at: float) -> Incoming:
    record = parse_hit_body(hit_body(sample_hit(seq)))
    return Incoming(DEVICE, seq, HIT_KIND, received_at - 1, received_at, record=record)


def test_monthly_partitions_are_made_ahead_and_rows_land_in_their_month(
    pg: ThrowawayPostgres,
) -> None:
    with HqDatabase(pg.url) as db:
        db.enrol_device(DEVICE, Ed25519PrivateKey.generate().public_key(), NOW)
        assert db.store_batch([hit(1, NOW), hit(2, OCT)]) == [True, True]
        # exactly once without a UNIQUE constraint: the device row lock decides
        assert db.store_batch([hit(1, NOW + 60), hit(2, NOW + 60)]) == [False, False]
        with db._engine.connect() as conn:
            names = monthly_partitions(conn)
            where = dict(conn.execute(text("SELECT seq, tableoid::regclass::text FROM hits")).all())
    assert "hits_2026_11" in names and "hits_2027_01" in names
    assert "device_messages_2026_12" in names
    assert where == {1: "hits_2026_11", 2: "hits_default"}  # October was never made


def test_retention_drops_whole_months_and_keeps_the_rest(pg: ThrowawayPostgres) -> None:
    engine = create_engine(pg.url)
    try:
        with engine.begin() as conn:
            made = ensure_partitions(conn, dt.datetime(2026, 9, 1, tzinfo=dt.UTC).timestamp(), 0)
            assert made == ["hits_2026_09", "device_messages_2026_09"]
            cutoff = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()
            assert drop_partitions_before(conn, "hits", cutoff) == ["hits_2026_09"]
            names = monthly_partitions(conn)
        assert "hits_2026_09" not in names
        assert "device_messages_2026_09" in names  # the ledger has its own retention
        assert "hits_2026_11" in names
    finally:
        engine.dispose()


def test_the_indexes_readers_need_exist(pg: ThrowawayPostgres) -> None:
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            found = set(
                conn.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'hits_2026_11'")
                ).scalars()
            )
    finally:
        engine.dispose()
    for columns in ("device_id_epoch_seq", "device_id_received_at", "plate_received_at"):
        assert any(columns in name for name in found), (columns, found)


def test_reader_role_can_read_and_cannot_write(pg: ThrowawayPostgres) -> None:
    admin = create_engine(pg.url)
    with admin.begin() as conn:
        create_reader_role(conn, login="auditor_ro")
    admin.dispose()
    reader = create_engine(pg.url.replace("postgres@", "auditor_ro@"))
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM hits")).scalar_one() >= 0
            assert conn.execute(text("SELECT count(*) FROM devices")).scalar_one() >= 0
        with pytest.raises(ProgrammingError, match="permission denied"), reader.begin() as conn:
            conn.execute(text("DELETE FROM hits"))
        with pytest.raises(ProgrammingError, match="permission denied"), reader.begin() as conn:
            conn.execute(text("UPDATE devices SET revoked_at = 1"))
    finally:
        reader.dispose()
