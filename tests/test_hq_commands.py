"""HQ's side of issue 13: dispositions, remote commands and heartbeats in the database,
and commands signed and published by HQ (real SQLite, real Mosquitto)."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import WaitUntil
from transport_kit import DEVICE, PREFIX, Fleet, RawClient, sample_hit

from agent.broker import free_port
from agent.config import MqttConfig
from agent.envelope import decode_command
from agent.errors import PayloadError, StorageError, TransportError
from agent.messages import STATUS_KIND, command_reply_body, hit_body, parse_hit_body
from agent.pki import HqKeys
from agent.transport.topics import Topics
from hq.commands import CommandSender, sign_command
from hq.db import HqDatabase
from hq.ingest import IngestService, open_uplink


@pytest.fixture
def db(tmp_db_url: str) -> Iterator[HqDatabase]:
    # closed explicitly: Python 3.13 warns (an error here) about a sqlite3 connection left to GC
    database = HqDatabase(tmp_db_url)
    yield database
    database.close()


def command_row(command_id: str = "c0ffee00", device: str = DEVICE) -> dict[str, object]:
    return {
        "command_id": command_id,
        "device_id": device,
        "action": "start_recording",
        "args": {"reason": "test"},
        "issued_by": "op-1",
        "issued_at": 1000.0,
        "expires_at": 1060.0,
    }


def test_dispositions_are_stored_and_listed_per_device_and_hit(db: HqDatabase) -> None:
    first = db.record_disposition(
        "cam-a", 7, source="operator", verdict="dispatched", note="unit 4", actor="op", at=1.0
    )
    db.record_disposition(
        "cam-a", 8, source="officer", verdict="confirmed", note="", actor="B-1", at=2.0
    )
    db.record_disposition(
        "cam-b", 7, source="operator", verdict="false_read", note="", actor="op", at=3.0
    )
    assert first >= 1
    assert [d["hit_seq"] for d in db.list_dispositions("cam-a")] == [7, 8]
    only = db.list_dispositions("cam-a", hit_seq=7)
    assert len(only) == 1
    assert only[0]["verdict"] == "dispatched"
    assert only[0]["note"] == "unit 4"
    assert len(db.list_dispositions()) == 3


@pytest.mark.parametrize(("source", "verdict"), [("robot", "confirmed"), ("operator", "maybe")])
def test_a_disposition_outside_the_vocabulary_is_refused(
    db: HqDatabase, source: str, verdict: str
) -> None:
    with pytest.raises(ValueError, match="not one of"):
        db.record_disposition("cam-a", 1, source=source, verdict=verdict, note="", actor="x", at=1)
    assert db.list_dispositions() == []


def test_false_read_rate_counts_each_hits_latest_verdict_per_device_and_model(
    db: HqDatabase,
) -> None:
    fleet = Fleet()
    fleet.enrol(db, "cam-a", "cam-b")
    for device, seq, model in (("cam-a", 1, "rec-2"), ("cam-a", 2, "rec-2"), ("cam-b", 1, None)):
        record = parse_hit_body(hit_body(sample_hit(seq, device), model_version=model))
        db.store_hit(device, seq, record, received_at=time.time())

    def dispose(device: str, seq: int, verdict: str) -> None:
        db.record_disposition(
            device, seq, source="operator", verdict=verdict, note="", actor="op", at=1
        )

    dispose("cam-a", 1, "false_read")
    dispose("cam-a", 1, "confirmed")  # corrected: the latest verdict counts
    dispose("cam-a", 2, "false_read")
    dispose("cam-b", 1, "rejected")
    rates = db.false_read_rates()
    assert rates["by_device"]["cam-a"] == {"dispositioned": 2, "false_reads": 1, "rate": 0.5}
    assert rates["by_device"]["cam-b"] == {"dispositioned": 1, "false_reads": 1, "rate": 1.0}
    assert rates["by_model_version"]["rec-2"]["rate"] == 0.5
    assert rates["by_model_version"]["unknown"]["dispositioned"] == 1


def test_command_reply_is_kept_once_and_only_for_the_device_it_was_sent_to(
    db: HqDatabase,
) -> None:
    db.record_command(command_row())
    assert (
        db.record_command_reply("c0ffee00", True, "started", 1001.0, device_id="cam-other") is False
    )
    assert db.record_command_reply("c0ffee00", True, "started", 1001.0, device_id=DEVICE) is True
    assert db.record_command_reply("c0ffee00", False, "late duplicate", 1002.0) is False
    assert db.record_command_reply("no-such-cmd", True, "", 1.0) is False
    (row,) = db.list_commands(DEVICE)
    assert row["args"] == {"reason": "test"}
    assert (row["reply_ok"], row["reply_detail"], row["replied_at"]) == (True, "started", 1001.0)


def test_the_same_command_id_cannot_be_recorded_twice(db: HqDatabase) -> None:
    db.record_command(command_row())
    with pytest.raises(StorageError, match="already recorded"):
        db.record_command(command_row())


def test_commands_are_listed_newest_first_and_unanswered_ones_have_no_reply(
    db: HqDatabase,
) -> None:
    for n in range(3):
        row = command_row(f"cmd-0000{n}")
        row["issued_at"] = 1000.0 + n
        db.record_command(row)
    rows = db.list_commands(limit=2)
    assert [r["command_id"] for r in rows] == ["cmd-00002", "cmd-00001"]
    assert rows[0]["reply_ok"] is None


def test_a_database_made_before_model_versions_gets_the_column_added(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with HqDatabase(f"sqlite:///{path}"):
        pass
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE hits DROP COLUMN model_version")
    conn.commit()
    conn.close()
    with HqDatabase(f"sqlite:///{path}") as reopened:
        assert reopened.list_hits() == []
    with closing(sqlite3.connect(path)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(hits)")]
    assert "model_version" in columns


def test_a_last_will_keeps_the_figures_of_the_last_heartbeat(db: HqDatabase) -> None:
    Fleet().enrol(db)
    beat = {"online": True, "connected_at": 10.0, "battery_pct": 80, "watchlist_version": 3}
    assert db.record_status(DEVICE, beat, 20.0, received_at=20.0)
    assert db.record_status(DEVICE, {"online": False, "connected_at": 10.0}, 11.0, received_at=30.0)
    (device,) = db.list_devices()
    assert device["online"] is False
    assert device["battery_pct"] == 80
    assert device["watchlist_version"] == 3
    assert device["status"]["online"] is False


# -- signing and sending -----------------------------------------------------------------


def test_a_signed_command_verifies_on_the_device_it_names() -> None:
    keys = HqKeys.generate()
    command_id, payload = sign_command(keys, DEVICE, "send_status", {}, 1000.0, ttl_s=30)
    command = decode_command(payload, DEVICE, keys.public().signing)
    assert (command.command_id, command.action) == (command_id, "send_status")
    assert command.expires_at - command.issued_at == 30
    other_id, _ = sign_command(keys, DEVICE, "send_status", {}, 1000.0)
    assert other_id != command_id


@pytest.mark.parametrize(
    ("action", "ttl_s", "message"),
    [("format_disk", 60.0, "not one of"), ("send_status", 7200.0, "lifetime")],
)
def test_hq_refuses_to_sign_an_unknown_action_or_a_long_lived_command(
    action: str, ttl_s: float, message: str
) -> None:
    with pytest.raises(PayloadError, match=message):
        sign_command(HqKeys.generate(), DEVICE, action, {}, 1000.0, ttl_s=ttl_s)


def test_command_sender_publishes_on_the_devices_commands_topic_and_records_it(
    db: HqDatabase, mqtt_config: MqttConfig, wait_until: WaitUntil
) -> None:
    keys = HqKeys.generate()
    device = RawClient(mqtt_config, "watcher")
    device.subscribe(Topics(PREFIX, DEVICE).commands)
    try:
        with CommandSender(mqtt_config, db, keys) as sender:
            command_id = sender.send(DEVICE, "start_recording", {"why": "test"}, issued_by="op-7")
        assert wait_until(lambda: len(device.received) == 1)
    finally:
        device.close()
    command = decode_command(device.received[0][1], DEVICE, keys.public().signing)
    assert command.command_id == command_id
    assert command.args == {"why": "test"}
    (row,) = db.list_commands(DEVICE)
    assert row["issued_by"] == "op-7"
    assert row["reply_ok"] is None


def test_a_command_hq_could_not_publish_is_recorded_as_failed(
    db: HqDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hq.commands.CONNECT_TIMEOUT_S", 0.5)
    nowhere = MqttConfig(host="127.0.0.1", port=free_port(), reconnect_max_s=1)
    with (
        CommandSender(nowhere, db, HqKeys.generate()) as sender,
        pytest.raises(TransportError, match="not reachable"),
    ):
        sender.send(DEVICE, "send_status", issued_by="op")
    (row,) = db.list_commands()
    assert row["reply_ok"] is False
    assert "not sent by HQ" in row["reply_detail"]
    assert json.dumps(row["args"]) == "{}"


@pytest.mark.broker
def test_heartbeat_of_a_newer_device_is_kept_and_its_extra_fields_logged_once(
    db: HqDatabase,
    mqtt_config: MqttConfig,
    wait_until: WaitUntil,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hq.ingest")
    fleet = Fleet()
    fleet.enrol(db)
    ingest = IngestService(mqtt_config, db, fleet.hq_keys)
    ingest.start()
    device = RawClient(mqtt_config, "newer-device")
    topic = Topics(PREFIX, DEVICE).status
    try:
        assert wait_until(lambda: ingest.connected)
        time.sleep(0.2)
        for battery in (71, 70):
            body = {
                "online": True,
                "connected_at": 1.0,
                "battery_pct": battery,
                "storage_free_mb": 900,
                "watchlist_version": 12,
                "temperature_c": "hot",  # a known field of another type: left out
                "solar_panel_w": 3.5,  # a field this HQ does not know yet
            }
            device.publish(topic, fleet.sealer().seal(STATUS_KIND, 0, topic, body))
            assert wait_until(lambda b=battery: db.list_devices()[0]["battery_pct"] == b)
    finally:
        device.close()
        ingest.stop()
    (row,) = db.list_devices()
    assert (row["storage_free_mb"], row["watchlist_version"], row["online"]) == (900, 12, True)
    assert row["temperature_c"] is None
    assert "solar_panel_w" not in row["status"]
    assert ingest.stats()["rejected"] == 0
    warnings = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(warnings) == 1
    assert "solar_panel_w" in warnings[0] and "temperature_c" in warnings[0]


@pytest.mark.security
@pytest.mark.parametrize(
    ("kind", "channel"),
    [("disposition", "hits"), ("command_reply", "ledger"), ("hit", "events"), ("status", "events")],
)
def test_a_message_on_a_channel_that_does_not_carry_its_kind_is_refused(
    kind: str, channel: str
) -> None:
    fleet = Fleet()
    topic = f"{PREFIX}/devices/{DEVICE}/{channel}"
    payload = fleet.sealer().seal(kind, 1, topic, {"online": True})
    with pytest.raises(PayloadError, match=f"message kind '{kind}' on a {channel} topic"):
        open_uplink(
            PREFIX,
            topic,
            payload,
            1.0,
            hq_key=fleet.hq_keys.encryption,
            key_of=lambda _d: fleet.key().public_key(),
        )


@pytest.mark.security
def test_a_device_cannot_answer_another_devices_command_through_the_ingest(
    db: HqDatabase,
) -> None:
    fleet = Fleet()
    fleet.enrol(db, DEVICE, "cam-intruder")
    db.record_command(command_row("for-cam-test"))
    topic = f"{PREFIX}/devices/cam-intruder/events"
    body = command_reply_body("for-cam-test", "start_recording", True, "done", 1.0)
    payload = fleet.sealer("cam-intruder").seal("command_reply", 1, topic, body)
    opened = open_uplink(
        PREFIX,
        topic,
        payload,
        2.0,
        hq_key=fleet.hq_keys.encryption,
        key_of=lambda d: fleet.key(d).public_key(),
    )
    assert opened.incoming is not None
    assert db.store_batch([opened.incoming]) == [True]  # kept as the intruder's message
    assert db.list_commands()[0]["reply_ok"] is None  # but answers nothing
