"""Hits from device to HQ over a real Mosquitto: stored exactly once, whatever fails on the way."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from transport_kit import DEVICE, PATIENCE_S, Fleet, RawClient, sample_hit

from agent.broker import LocalBroker, free_port
from agent.config import MqttConfig
from agent.envelope import MAX_MESSAGE_BYTES, encode_ack
from agent.errors import PayloadError, StorageError
from agent.messages import HIT_KIND, HitRecord, hit_body, parse_hit_body
from agent.transport.outbox import PRIORITY_STATUS, Outbox
from agent.transport.topics import Topics, device_id_from_topic, hq_hits_subscription
from hq.db import HqDatabase, Incoming
from hq.ingest import IngestService

FLEET = Fleet()


def hit_payload(seq: int, n: int | None = None, device: str = DEVICE) -> bytes:
    return FLEET.hit_payload(seq, n, device)


def put_hits(outbox: Outbox, _topics: Topics, count: int) -> list[int]:
    return FLEET.put_hits(outbox, count)


def device_row(db: HqDatabase, device: str = DEVICE) -> dict[str, object]:
    return next(d for d in db.list_devices() if d["device_id"] == device)


def sealed(kind: str, seq: int, topic: str, body: dict[str, object]) -> bytes:
    return FLEET.sealer().seal(kind, seq, topic, body)


@pytest.fixture
def db(tmp_db_url: str) -> Iterator[HqDatabase]:
    database = HqDatabase(tmp_db_url)
    FLEET.enrol(database, DEVICE, "cam-other-02")
    yield database
    database.close()


@pytest.fixture
def ingest(mqtt_config: MqttConfig, db: HqDatabase, wait_until) -> Iterator[IngestService]:
    service = IngestService(mqtt_config, db, FLEET.hq_keys, client_id="hq-ingest-test")
    service.start()
    assert wait_until(lambda: service.connected, PATIENCE_S)
    time.sleep(0.1)  # SUBACK
    yield service
    service.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "device" / "outbox.sqlite") as box:
        yield box


@pytest.fixture
def topics() -> Topics:
    return Topics("raqib/v1", DEVICE)


@pytest.fixture
def raw(mqtt_config: MqttConfig) -> Iterator[RawClient]:
    client = RawClient(mqtt_config, "raw-test-client")
    yield client
    client.close()


# -- the happy path ------------------------------------------------------------


@pytest.mark.broker
def test_hits_go_from_device_outbox_to_hq_database_once_each(
    mqtt_config: MqttConfig,
    db: HqDatabase,
    ingest: IngestService,
    outbox: Outbox,
    topics: Topics,
    wait_until,
) -> None:
    uplink = FLEET.uplink(mqtt_config, outbox)
    try:
        seqs = put_hits(outbox, topics, 20)
        uplink.wake()
        assert wait_until(lambda: outbox.depth() == 0, PATIENCE_S)
    finally:
        uplink.stop()
    assert db.count_hits() == 20
    assert sorted(row["seq"] for row in db.list_hits(limit=100)) == seqs
    newest = db.list_hits(DEVICE, limit=1)[0]
    assert newest["plate"] == f"{10000 + seqs[-1]}-B-6"
    assert newest["reason"] == "stolen"
    assert newest["lat"] == pytest.approx(33.57)
    assert newest["crop_jpeg"] == b"\xff\xd8fake-jpeg\xff\xd9"
    device = device_row(db)
    assert (device["device_id"], device["last_seq"], device["gaps"]) == (DEVICE, 20, 0)
    assert uplink.stats()["acked"] == 20
    assert ingest.stats()["stored"] == 20


@pytest.mark.broker
def test_on_stored_is_told_of_each_new_hit_and_its_failure_does_not_stop_ingest(
    mqtt_config: MqttConfig, db: HqDatabase, raw: RawClient, topics: Topics, wait_until
) -> None:
    seen: list[tuple[str, int]] = []

    def on_stored(device_id: str, seq: int, record: HitRecord) -> None:
        seen.append((device_id, seq))
        raise RuntimeError("a broken notifier")

    service = IngestService(
        mqtt_config, db, FLEET.hq_keys, client_id="hq-ingest-cb", on_stored=on_stored
    )
    service.start()
    try:
        assert wait_until(lambda: service.connected, PATIENCE_S)
        time.sleep(0.1)
        for seq in (1, 1, 2):
            raw.publish(topics.hits, hit_payload(seq))
        assert wait_until(lambda: service.stats()["received"] == 3, PATIENCE_S)
    finally:
        service.stop()
    assert seen == [(DEVICE, 1), (DEVICE, 2)]


@pytest.mark.broker
def test_two_ingest_workers_share_the_load_and_each_hit_is_stored_once(
    mqtt_config: MqttConfig, db: HqDatabase, outbox: Outbox, topics: Topics, wait_until
) -> None:
    workers = [
        IngestService(mqtt_config, db, FLEET.hq_keys, client_id=f"hq-ingest-{n}") for n in range(2)
    ]
    for worker in workers:
        worker.start()
    uplink = FLEET.uplink(mqtt_config, outbox)
    try:
        assert wait_until(lambda: all(w.connected for w in workers), PATIENCE_S)
        time.sleep(0.1)
        put_hits(outbox, topics, 40)
        uplink.wake()
        assert wait_until(lambda: outbox.depth() == 0, PATIENCE_S)
    finally:
        uplink.stop()
        for worker in workers:
            worker.stop()
    assert db.count_hits() == 40
    assert all(w.stats()["stored"] > 0 for w in workers)
    assert sum(w.stats()["stored"] for w in workers) == 40


# -- duplicates and lost acks ---------------------------------------------------


@pytest.mark.broker
def test_duplicate_is_stored_once_but_acked_every_time(
    db: HqDatabase, ingest: IngestService, raw: RawClient, topics: Topics, wait_until
) -> None:
    raw.subscribe(topics.acks)
    payload = hit_payload(7)
    for _ in range(3):
        raw.publish(topics.hits, payload)
    assert wait_until(lambda: len(raw.acked_seqs(FLEET)) == 3, PATIENCE_S)
    assert raw.acked_seqs(FLEET) == [7, 7, 7]
    assert db.count_hits() == 1
    assert ingest.stats()["duplicates"] == 2


@pytest.mark.broker
def test_messages_unacked_because_hq_was_down_are_resent_and_stored_exactly_once(
    mqtt_config: MqttConfig, db: HqDatabase, outbox: Outbox, topics: Topics, wait_until
) -> None:
    fast = mqtt_config.model_copy(update={"ack_timeout_s": 0.3})
    uplink = FLEET.uplink(fast, outbox)
    service = IngestService(fast, db, FLEET.hq_keys, client_id="hq-ingest-late")
    try:
        put_hits(outbox, topics, 10)
        uplink.wake()
        assert wait_until(lambda: uplink.stats()["resent"] >= 10, PATIENCE_S)  # nobody acks yet
        assert outbox.depth() == 10
        service.start()
        assert wait_until(lambda: outbox.depth() == 0, PATIENCE_S)
        time.sleep(0.5)  # let resends in flight arrive as duplicates
    finally:
        uplink.stop()
        service.stop()
    assert db.count_hits() == 10
    assert sorted(row["seq"] for row in db.list_hits()) == list(range(1, 11))
    stats = service.stats()
    assert stats["stored"] == 10
    assert stats["received"] == stats["stored"] + stats["duplicates"] + stats["status"]


@pytest.mark.broker
def test_hq_storage_failure_is_not_acked_and_the_device_sends_again(
    mqtt_config: MqttConfig, tmp_db_url: str, outbox: Outbox, topics: Topics, wait_until
) -> None:
    class FlakyDatabase(HqDatabase):
        """Refuses the first two writes, as a full disk would."""

        failures = 2

        def store_batch(self, batch: Sequence[Incoming]) -> list[bool]:
            if self.failures:
                self.failures -= 1
                raise StorageError("simulated: disk full")
            return super().store_batch(batch)

    fast = mqtt_config.model_copy(update={"ack_timeout_s": 0.3})
    flaky = FlakyDatabase(tmp_db_url)
    FLEET.enrol(flaky)
    service = IngestService(fast, flaky, FLEET.hq_keys, client_id="hq-ingest-flaky")
    service.start()
    uplink = FLEET.uplink(fast, outbox)
    try:
        put_hits(outbox, topics, 1)
        uplink.wake()
        assert wait_until(lambda: outbox.depth() == 0, PATIENCE_S)
    finally:
        uplink.stop()
        service.stop()
        flaky.close()
    assert service.stats()["storage_errors"] == 2
    assert service.stats()["stored"] == 1
    assert uplink.stats()["resent"] >= 2


# -- hostile or broken input ------------------------------------------------------


@pytest.mark.broker
def test_malformed_payloads_are_rejected_counted_never_acked_and_valid_hits_still_arrive(
    db: HqDatabase, ingest: IngestService, raw: RawClient, topics: Topics, wait_until
) -> None:
    raw.subscribe(topics.acks)
    other = Topics("raqib/v1", "cam-other-02")
    raw.subscribe(other.acks)
    bad_body = sealed(HIT_KIND, 2, topics.hits, {"plate": 12})
    wrong_kind = sealed("status", 3, topics.hits, hit_body(sample_hit(3)))
    attacks = [
        (topics.hits, b"not json at all"),
        (other.hits, hit_payload(1)),  # cam-test-01 speaking on cam-other-02's topic
        (topics.hits, b"{" + b" " * MAX_MESSAGE_BYTES + b"}"),  # oversized
        (topics.hits, bad_body),
        (topics.hits, wrong_kind),
        (topics.hits, b"\xff\xfe\x00"),
    ]
    for topic, payload in attacks:
        raw.publish(topic, payload)
    raw.publish(topics.hits, hit_payload(10))
    raw.publish(topics.hits, hit_payload(11))
    assert wait_until(lambda: ingest.stats()["stored"] == 2, PATIENCE_S)
    assert ingest.stats()["rejected"] == len(attacks)
    assert wait_until(lambda: len(raw.acked_seqs(FLEET)) >= 2, PATIENCE_S)
    time.sleep(0.2)  # room for a wrong ack to show up
    assert sorted(raw.acked_seqs(FLEET)) == [10, 11]
    assert {row["seq"] for row in db.list_hits()} == {10, 11}
    assert {d["device_id"]: d["received"] for d in db.list_devices()} == {
        DEVICE: 2,
        "cam-other-02": 0,
    }


@pytest.mark.broker
def test_malformed_ack_is_ignored_and_the_message_stays_until_a_real_ack(
    mqtt_config: MqttConfig, outbox: Outbox, raw: RawClient, topics: Topics, wait_until
) -> None:
    uplink = FLEET.uplink(mqtt_config, outbox)
    try:
        (seq,) = put_hits(outbox, topics, 1)
        uplink.wake()
        assert wait_until(lambda: uplink.stats()["sent"] == 1, PATIENCE_S)
        raw.publish(topics.acks, b'{"v": 1, "kind": "ack", "seqs": "all"}')
        assert wait_until(lambda: uplink.stats()["bad_acks"] == 1, PATIENCE_S)
        assert outbox.depth() == 1
        raw.publish(topics.acks, encode_ack(DEVICE, [seq], FLEET.hq_keys.signing))
        assert wait_until(lambda: outbox.depth() == 0, PATIENCE_S)
    finally:
        uplink.stop()


@pytest.mark.broker
@pytest.mark.faults
def test_acks_sent_while_the_device_was_offline_reach_it_when_it_returns(
    mqtt_config: MqttConfig, db: HqDatabase, outbox: Outbox, topics: Topics, wait_until
) -> None:
    patient = mqtt_config.model_copy(update={"ack_timeout_s": 60.0})  # no resend in this test
    service = IngestService(patient, db, FLEET.hq_keys, client_id="hq-ingest-offline")
    service.start()  # creates the worker's persistent session and subscription...
    assert wait_until(lambda: service.connected, PATIENCE_S)
    time.sleep(0.1)
    service.stop()  # ...which keeps receiving hits while the worker is down
    uplink = FLEET.uplink(patient, outbox)
    put_hits(outbox, topics, 5)
    uplink.wake()
    assert wait_until(lambda: uplink.stats()["sent"] == 5, PATIENCE_S)
    time.sleep(0.2)  # PUBACKs: the broker holds the hits for the ingest session
    uplink.stop()  # the device goes offline before HQ answers
    service = IngestService(patient, db, FLEET.hq_keys, client_id="hq-ingest-offline")
    service.start()
    try:
        assert wait_until(lambda: service.stats()["acks_sent"] == 5, PATIENCE_S)
        assert outbox.depth() == 5
        returning = FLEET.uplink(patient, outbox)  # same device id: same session
        try:
            assert wait_until(lambda: outbox.depth() == 0, PATIENCE_S)
            assert returning.stats()["sent"] + returning.stats()["resent"] == 0
        finally:
            returning.stop()
    finally:
        service.stop()
    assert db.count_hits() == 5


# -- the broker comes and goes ------------------------------------------------------


@pytest.mark.broker
@pytest.mark.faults
def test_broker_absent_at_start_messages_wait_in_outbox_and_all_arrive_later(
    tmp_path: Path, tmp_db_url: str, outbox: Outbox, topics: Topics, wait_until
) -> None:
    port = free_port()
    config = MqttConfig(port=port, keepalive_s=5, ack_timeout_s=2.0, reconnect_max_s=1.0)
    uplink = FLEET.uplink(config, outbox)  # must not raise with no broker
    try:
        put_hits(outbox, topics, 30)
        uplink.wake()
        time.sleep(0.3)
        assert not uplink.connected
        assert outbox.depth() == 30
        with LocalBroker(port=port, workdir=tmp_path / "late-broker"), HqDatabase(tmp_db_url) as db:
            FLEET.enrol(db)
            service = IngestService(config, db, FLEET.hq_keys, client_id="hq-ingest-later")
            service.start()
            try:
                assert wait_until(lambda: outbox.depth() == 0, PATIENCE_S)
            finally:
                service.stop()
            assert db.count_hits() == 30
            assert device_row(db)["gaps"] == 0
    finally:
        uplink.stop()


@pytest.mark.broker
@pytest.mark.faults
@pytest.mark.parametrize("crash", [False, True], ids=["clean-restart", "crash-restart"])
def test_broker_restart_mid_flow_loses_nothing_and_duplicates_nothing(
    crash: bool,
    broker: LocalBroker,
    mqtt_config: MqttConfig,
    db: HqDatabase,
    ingest: IngestService,
    outbox: Outbox,
    topics: Topics,
    wait_until,
) -> None:
    fast = mqtt_config.model_copy(update={"ack_timeout_s": 1.0})
    uplink = FLEET.uplink(fast, outbox)
    try:
        assert wait_until(lambda: uplink.connected, PATIENCE_S)
        put_hits(outbox, topics, 100)
        uplink.wake()
        assert wait_until(lambda: db.count_hits() > 0, PATIENCE_S)
        broker.restart(kill=crash)
        put_hits(outbox, topics, 100)
        uplink.wake()
        body = {"online": True, "queue_depth": 3}
        outbox.put(
            "status",
            topics.status,
            FLEET.sealer().maker("status", topics.status, body),
            PRIORITY_STATUS,
        )
        assert wait_until(lambda: db.count_hits() == 200 and outbox.depth() == 0, PATIENCE_S * 2)
        # Checked while the uplink runs: stopping it publishes "offline", rightly.
        assert wait_until(
            lambda: device_row(db)["status"] == {"online": True, "queue_depth": 3}, PATIENCE_S
        )
    finally:
        uplink.stop()
    assert sorted(row["seq"] for row in db.list_hits(limit=1000)) == list(range(1, 201))
    assert ingest.stats()["rejected"] == 0
    assert device_row(db)["gaps"] == 0


# -- the HQ database on its own ---------------------------------------------------------


def record(n: int) -> HitRecord:
    return parse_hit_body(hit_body(sample_hit(n)))


def test_store_hit_is_idempotent(db: HqDatabase) -> None:
    assert db.store_hit(DEVICE, 1, record(1), 10.0) is True
    assert db.store_hit(DEVICE, 1, record(1), 11.0) is False
    assert db.count_hits() == 1
    assert db.list_hits()[0]["received_at"] == 10.0


def test_message_of_a_device_that_is_not_enrolled_is_not_stored(db: HqDatabase) -> None:
    stranger = Incoming("cam-stranger", 1, HIT_KIND, 1.0, 2.0, record=record(1))
    mine = Incoming(DEVICE, 1, HIT_KIND, 1.0, 2.0, record=record(1))
    assert db.store_batch([stranger, mine]) == [None, True]
    with pytest.raises(StorageError, match="not enrolled"):
        db.store_hit("cam-stranger", 2, record(2), 3.0)
    assert db.count_hits() == 1


def test_same_seq_from_two_devices_are_two_hits(db: HqDatabase) -> None:
    FLEET.enrol(db, "cam-a1", "cam-b2")
    assert db.store_hit("cam-a1", 1, record(1), 10.0)
    assert db.store_hit("cam-b2", 1, record(1), 10.0)
    assert db.count_hits() == 2
    assert [d["device_id"] for d in db.list_devices()] == [
        "cam-a1",
        "cam-b2",
        "cam-other-02",
        DEVICE,
    ]


def test_gaps_count_missing_sequence_numbers_and_late_arrivals_fill_them(db: HqDatabase) -> None:
    def gaps() -> int:
        return int(device_row(db)["gaps"])

    db.store_hit(DEVICE, 1, record(1), 1.0)
    db.store_hit(DEVICE, 2, record(2), 1.5)
    assert gaps() == 0
    db.store_hit(DEVICE, 6, record(6), 2.0)  # 3, 4, 5 missing
    assert gaps() == 3
    db.store_hit(DEVICE, 4, record(4), 3.0)  # a late resend
    assert gaps() == 2
    db.store_hit(DEVICE, 4, record(4), 3.5)  # a replay changes nothing
    assert gaps() == 2
    ledger = Incoming(DEVICE, 5, "ledger", 1.0, 4.0, body={"sha256": "00"})
    assert db.store_batch([ledger]) == [True]  # seqs are shared by every queued kind
    assert gaps() == 1
    device = device_row(db)
    assert (device["last_seq"], device["first_seen"], device["last_seen"]) == (6, 1.0, 4.0)


def test_list_hits_is_newest_first_filtered_and_limited(db: HqDatabase) -> None:
    for seq in range(1, 6):
        db.store_hit(DEVICE, seq, record(seq), float(seq))
    db.store_hit("cam-other-02", 1, record(1), 9.0)
    assert [h["seq"] for h in db.list_hits(DEVICE, limit=3)] == [5, 4, 3]
    assert [h["seq"] for h in db.list_hits(DEVICE, limit=2, oldest_first=True)] == [1, 2]
    assert db.count_hits() == 6


def test_hq_database_directory_that_cannot_be_created_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot create"):
        HqDatabase(f"sqlite:///{blocker / 'sub' / 'hq.sqlite'}")


# -- the topic scheme ---------------------------------------------------------------------


def test_topics_follow_the_documented_scheme() -> None:
    t = Topics("raqib/v1", "cam-01")
    assert (t.hits, t.acks, t.status, t.commands, t.watchlist) == (
        "raqib/v1/devices/cam-01/hits",
        "raqib/v1/devices/cam-01/acks",
        "raqib/v1/devices/cam-01/status",
        "raqib/v1/devices/cam-01/commands",
        "raqib/v1/watchlist",
    )
    assert hq_hits_subscription("raqib/v1") == "$share/hq-ingest/raqib/v1/devices/+/hits"
    assert hq_hits_subscription("raqib/v1", "eu") == "$share/eu/raqib/v1/devices/+/hits"
    assert device_id_from_topic("raqib/v1", t.hits) == "cam-01"


@pytest.mark.parametrize(
    "topic",
    [
        "raqib/v2/devices/cam-01/hits",
        "raqib/v1/devices/cam-01",
        "raqib/v1/devices/cam-01/hits/extra",
        "raqib/v1/devices/cam-01/secrets",
        "raqib/v1/devices/CAM+01/hits",
        "raqib/v1/devices//hits",
        "raqib/v1/watchlist",
    ],
)
def test_topic_outside_the_scheme_names_no_device(topic: str) -> None:
    with pytest.raises(PayloadError):
        device_id_from_topic("raqib/v1", topic)


@pytest.mark.parametrize("device_id", ["", "a", "cam/01", "cam+", "cam#", "Cam-01"])
def test_device_id_that_would_break_topics_is_refused(device_id: str) -> None:
    with pytest.raises(PayloadError):
        Topics("raqib/v1", device_id)


# -- status: heartbeat, last will, replays ------------------------------------------------


def device_status(db: HqDatabase) -> tuple[object, object]:
    row = device_row(db)
    return row["online"], row["status"]


@pytest.mark.broker
def test_heartbeat_is_retained_and_recorded_without_using_a_sequence_number(
    mqtt_config: MqttConfig,
    db: HqDatabase,
    ingest: IngestService,
    outbox: Outbox,
    raw: RawClient,
    topics: Topics,
    wait_until,
) -> None:
    figures = {"battery_pct": 81.5, "storage_free_mb": 1200, "temperature_c": 47.0}
    uplink = FLEET.uplink(mqtt_config, outbox, status_source=lambda: dict(figures), heartbeat_s=1.0)
    try:
        assert wait_until(lambda: device_status(db)[0] is True, PATIENCE_S)
        status = device_row(db)["status"]
        assert isinstance(status, dict)
        assert status["battery_pct"] == 81.5
        assert status["queue_depth"] == 0
        late = RawClient(mqtt_config, "late-dashboard")  # a later subscriber sees it at once
        try:
            late.subscribe(topics.status)
            assert wait_until(lambda: len(late.received) >= 1, PATIENCE_S)
        finally:
            late.close()
    finally:
        uplink.stop()
    assert wait_until(lambda: device_status(db)[0] is False, PATIENCE_S)  # clean stop: offline
    assert device_row(db)["last_seq"] == 0  # heartbeats never count as gaps
    assert device_row(db)["gaps"] == 0


@pytest.mark.broker
def test_vanished_device_is_marked_offline_by_its_last_will_and_an_old_will_replayed_is_ignored(
    mqtt_config: MqttConfig,
    db: HqDatabase,
    ingest: IngestService,
    outbox: Outbox,
    raw: RawClient,
    topics: Topics,
    tmp_path: Path,
    wait_until,
) -> None:
    raw.subscribe(topics.status)
    first = FLEET.uplink(mqtt_config, outbox, heartbeat_s=1.0)
    assert wait_until(lambda: device_status(db)[0] is True, PATIENCE_S)
    first._client.loop_stop()  # the device dies: no DISCONNECT packet...
    first._client.socket().close()  # ...its TCP connection just drops
    assert wait_until(lambda: device_status(db)[0] is False, PATIENCE_S)
    first._stopping.set()  # end its sender thread too
    first._wake.set()
    old_will = raw.received[-1][1]
    with Outbox(tmp_path / "second.sqlite") as second_box:
        second = FLEET.uplink(mqtt_config, second_box, heartbeat_s=1.0)
        try:
            assert wait_until(lambda: device_status(db)[0] is True, PATIENCE_S)
            statuses = ingest.stats()["status"]
            raw.publish(topics.status, old_will)  # an attacker replays yesterday's will
            assert wait_until(lambda: ingest.stats()["status"] > statuses, PATIENCE_S)
            assert device_status(db)[0] is True
        finally:
            second.stop()


# -- the HQ command line ----------------------------------------------------------------


def test_hq_cli_keygen_enrol_devices_and_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import main
    from agent.pki import public_pem

    config = tmp_path / "hq.toml"
    config.write_text(
        f'[hq]\ndatabase_url = "sqlite:///{tmp_path / "hq.sqlite"}"\n'
        f'keys_dir = "{tmp_path / "keys"}"\n',
        encoding="utf-8",
    )
    pub = tmp_path / "cam.pub"
    pub.write_bytes(public_pem(FLEET.key("cam-cli-01").public_key()))
    assert main(["hq", "keygen", "--config", str(config)]) == 0
    assert (tmp_path / "keys" / "hq-encryption.pub").exists()
    assert main(["hq", "enrol-device", "cam-cli-01", str(pub), "--config", str(config)]) == 0
    assert main(["hq", "revoke-device", "cam-cli-01", "--config", str(config)]) == 0
    assert main(["hq", "revoke-device", "cam-nobody", "--config", str(config)]) == 1
    capsys.readouterr()
    assert main(["hq", "devices", "--config", str(config)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert '"device_id": "cam-cli-01"' in line
    assert '"revoked": true' in line
    assert main(["hq", "broker-acl", "--config", str(config)]) == 0
    assert "pattern write raqib/v1/devices/%u/hits" in capsys.readouterr().out


@pytest.mark.broker
def test_device_stops_adding_to_its_backlog_while_hq_does_not_ack(
    mqtt_config: MqttConfig, outbox: Outbox, wait_until
) -> None:
    patient = mqtt_config.model_copy(update={"ack_timeout_s": 60.0})
    uplink = FLEET.uplink(patient, outbox, window=10, max_unacked=20)
    try:
        put_hits(outbox, Topics("raqib/v1", DEVICE), 50)
        uplink.wake()
        assert wait_until(lambda: uplink.stats()["sent"] == 20, PATIENCE_S)
        time.sleep(0.5)
        assert uplink.stats()["sent"] == 20  # 30 wait in the outbox until acks come
    finally:
        uplink.stop()
