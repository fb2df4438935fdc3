"""`raqib demo`: broker, HQ ingest and agent on the sample clip, all on this machine.

Everything the demo makes stays in one work directory (device state and keys,
HQ database, keys and CA, broker persistence and certificates) so a person can
look at it afterwards. It runs the production shape: the broker listens on TLS
only and requires client certificates from the demo's own CA, hits are sealed
to HQ's key and signed by the device key, and HQ's acks are signed.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.broker import LocalBroker, free_port
from agent.config import DEFAULT_SAMPLES_DIR, MqttConfig, RaqibConfig, with_overrides
from agent.daemon import Agent
from agent.errors import PayloadError, StorageError, TransportError
from agent.evidence.demo import upload_and_audit
from agent.messages import HitRecord
from agent.pki import HqKeys, TlsFiles
from agent.watchlist.provision import FleetSigner, provision_watchlist
from agent.watchlist.publish import BrokerTarget, publish_bundle, watchlist_topic
from firmware_glue.button import SimulatedButton
from hq.commands import CommandSender
from hq.db import HqDatabase
from hq.enrol import (
    enrol_local,
    issue_device_tls,
    issue_hq_tls,
    setup_local_tls,
    tls_overrides,
)
from hq.ingest import IngestService
from hq.watchlist_keys import WatchlistKeyRegistry, publish_key_messages

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 30.0
INGEST_CONNECT_S = 10.0
COMMAND_REPLY_S = 15.0
HQ_CONFIG = "hq.toml"
SAMPLE_WATCHLIST = DEFAULT_SAMPLES_DIR / "watchlist.csv"


@dataclass(frozen=True, slots=True)
class DemoResult:
    sent: int
    stored: int
    frames: int

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.stored)

    def summary(self) -> str:
        return f"demo: {self.sent} hits sent, {self.stored} stored at HQ, {self.lost} lost"


def _print_hit(device_id: str, seq: int, record: HitRecord) -> None:
    where = f" at {record.lat:.5f},{record.lon:.5f}" if record.lat is not None else ""
    print(
        f"HQ stored hit #{seq} from {device_id}: {record.plate} ({record.format}, "
        f"{record.match}, conf {record.confidence:.2f}) -> {record.reason} "
        f"case {record.case_ref or '-'}{where}",
        flush=True,
    )


def demo_config(base: RaqibConfig, workdir: Path, broker_port: int) -> RaqibConfig:
    return with_overrides(
        base,
        device={"state_dir": str(workdir / "device"), "keys_dir": None},
        capture={"realtime": True},  # a camera delivers 25 fps; nothing is dropped
        mqtt={"host": "127.0.0.1", "port": broker_port},
        hq={
            "database_url": f"sqlite:///{workdir / 'hq' / 'hq.sqlite'}",
            "keys_dir": str(workdir / "hq" / "keys"),
        },
        status={"metrics_port": 0},
        watchlist={"key_policy": "memory", "key_wait_s": 15.0},
        evidence={"hq_dir": str(workdir), "min_free_mb": 20, "officer": "DEMO-0001"},
    )


def write_hq_config(path: Path, config: RaqibConfig, hq_mqtt: MqttConfig, workdir: Path) -> None:
    """``DIR/hq.toml``: every ``raqib hq ...`` command works on the demo's HQ with it (the
    broker only while a demo runs: ``raqib demo --console`` keeps it up)."""

    def q(value: object) -> str:
        return json.dumps(str(value))  # a JSON string is a TOML basic string

    lines = [
        "# written by `raqib demo`: HQ's database, keys and broker connection of this demo",
        "[hq]",
        f"database_url = {q(config.hq.database_url)}",
        f"keys_dir = {q(config.hq.keys_dir)}",
        "",
        "[mqtt]",
        f"host = {q(hq_mqtt.host)}",
        f"port = {hq_mqtt.port}",
        f"topic_prefix = {q(hq_mqtt.topic_prefix)}",
        f"tls_ca = {q(hq_mqtt.tls_ca)}",
        f"tls_cert = {q(hq_mqtt.tls_cert)}",
        f"tls_key = {q(hq_mqtt.tls_key)}",
        "",
        "[evidence]",
        f"hq_dir = {q(workdir)}",
        "",
        "[console]",
        "secure_cookies = false  # the demo's console is plain HTTP on 127.0.0.1",
        f"watchlist_root = {q(workdir / 'hq' / 'watchlist' / 'watchlist-root.json')}",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def officer_confirms_last_alert(agent: Agent) -> bool:
    """The officer gives the last alert a short press of the (simulated) record button."""
    button = agent.evidence.button if agent.evidence is not None else None
    if not isinstance(button, SimulatedButton) or agent.stats.hits_queued == 0:
        return False
    button.press(held_s=0.2)
    return bool(agent.disposition.sent)


def _print_dispositions(db: HqDatabase, device_id: str) -> None:
    for row in db.list_dispositions(device_id)[-1:]:  # a reused work directory has more
        print(
            f"demo: HQ stored the officer's verdict on hit #{row['hit_seq']}: {row['verdict']} "
            f"(by {row['actor']}, {row['source']})",
            flush=True,
        )


def command_round_trip(mqtt: MqttConfig, db: HqDatabase, keys: HqKeys, device_id: str) -> bool:
    """HQ sends a signed ``send_status`` command; the device verifies it and answers
    through its outbox. True if the reply reached HQ's database in time."""
    try:
        with CommandSender(mqtt, db, keys) as sender:
            command_id = sender.send(device_id, "send_status", issued_by="demo")
    except (TransportError, PayloadError, StorageError) as exc:
        log.error("demo: HQ command not sent: %s", exc)
        return False

    def reply() -> dict[str, object] | None:
        rows = db.list_commands(device_id, limit=10)
        row = next((r for r in rows if r["command_id"] == command_id), None)
        return row if row is not None and row["reply_ok"] is not None else None

    answered = _wait(lambda: reply() is not None, COMMAND_REPLY_S)
    row = reply()
    outcome = f"{row['reply_detail']} (ok: {row['reply_ok']})" if row else "no reply in time"
    print(f"demo: HQ sent a signed send_status command; device replied: {outcome}", flush=True)
    return answered


def sign_and_push_watchlist(config: RaqibConfig, workdir: Path, admin_tls: TlsFiles) -> None:
    """HQ signs the sample list and seals it for the enrolled devices; the device gets it at
    enrolment and over MQTT (retained), and its cache key over MQTT when it connects."""
    now = time.time()
    signer = FleetSigner.load_or_create(workdir / "hq" / "watchlist", "demo-fleet", now)
    bundle = provision_watchlist(config, signer, SAMPLE_WATCHLIST, now)
    target = BrokerTarget(
        host=config.mqtt.host,
        port=config.mqtt.port,
        tls_ca=admin_tls.ca,
        tls_cert=admin_tls.cert,
        tls_key=admin_tls.key,
    )
    publish_bundle(bundle, watchlist_topic(config.mqtt.topic_prefix), target)
    hq_keys = HqKeys.load(config.hq.keys_dir)
    with WatchlistKeyRegistry(config.hq.database_url) as registry:
        publish_key_messages(registry, hq_keys.signing, target, config.mqtt.topic_prefix, now)
    print(
        f"demo: HQ signed the watchlist and sealed it for the fleet ({len(bundle)} bytes), "
        "installed, published; device cache keys published sealed",
        flush=True,
    )


def run_demo(base: RaqibConfig, workdir: Path | None, *, console: bool = False) -> DemoResult:
    """Run the whole flow once; returns what was sent and what HQ stored.

    ``console``: after the clip, print the summary and keep broker and ingest running
    with the HQ web console on them until Ctrl-C (``hq.console.demo``).
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="raqib-demo-") as tmp:
            return _run_in(base, Path(tmp), console)
    workdir.mkdir(parents=True, exist_ok=True)
    return _run_in(base, workdir.resolve(), console)


def _run_in(base: RaqibConfig, workdir: Path, console: bool = False) -> DemoResult:
    port = free_port()
    config = demo_config(base, workdir, port)
    ca_dir = workdir / "hq" / "ca"
    tls = setup_local_tls(ca_dir, workdir / "broker" / "tls", config.mqtt.topic_prefix)
    device_tls = issue_device_tls(ca_dir, config.device.id, workdir / "device" / "tls")
    hq_tls = issue_hq_tls(ca_dir, workdir / "hq" / "tls")
    admin_tls = issue_hq_tls(ca_dir, workdir / "hq" / "admin-tls", user="hq-admin")
    config = with_overrides(config, mqtt=tls_overrides(device_tls))
    hq_mqtt = MqttConfig.model_validate({**config.mqtt.model_dump(), **tls_overrides(hq_tls)})
    write_hq_config(workdir / HQ_CONFIG, config, hq_mqtt, workdir)
    with LocalBroker(port=port, workdir=workdir / "broker", tls=tls):
        db = HqDatabase(config.hq.database_url)
        enrol_local(config, db)
        sign_and_push_watchlist(config, workdir, admin_tls)
        before = db.count_hits()  # a reused work directory keeps earlier runs' hits
        hq_keys = HqKeys.load(config.hq.keys_dir)
        ingest = IngestService(hq_mqtt, db, hq_keys, on_stored=_print_hit)
        ingest.start()
        _wait(lambda: ingest.connected, INGEST_CONNECT_S)  # so it hears the first heartbeat
        try:
            agent = Agent(config)
            agent.start()
            try:
                agent.run(until_end=True)
                confirmed = officer_confirms_last_alert(agent)
                command_round_trip(hq_mqtt, db, hq_keys, config.device.id)
                if agent.evidence is not None:
                    agent.evidence.stop()  # seal the last segment; its ledger entry goes to HQ
                if not agent.wait_delivered(DELIVERY_TIMEOUT_S):
                    log.error("demo: HQ did not acknowledge every hit in time")
                if confirmed:
                    _print_dispositions(db, config.device.id)
            finally:
                agent.shutdown()
            if console:
                _serve_console(agent, config, hq_mqtt, workdir, db.count_hits() - before)
        finally:
            ingest.stop()
        stored = db.count_hits() - before
        db.close()
    if config.evidence.enabled and not console:
        upload_and_audit(config, workdir)  # footage to DIR/evidence, audited against DIR's HQ db
    print(f"demo: work directory {workdir}", flush=True)
    print(f"demo: HQ config for `raqib hq ...`: {workdir / HQ_CONFIG}", flush=True)
    return DemoResult(
        sent=agent.stats.hits_raised, stored=stored, frames=agent.pipeline.stats.frames
    )


def _serve_console(
    agent: Agent, config: RaqibConfig, hq_mqtt: MqttConfig, workdir: Path, stored: int
) -> None:
    """The clip is done: audit its footage, say how it went, then serve the console."""
    from hq.console.demo import serve_demo_console

    if config.evidence.enabled:
        upload_and_audit(config, workdir)
    result = DemoResult(agent.stats.hits_raised, stored, agent.pipeline.stats.frames)
    print(f"demo: work directory {workdir}", flush=True)
    print(result.summary(), flush=True)
    serve_demo_console(config, hq_mqtt, workdir)


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
