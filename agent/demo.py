"""`raqib demo`: broker, HQ ingest and agent on the sample clip, all on this machine.

Everything the demo makes stays in one work directory (device state and keys,
HQ database, keys and CA, broker persistence and certificates) so a person can
look at it afterwards. It runs the production shape: the broker listens on TLS
only and requires client certificates from the demo's own CA, hits are sealed
to HQ's key and signed by the device key, and HQ's acks are signed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agent.broker import LocalBroker, free_port
from agent.config import DEFAULT_SAMPLES_DIR, MqttConfig, RaqibConfig, with_overrides
from agent.daemon import Agent
from agent.evidence.demo import upload_and_audit
from agent.messages import HitRecord
from agent.pki import HqKeys, TlsFiles
from agent.watchlist.provision import FleetSigner, provision_watchlist
from agent.watchlist.publish import BrokerTarget, publish_bundle, watchlist_topic
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


def run_demo(base: RaqibConfig, workdir: Path | None) -> DemoResult:
    """Run the whole flow once; returns what was sent and what HQ stored."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="raqib-demo-") as tmp:
            return _run_in(base, Path(tmp))
    workdir.mkdir(parents=True, exist_ok=True)
    return _run_in(base, workdir.resolve())


def _run_in(base: RaqibConfig, workdir: Path) -> DemoResult:
    port = free_port()
    config = demo_config(base, workdir, port)
    ca_dir = workdir / "hq" / "ca"
    tls = setup_local_tls(ca_dir, workdir / "broker" / "tls", config.mqtt.topic_prefix)
    device_tls = issue_device_tls(ca_dir, config.device.id, workdir / "device" / "tls")
    hq_tls = issue_hq_tls(ca_dir, workdir / "hq" / "tls")
    admin_tls = issue_hq_tls(ca_dir, workdir / "hq" / "admin-tls", user="hq-admin")
    config = with_overrides(config, mqtt=tls_overrides(device_tls))
    hq_mqtt = MqttConfig.model_validate({**config.mqtt.model_dump(), **tls_overrides(hq_tls)})
    with LocalBroker(port=port, workdir=workdir / "broker", tls=tls):
        db = HqDatabase(config.hq.database_url)
        enrol_local(config, db)
        sign_and_push_watchlist(config, workdir, admin_tls)
        before = db.count_hits()  # a reused work directory keeps earlier runs' hits
        hq_keys = HqKeys.load(config.hq.keys_dir)
        ingest = IngestService(hq_mqtt, db, hq_keys, on_stored=_print_hit)
        ingest.start()
        try:
            agent = Agent(config)
            agent.start()
            try:
                agent.run(until_end=True)
                if agent.evidence is not None:
                    agent.evidence.stop()  # seal the last segment; its ledger entry goes to HQ
                if not agent.wait_delivered(DELIVERY_TIMEOUT_S):
                    log.error("demo: HQ did not acknowledge every hit in time")
            finally:
                agent.shutdown()
        finally:
            ingest.stop()
        stored = db.count_hits() - before
        db.close()
    if config.evidence.enabled:
        upload_and_audit(config, workdir)  # footage to DIR/evidence, audited against DIR's HQ db
    print(f"demo: work directory {workdir}", flush=True)
    return DemoResult(
        sent=agent.stats.hits_raised, stored=stored, frames=agent.pipeline.stats.frames
    )
