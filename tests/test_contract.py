"""Contract tests: what the device really sends is what HQ's parsers accept.

No hand-written message here. A real agent (shipped models, sample clip, real
pipeline, outbox, uplink, evidence ledger, status publisher) runs against a
real Mosquitto; the officer presses the record button after an alert and HQ
sends signed commands. Every message the device published is taken off the
wire and fed through HQ's own ``open_uplink`` (topic, envelope, signature,
body parsers), and the real ingest stores them. If either side changes a
message kind without the other, a test here fails, as the heartbeat fields
``watchlist_stale`` and ``watchlist_last_refusal`` would have.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from transport_kit import RawClient

from agent.broker import LocalBroker
from agent.config import DEFAULT_SAMPLES_DIR, MqttConfig, RaqibConfig, parse_config
from agent.daemon import Agent
from agent.envelope import decode_message
from agent.evidence.entry import check_ledger_message
from agent.messages import (
    COMMAND_REPLY_KIND,
    DISPOSITION_KIND,
    HIT_KIND,
    LEDGER_KIND,
    STATUS_FIELDS,
    STATUS_KIND,
    parse_command_reply_body,
    parse_disposition_body,
)
from agent.pki import HqKeys
from agent.transport.topics import UPLINK_CHANNELS, channel_from_topic
from agent.watchlist.provision import FleetSigner, provision_watchlist
from firmware_glue.button import SimulatedButton
from hq.audit import Chain
from hq.commands import CommandSender
from hq.db import HqDatabase
from hq.enrol import enrol_local
from hq.ingest import IngestService, Opened, open_uplink

pytestmark = pytest.mark.broker

DEVICE = "cam-contract-01"
OFFICER = "B-4711"
PREFIX = "raqib/v1"


@dataclass
class Wire:
    """What one real device session put on the wire, and HQ's database after it."""

    config: RaqibConfig
    keys: HqKeys
    db: HqDatabase
    agent: Agent
    messages: list[tuple[str, bytes]]
    will: bytes
    command_ids: dict[str, str] = field(default_factory=dict)

    def opened(self) -> list[Opened]:
        key = self.db.device_keys()[DEVICE]
        assert key is not None

        def key_of(device: str) -> object:
            assert device == DEVICE
            return key

        return [
            open_uplink(
                PREFIX,
                topic,
                payload,
                time.time(),
                hq_key=self.keys.encryption,
                key_of=key_of,  # type: ignore[arg-type]
            )
            for topic, payload in self.messages
        ]

    def by_kind(self) -> dict[str, list[Opened]]:
        kinds: dict[str, list[Opened]] = defaultdict(list)
        for item in self.opened():
            kinds[item.envelope.kind].append(item)
        return kinds


def _config(tmp: Path, port: int) -> RaqibConfig:
    config = parse_config(
        {
            "device": {"id": DEVICE, "state_dir": str(tmp / "device")},
            "capture": {"uri": str(DEFAULT_SAMPLES_DIR / "street_clip.mp4")},
            "mqtt": {"port": port, "ack_timeout_s": 2.0, "reconnect_max_s": 1.0},
            "hq": {
                "database_url": f"sqlite:///{tmp / 'hq.sqlite'}",
                "keys_dir": str(tmp / "hq-keys"),
            },
            "status": {"metrics_port": 0},
            "evidence": {"officer": OFFICER, "min_free_mb": 20, "button": "simulated"},
        }
    )
    enrol_local(config)
    signer = FleetSigner.load_or_create(tmp / "hq-watchlist", "contract-fleet", time.time())
    provision_watchlist(config, signer, DEFAULT_SAMPLES_DIR / "watchlist.csv", time.time())
    return config


def _wait(predicate: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _device_session(config: RaqibConfig, mqtt: MqttConfig, db: HqDatabase, wire: Wire) -> None:
    agent = wire.agent
    agent.start()
    try:
        agent.run(until_end=True)
        assert agent.evidence is not None
        button = agent.evidence.button
        assert isinstance(button, SimulatedButton)
        button.press(held_s=0.2)  # the officer confirms the latest alert
        with CommandSender(mqtt, db, wire.keys) as sender:
            for action, args in (
                ("send_status", {}),
                ("disposition", {"verdict": "rejected", "hit_seq": 1, "note": "wrong car"}),
                ("stop_recording", {}),
            ):
                wire.command_ids[action] = sender.send(
                    DEVICE, action, args, issued_by="contract-test"
                )
        assert _wait(lambda: all(r["reply_ok"] is not None for r in db.list_commands(DEVICE)), 20)
        agent.evidence.stop()  # seals the open segment: its ledger entry goes out too
        assert agent.wait_delivered(20)
        wire.will = bytes(agent.uplink._client._will_payload)  # what the broker would say
    finally:
        agent.shutdown()


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    tmp = tmp_path_factory.mktemp("contract")
    with LocalBroker(workdir=tmp / "broker") as broker:
        config = _config(tmp, broker.port)
        mqtt = config.mqtt
        keys = HqKeys.load(config.hq.keys_dir)
        db = HqDatabase(config.hq.database_url)
        tap = RawClient(mqtt, "contract-tap")
        tap.subscribe(f"{PREFIX}/devices/+/+")
        ingest = IngestService(mqtt, db, keys)
        ingest.start()
        assert _wait(lambda: ingest.connected)
        made = Wire(config, keys, db, Agent(config), [], b"")
        try:
            _device_session(config, mqtt, db, made)
            time.sleep(0.5)  # the offline status published at stop
        finally:
            ingest.stop()
            tap.close()
        made.messages = [
            (topic, payload)
            for topic, payload in tap.received
            if channel_from_topic(PREFIX, topic)[1] in UPLINK_CHANNELS
        ]
        yield made
        db.close()


def test_every_kind_the_device_sends_is_accepted_by_hqs_parser(wire: Wire) -> None:
    kinds = wire.by_kind()  # open_uplink raises PayloadError for anything HQ refuses
    assert set(kinds) == {HIT_KIND, LEDGER_KIND, STATUS_KIND, DISPOSITION_KIND, COMMAND_REPLY_KIND}


def test_hits_carry_what_hq_stores_including_the_model_version(wire: Wire) -> None:
    hits = wire.by_kind()[HIT_KIND]
    assert len({h.envelope.seq for h in hits}) == wire.agent.stats.hits_raised > 0
    for item in hits:
        assert item.incoming is not None and item.incoming.record is not None
        record = item.incoming.record
        assert record.crop_jpeg[:2] == b"\xff\xd8"
        assert record.model_version == wire.agent._model_version is not None
    stored = wire.db.list_hits()
    assert {row["model_version"] for row in stored} == {wire.agent._model_version}


def test_heartbeats_have_no_field_hq_would_leave_out(wire: Wire) -> None:
    statuses = [s.status for s in wire.by_kind()[STATUS_KIND]]
    assert len(statuses) >= 3  # at connect, on HQ's send_status, offline at stop
    for status in statuses:
        assert status is not None
        assert status.ignored == (), f"device sends fields HQ does not keep: {status.ignored}"
    online = [s for s in statuses if s is not None and s.online]
    assert online, "no heartbeat seen"
    figures = online[-1].fields
    for name in ("battery_pct", "storage_free_mb", "watchlist_version", "model_version"):
        assert figures[name] is not None, name
    assert set(figures) <= set(STATUS_FIELDS)


def test_the_last_will_is_accepted_and_keeps_the_heartbeat_figures(wire: Wire) -> None:
    topic = f"{PREFIX}/devices/{DEVICE}/status"
    header = decode_message(wire.will)
    assert (header.kind, header.seq) == (STATUS_KIND, 0)
    key = wire.db.device_keys()[DEVICE]
    assert key is not None
    opened = open_uplink(
        PREFIX, topic, wire.will, time.time(), hq_key=wire.keys.encryption, key_of=lambda _d: key
    )
    assert opened.status is not None
    assert opened.status.online is False and opened.status.ignored == ()
    (device,) = wire.db.list_devices()
    assert device["online"] is False
    assert device["battery_pct"] is not None
    assert device["storage_free_mb"] is not None
    assert device["watchlist_version"] == 1
    assert device["watchlist_stale"] is False


def test_ledger_entries_verify_as_the_devices_chain(wire: Wire) -> None:
    entries = wire.by_kind()[LEDGER_KIND]
    bodies = []
    for item in entries:
        assert item.incoming is not None and item.incoming.body is not None
        check_ledger_message(DEVICE, item.incoming.body)
        bodies.append(item.incoming.body)
    chain = Chain.build(DEVICE, wire.db.device_keys()[DEVICE], bodies)
    assert chain.malformed == 0
    assert chain.link_broken_before(max(chain.entries)) is None
    assert chain.bad_signature_up_to(max(chain.entries)) is None


def test_officer_dispositions_from_button_and_command_reach_the_dispositions_table(
    wire: Wire,
) -> None:
    sent = [parse_disposition_body(item.envelope.body) for item in wire.by_kind()[DISPOSITION_KIND]]
    assert sorted((d.source, d.verdict) for d in sent) == [
        ("button", "confirmed"),
        ("command", "rejected"),
    ]
    stored = wire.db.list_dispositions(DEVICE)
    assert sorted((r["verdict"], r["hit_seq"]) for r in stored) == sorted(
        (d.verdict, d.hit_seq) for d in sent
    )
    assert {r["source"] for r in stored} == {"officer"}
    assert {r["actor"] for r in stored} == {OFFICER}
    assert ("rejected", 1) in {(r["verdict"], r["hit_seq"]) for r in stored}


def test_command_replies_answer_hqs_commands_and_are_stored(wire: Wire) -> None:
    replies = [
        parse_command_reply_body(item.envelope.body) for item in wire.by_kind()[COMMAND_REPLY_KIND]
    ]
    assert {r.command_id: r.action for r in replies} == {
        command_id: action for action, command_id in wire.command_ids.items()
    }
    rows = {r["command_id"]: r for r in wire.db.list_commands(DEVICE)}
    for action, command_id in wire.command_ids.items():
        assert rows[command_id]["reply_ok"] is True, (action, rows[command_id])
    assert rows[wire.command_ids["send_status"]]["reply_detail"] == "status sent"


def test_the_ledger_names_the_command_that_stopped_recording(wire: Wire) -> None:
    actions = [
        item.incoming.body["action"]
        for item in wire.by_kind()[LEDGER_KIND]
        if item.incoming is not None
        and item.incoming.body is not None
        and item.incoming.body["type"] == "action"
    ]
    stops = [a for a in actions if a["by"] == "command"]
    assert stops, actions
    assert stops[0]["detail"]["command_id"] == wire.command_ids["stop_recording"]
