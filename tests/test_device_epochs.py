"""A re-provisioned device restarts its sequence at 1: HQ must store its new messages, not
take them for duplicates of the old incarnation's (device epochs, hq/db.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from transport_kit import DEVICE, PATIENCE_S, Fleet, sample_hit

from agent.config import MqttConfig
from agent.messages import HIT_KIND, hit_body, parse_hit_body
from agent.transport.outbox import Outbox
from hq.db import HqDatabase, Incoming
from hq.ingest import IngestService


@pytest.fixture
def db(tmp_db_url: str) -> Iterator[HqDatabase]:
    database = HqDatabase(tmp_db_url)
    yield database
    database.close()


def hit(seq: int, epoch: int | None = None, n: int | None = None) -> Incoming:
    record = parse_hit_body(hit_body(sample_hit(seq if n is None else n)))
    return Incoming(DEVICE, seq, HIT_KIND, 1.0, 2.0, record=record, epoch=epoch)


def device_row(db: HqDatabase) -> dict[str, object]:
    return next(d for d in db.list_devices() if d["device_id"] == DEVICE)


def test_reprovisioned_device_restarting_at_seq_1_is_not_dropped_as_duplicates(
    db: HqDatabase,
) -> None:
    db.enrol_device(DEVICE, Ed25519PrivateKey.generate().public_key(), 1.0)
    assert db.store_batch([hit(1), hit(2), hit(3)]) == [True, True, True]
    # the camera is wiped and set up again: a new key, its outbox numbers from 1
    db.enrol_device(DEVICE, Ed25519PrivateKey.generate().public_key(), 2.0)
    assert db.registry()[DEVICE][1] == 1
    assert db.store_batch([hit(1, 1, n=101), hit(2, 1, n=102)]) == [True, True]
    assert db.count_hits(DEVICE) == 5
    # within the new epoch a resend is still a duplicate
    assert db.store_batch([hit(2, 1, n=102)]) == [False]
    row = device_row(db)
    assert (row["epoch"], row["last_seq"], row["gaps"]) == (1, 2, 0)


def test_enrolling_the_same_key_again_keeps_the_epoch_so_resends_stay_duplicates(
    db: HqDatabase,
) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    db.enrol_device(DEVICE, key, 1.0)
    assert db.store_batch([hit(1)]) == [True]
    db.revoke_device(DEVICE, 2.0)
    db.enrol_device(DEVICE, key, 3.0)  # reinstated, same device and outbox
    assert db.store_batch([hit(1)]) == [False]
    assert device_row(db)["epoch"] == 0


def test_late_message_of_a_superseded_epoch_is_kept_but_not_acked(db: HqDatabase) -> None:
    db.enrol_device(DEVICE, Ed25519PrivateKey.generate().public_key(), 1.0)
    db.enrol_device(DEVICE, Ed25519PrivateKey.generate().public_key(), 2.0)
    # verified with the old key by a worker whose registry was not refreshed yet
    assert db.store_batch([hit(7, 0), hit(1, 1)]) == [None, True]
    assert db.count_hits(DEVICE) == 2
    assert device_row(db)["last_seq"] == 1  # the new epoch's accounting only


def send_three_hits(fleet: Fleet, config: MqttConfig, path: Path, wait_until) -> None:
    """A device with a fresh outbox queues hits 1..3 and sends them until HQ acks all."""
    with Outbox(path) as box:
        assert fleet.put_hits(box, 3) == [1, 2, 3]
        uplink = fleet.uplink(config, box)
        try:
            assert wait_until(lambda: box.depth() == 0, PATIENCE_S)
        finally:
            uplink.stop()


@pytest.mark.broker
def test_reprovisioned_device_hits_arrive_through_broker_and_ingest(
    tmp_path: Path, mqtt_config: MqttConfig, db: HqDatabase, wait_until
) -> None:
    """Real outbox, uplink, Mosquitto and ingest: both incarnations' hits 1..3 are stored."""
    first = Fleet()
    first.enrol(db, DEVICE)
    service = IngestService(
        mqtt_config, db, first.hq_keys, client_id="hq-ingest-epochs", registry_refresh_s=0.2
    )
    service.start()
    try:
        send_three_hits(first, mqtt_config, tmp_path / "first" / "outbox.sqlite", wait_until)
        again = Fleet(first.hq_keys)  # re-provisioned: state wiped, a fresh device key
        again.enrol(db, DEVICE)
        time.sleep(0.3)  # the ingest registry refreshes every 0.2 s here
        send_three_hits(again, mqtt_config, tmp_path / "again" / "outbox.sqlite", wait_until)
    finally:
        service.stop()
    assert db.count_hits(DEVICE) == 6
    assert sorted(db.hit_seqs(DEVICE)) == [1, 1, 2, 2, 3, 3]
