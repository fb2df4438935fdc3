"""HQ-signed remote commands on the device and the officer's disposition of an alert.

Each refused attack has its own test: forged, replayed (also after a restart),
stale, from the future, meant for another device, tampered. The device says why
in one log line, sends no reply, and goes on handling the next command.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
from transport_kit import RawClient

from agent import envelope
from agent.broker import LocalBroker
from agent.commands import CommandService, SeenCommands, device_handlers
from agent.config import DEFAULT_SAMPLES_DIR, RaqibConfig, parse_config, with_overrides
from agent.daemon import Agent
from agent.disposition import DispositionDesk
from agent.envelope import CLOCK_SKEW_S, Command, encode_command
from agent.errors import StorageError
from agent.evidence.service import EvidenceService
from agent.messages import parse_command_reply_body, parse_disposition_body
from agent.pki import HqKeys, load_or_create_device_key
from agent.transport.topics import Topics
from firmware_glue.button import GpioButton, SimulatedButton
from hq.commands import sign_command
from hq.db import HqDatabase
from hq.enrol import enrol_local
from hq.ingest import IngestService

DEVICE = "cam-cmd-01"
PREFIX_V1 = "raqib/v1"
NOW = 1_764_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class DeviceRig:
    """A device's command service with recording handlers that note what they were asked."""

    def __init__(self, tmp_path: Path, keys: HqKeys, clock: FakeClock) -> None:
        self.path = tmp_path / "commands.sqlite"
        self.keys = keys
        self.clock = clock
        self.recording: list[bool] = []
        self.status_requests = 0
        self.replies: list[dict[str, Any]] = []
        self.dispositions: list[dict[str, Any]] = []
        self.desk = DispositionDesk(self.dispositions.append, officer="B-7", clock=clock)
        self.service = self._service()

    def _record(self, start: bool, _detail: dict[str, Any]) -> bool:
        self.recording.append(start)
        return True

    def _send_status(self) -> None:
        self.status_requests += 1

    def _service(self) -> CommandService:
        handlers = device_handlers(self._record, self._send_status, self.desk.from_command)
        return CommandService(
            DEVICE,
            self.keys.public().signing,
            SeenCommands(self.path),
            handlers,
            self.replies.append,
            clock=self.clock,
        )

    def restart(self) -> None:
        self.service.stop()
        self.service = self._service()

    def sign(self, action: str, args: dict[str, Any] | None = None, **kw: Any) -> bytes:
        _id, payload = sign_command(self.keys, DEVICE, action, args or {}, self.clock.now, **kw)
        return payload


@pytest.fixture
def rig(tmp_path: Path) -> DeviceRig:
    made = DeviceRig(tmp_path, HqKeys.generate(), FakeClock())
    yield made  # type: ignore[misc]
    made.service.stop()


def refused(rig: DeviceRig, payload: bytes, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent.commands"):
        assert rig.service.handle(payload) is None
    lines = [r.getMessage() for r in caplog.records if "remote command refused" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    assert reason in lines[0]
    # and the device still takes a genuine command afterwards
    assert rig.service.handle(rig.sign("send_status")) is not None


def test_a_genuine_command_is_executed_and_answered(rig: DeviceRig) -> None:
    reply = rig.service.handle(rig.sign("start_recording"))
    assert reply is not None
    record = parse_command_reply_body(reply)
    assert (record.action, record.ok) == ("start_recording", True)
    assert rig.recording == [True]
    rig.service.handle(rig.sign("stop_recording"))
    rig.service.handle(rig.sign("send_status"))
    assert rig.recording == [True, False]
    assert rig.status_requests == 1
    assert [r["ok"] for r in rig.replies] == [True, True, True]


@pytest.mark.security
def test_forged_command_signed_by_another_key_is_refused(
    rig: DeviceRig, caplog: pytest.LogCaptureFixture
) -> None:
    _id, forged = sign_command(HqKeys.generate(), DEVICE, "stop_recording", {}, NOW)
    refused(rig, forged, caplog, "signature does not verify")
    assert rig.recording == []


@pytest.mark.security
def test_tampered_command_is_refused(rig: DeviceRig, caplog: pytest.LogCaptureFixture) -> None:
    tampered = rig.sign("start_recording").replace(b"start_recording", b"stop_recording")
    refused(rig, tampered, caplog, "signature does not verify")
    assert rig.recording == []


@pytest.mark.security
def test_replayed_command_is_refused(rig: DeviceRig, caplog: pytest.LogCaptureFixture) -> None:
    payload = rig.sign("start_recording")
    assert rig.service.handle(payload) is not None
    refused(rig, payload, caplog, "already received")
    assert rig.recording == [True]
    assert len(rig.replies) == 2  # the first command's and the genuine one after


@pytest.mark.security
def test_replayed_command_is_refused_after_a_restart(
    rig: DeviceRig, caplog: pytest.LogCaptureFixture
) -> None:
    payload = rig.sign("start_recording")
    rig.service.handle(payload)
    rig.restart()
    refused(rig, payload, caplog, "already received")
    assert rig.recording == [True]


@pytest.mark.security
def test_stale_command_is_refused(rig: DeviceRig, caplog: pytest.LogCaptureFixture) -> None:
    payload = rig.sign("start_recording", ttl_s=30)
    rig.clock.now += 31
    refused(rig, payload, caplog, "expired")
    assert rig.recording == []


@pytest.mark.security
def test_command_issued_in_the_future_is_refused(
    rig: DeviceRig, caplog: pytest.LogCaptureFixture
) -> None:
    payload = rig.sign("start_recording")
    rig.clock.now -= CLOCK_SKEW_S + 10
    refused(rig, payload, caplog, "in the future")


@pytest.mark.security
def test_command_for_another_device_is_refused(
    rig: DeviceRig, caplog: pytest.LogCaptureFixture
) -> None:
    _id, payload = sign_command(rig.keys, "cam-other", "start_recording", {}, NOW)
    refused(rig, payload, caplog, "for device 'cam-other'")
    assert rig.recording == []


@pytest.mark.security
def test_command_valid_for_longer_than_allowed_is_refused(
    rig: DeviceRig, caplog: pytest.LogCaptureFixture
) -> None:
    command = Command("long-lived-01", DEVICE, "start_recording", {}, NOW, NOW + 7200)
    # HQ's own encoder refuses it, so forge the signature with HQ's key by hand
    content = {
        "v": 2,
        "alg": "ed25519",
        "kind": "command",
        "command_id": command.command_id,
        "device_id": DEVICE,
        "action": command.action,
        "args": {},
        "issued_at": command.issued_at,
        "expires_at": command.expires_at,
    }
    sig = rig.keys.signing.sign(b"raqib-command-v2\x00" + envelope._canonical(content))
    payload = json.dumps({**content, "sig": base64.b64encode(sig).decode()}).encode()
    refused(rig, payload, caplog, "lifetime")


@pytest.mark.security
@pytest.mark.parametrize("junk", [b"", b"{", b"[]", b'{"v": 2}', b"\xff" * 20, b"x" * 70000])
def test_malformed_command_is_refused(
    rig: DeviceRig, caplog: pytest.LogCaptureFixture, junk: bytes
) -> None:
    refused(rig, junk, caplog, "command")


def test_an_action_the_device_does_not_know_is_answered_not_done(rig: DeviceRig) -> None:
    command = Command("future-action-1", DEVICE, "reboot", {}, NOW, NOW + 60)
    reply = rig.service.handle(encode_command(command, rig.keys.signing))
    assert reply is not None
    assert reply["ok"] is False
    assert "not supported" in reply["detail"]


def test_recording_off_is_answered_with_the_reason(tmp_path: Path) -> None:
    keys, replies = HqKeys.generate(), []
    handlers = device_handlers(lambda _s, _d: False, lambda: None, lambda _a: "")
    service = CommandService(
        DEVICE,
        keys.public().signing,
        SeenCommands(tmp_path / "c.sqlite"),
        handlers,
        replies.append,
        clock=FakeClock(),
    )
    _id, payload = sign_command(keys, DEVICE, "start_recording", {}, NOW)
    service.handle(payload)
    service.stop()
    assert replies[0]["ok"] is False
    assert "recording is turned off" in replies[0]["detail"]


def test_seen_commands_are_forgotten_once_expired(tmp_path: Path) -> None:
    seen = SeenCommands(tmp_path / "seen.sqlite")
    command = Command("once-only-01", DEVICE, "send_status", {}, NOW, NOW + 60)
    assert seen.first_time(command, NOW) is True
    assert seen.first_time(command, NOW + 10) is False
    later = Command("another-one-2", DEVICE, "send_status", {}, NOW + 500, NOW + 560)
    assert seen.first_time(later, NOW + 500) is True  # prunes the first one
    assert seen.first_time(command, NOW + 500) is True  # would be refused as stale anyway
    seen.close()


@pytest.mark.security
def test_unwritable_command_memory_refuses_rather_than_risk_a_replay(
    rig: DeviceRig, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_command: Command, _now: float) -> bool:
        raise StorageError("disk full")

    rig.service._seen.first_time = broken  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="agent.commands")
    assert rig.service.handle(rig.sign("start_recording")) is None
    assert "disk full" in caplog.text
    assert rig.recording == []


# -- the officer's verdict -------------------------------------------------------------


def test_short_press_after_an_alert_confirms_it_and_long_press_rejects_the_next() -> None:
    clock, sent = FakeClock(), []
    desk = DispositionDesk(sent.append, officer="B-1", clock=clock, long_press_s=1.5)
    desk.alerted(41)
    assert desk.on_button(0.2) is True
    assert desk.on_button(0.2) is False  # already answered: this press toggles recording
    desk.alerted(42)
    assert desk.on_button(1.5) is True
    verdicts = [parse_disposition_body(b) for b in sent]
    assert [(v.hit_seq, v.verdict, v.source) for v in verdicts] == [
        (41, "confirmed", "button"),
        (42, "rejected", "button"),
    ]
    assert verdicts[0].officer == "B-1"


def test_a_press_long_after_the_alert_or_without_one_is_not_a_verdict() -> None:
    clock, sent = FakeClock(), []
    desk = DispositionDesk(sent.append, clock=clock, window_s=60)
    assert desk.on_button(0.1) is False
    desk.alerted(5)
    clock.now += 61
    assert desk.on_button(0.1) is False
    assert sent == []


def test_the_record_button_gives_the_verdict_instead_of_toggling_recording(
    tmp_path: Path,
) -> None:
    config = with_overrides(
        RaqibConfig(), device={"state_dir": str(tmp_path)}, evidence={"button": "simulated"}
    )
    sent: list[dict[str, Any]] = []
    desk = DispositionDesk(sent.append)
    service = EvidenceService(
        config,
        signing_key=load_or_create_device_key(tmp_path / "device.key"),
        hq_key=HqKeys.generate().public().encryption,
        claim_press=desk.on_button,
    )
    toggles: list[str] = []
    service.recorder.toggle = toggles.append  # type: ignore[method-assign]
    button = service.button
    assert isinstance(button, SimulatedButton)
    service.start()
    try:
        desk.alerted(9)
        button.press(held_s=2.0)  # long: rejects alert 9
        button.press(held_s=0.1)  # no open alert: toggles recording
    finally:
        service.stop()
    assert [(b["hit_seq"], b["verdict"]) for b in sent] == [(9, "rejected")]
    assert len(toggles) == 1


def test_a_disposition_command_answers_the_latest_alert_or_a_named_one(rig: DeviceRig) -> None:
    rig.desk.alerted(12)
    reply = rig.service.handle(rig.sign("disposition", {"verdict": "rejected", "note": "car park"}))
    assert reply is not None and reply["ok"] is True
    reply = rig.service.handle(rig.sign("disposition", {"verdict": "confirmed", "hit_seq": 3}))
    assert reply is not None and reply["ok"] is True
    bodies = [parse_disposition_body(b) for b in rig.dispositions]
    assert [(b.hit_seq, b.verdict, b.source, b.note) for b in bodies] == [
        (12, "rejected", "command", "car park"),
        (3, "confirmed", "command", ""),
    ]
    bad = rig.service.handle(rig.sign("disposition", {"verdict": "maybe"}))
    assert bad is not None and bad["ok"] is False and "verdict must be" in bad["detail"]


# -- through the broker, on a running agent ----------------------------------------------


@pytest.mark.broker
@pytest.mark.security
def test_running_agent_refuses_forged_replayed_stale_and_misaddressed_commands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:

    caplog.set_level(logging.INFO)
    with LocalBroker(workdir=tmp_path / "broker") as broker:
        config = parse_config(
            {
                "device": {"id": DEVICE, "state_dir": str(tmp_path / "device")},
                "capture": {"uri": str(DEFAULT_SAMPLES_DIR / "street_clip.mp4")},
                "mqtt": {"port": broker.port, "ack_timeout_s": 2.0, "reconnect_max_s": 1.0},
                "hq": {
                    "database_url": f"sqlite:///{tmp_path / 'hq.sqlite'}",
                    "keys_dir": str(tmp_path / "hq-keys"),
                },
                "status": {"metrics_port": 0},
                "evidence": {"enabled": False},
                "gnss": {"adapter": "none"},
            }
        )
        enrol_local(config)
        keys = HqKeys.load(config.hq.keys_dir)
        db = HqDatabase(config.hq.database_url)
        ingest = IngestService(config.mqtt, db, keys)
        ingest.start()
        agent = Agent(config)
        agent.start()
        hq = RawClient(config.mqtt, "fake-hq")
        try:
            deadline = time.monotonic() + 10
            while not agent.uplink.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # its SUBSCRIBE to the commands topic
            topic = Topics(PREFIX_V1, DEVICE).commands
            now = time.time()
            genuine_id, genuine = sign_command(keys, DEVICE, "send_status", {}, now)
            attacks = [
                sign_command(HqKeys.generate(), DEVICE, "stop_recording", {}, now)[1],
                sign_command(keys, DEVICE, "stop_recording", {}, now - 600)[1],
                sign_command(keys, "cam-other", "stop_recording", {}, now)[1],
            ]
            db.record_command(
                {
                    "command_id": genuine_id,
                    "device_id": DEVICE,
                    "action": "send_status",
                    "args": {},
                    "issued_by": "test",
                    "issued_at": now,
                    "expires_at": now + 60,
                }
            )
            for payload in [*attacks, genuine, genuine]:  # the last one is a replay
                hq.publish(topic, payload)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and (
                db.list_commands(DEVICE)[0]["reply_ok"] is None
                or agent.commands is None
                or agent.commands.counts["refused"] < 4
            ):
                time.sleep(0.05)
            assert agent.commands is not None
            assert agent.commands.counts["refused"] == 4
            assert agent.commands.counts["executed"] == 1
            assert db.list_commands(DEVICE)[0]["reply_ok"] is True
            assert agent.uplink.connected  # still up
        finally:
            hq.close()
            agent.shutdown()
            ingest.stop()
            db.close()
    refusals = [
        r.getMessage() for r in caplog.records if "remote command refused" in r.getMessage()
    ]
    assert len(refusals) == 4
    for reason in ("signature does not verify", "expired", "for device 'cam-other'", "already"):
        assert any(reason in line for line in refusals), (reason, refusals)


class _FakeGpiozeroButton:
    """Stands in for ``gpiozero.Button`` (not installed off the board): what it was given."""

    def __init__(self, pin: int, pull_up: bool, bounce_time: float) -> None:
        self.pin, self.pull_up, self.bounce_time = pin, pull_up, bounce_time
        self.when_pressed: Any = None
        self.when_released: Any = None

    def close(self) -> None:
        """Nothing to release."""


def test_gpio_button_reports_how_long_it_was_held(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("gpiozero")
    fake.Button = _FakeGpiozeroButton  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiozero", fake)
    button = GpioButton(22)
    held: list[float] = []
    button.start(held.append)
    pin = button._button
    assert (pin.pin, pin.pull_up) == (22, True)
    pin.when_pressed()
    time.sleep(0.05)
    pin.when_released()
    pin.when_released()  # a release with no press before it (bounce) is no press
    assert len(held) == 1
    assert 0.04 <= held[0] < 1.0
