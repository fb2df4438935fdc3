"""mTLS broker, ACLs and HQ's registry: every attack in the issue is refused.

The broker here has the production shape (TLS only, client certificates from
HQ's CA required, the certificate's CN as user name, per-device ACL, CRL).
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from transport_kit import PATIENCE_S, PREFIX, Fleet, RawClient, connects

from agent.broker import LocalBroker, free_port
from agent.config import MqttConfig
from agent.pki import TlsFiles
from agent.transport.outbox import Outbox
from agent.transport.topics import Topics
from hq.db import HqDatabase
from hq.enrol import (
    issue_device_tls,
    issue_hq_tls,
    revoke_device_tls,
    setup_local_tls,
    tls_overrides,
)
from hq.ingest import IngestService

pytestmark = [pytest.mark.broker, pytest.mark.security]

A, B = "cam-a1", "cam-b2"


@dataclass
class SecureSite:
    broker: LocalBroker
    ca_dir: Path
    certs: dict[str, TlsFiles]
    base: MqttConfig

    def config(self, who: str) -> MqttConfig:
        files = self.certs[who]
        return MqttConfig.model_validate({**self.base.model_dump(), **tls_overrides(files)})

    def client(self, who: str, client_id: str | None = None) -> RawClient:
        files = self.certs[who]
        return RawClient(
            self.config(who), client_id or f"raw-{who}", tls=(files.ca, files.cert, files.key)
        )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SecureSite]:
    ca_dir = tmp_path / "ca"
    tls = setup_local_tls(ca_dir, tmp_path / "broker-tls")
    certs = {d: issue_device_tls(ca_dir, d, tmp_path / d) for d in (A, B)}
    certs["hq"] = issue_hq_tls(ca_dir, tmp_path / "hq")
    port = free_port()
    with LocalBroker(port=port, workdir=tmp_path / "broker", tls=tls) as broker:
        base = MqttConfig(port=port, keepalive_s=5, ack_timeout_s=1.0, reconnect_max_s=1.0)
        yield SecureSite(broker, ca_dir, certs, base)


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


@pytest.fixture
def db(tmp_path: Path, fleet: Fleet) -> Iterator[HqDatabase]:
    database = HqDatabase(f"sqlite:///{tmp_path / 'hq.sqlite'}")
    fleet.enrol(database, A, B)
    yield database
    database.close()


@pytest.fixture
def ingest(site: SecureSite, db: HqDatabase, fleet: Fleet, wait_until) -> Iterator[IngestService]:
    service = IngestService(
        site.config("hq"), db, fleet.hq_keys, client_id="hq-ingest-0", registry_refresh_s=0.2
    )
    service.start()
    assert wait_until(lambda: service.connected, PATIENCE_S)
    time.sleep(0.2)  # SUBACK
    yield service
    service.stop()


def test_device_with_its_certificate_delivers_sealed_hits_over_mtls(
    site: SecureSite,
    db: HqDatabase,
    fleet: Fleet,
    ingest: IngestService,
    tmp_path: Path,
    wait_until,
) -> None:
    with Outbox(tmp_path / "a-outbox.sqlite") as outbox:
        uplink = fleet.uplink(site.config(A), outbox, A)
        try:
            fleet.put_hits(outbox, 20, A)
            uplink.wake()
            assert wait_until(lambda: outbox.depth() == 0, PATIENCE_S)
        finally:
            uplink.stop()
    assert db.hit_seqs(A) == list(range(1, 21))
    assert ingest.stats()["rejected"] == 0


def test_client_without_certificate_is_refused(site: SecureSite) -> None:
    files = site.certs[A]
    assert connects(site.config(A), (files.ca, files.cert, files.key))  # the control
    assert not connects(site.config(A), (files.ca, None, None))


def test_plain_tcp_client_is_refused(site: SecureSite) -> None:
    assert not connects(site.base, None)


def test_certificate_from_another_ca_is_refused(site: SecureSite, tmp_path: Path) -> None:
    rogue = issue_device_tls(tmp_path / "rogue-ca", A, tmp_path / "rogue")
    assert not connects(site.config(A), (site.certs[A].ca, rogue.cert, rogue.key))


def test_device_reading_another_devices_topics_gets_nothing(
    site: SecureSite, db: HqDatabase, fleet: Fleet, ingest: IngestService, wait_until
) -> None:
    a_topics, b_topics = Topics(PREFIX, A), Topics(PREFIX, B)
    spy = site.client(B, "spy-b")
    victim = site.client(A, "victim-a")
    try:
        spy.subscribe(a_topics.acks)
        spy.subscribe(a_topics.hits)
        spy.subscribe(f"{PREFIX}/devices/#")
        victim.subscribe(a_topics.acks)
        victim.publish(a_topics.hits, fleet.hit_payload(1, device=A))
        assert wait_until(lambda: victim.acked_seqs(fleet, A) == [1], PATIENCE_S)
        time.sleep(0.3)
        assert spy.received == []
    finally:
        spy.close()
        victim.close()
    del b_topics


def test_device_cannot_publish_on_another_devices_topic(
    site: SecureSite, db: HqDatabase, fleet: Fleet, ingest: IngestService, wait_until
) -> None:
    impostor = site.client(B, "impostor-b")
    try:
        # even a message correctly sealed and signed by A, replayed by B on A's topic
        impostor.publish(Topics(PREFIX, A).hits, fleet.hit_payload(1, device=A))
        impostor.publish(Topics(PREFIX, B).hits, fleet.hit_payload(1, device=B))
        assert wait_until(lambda: db.hit_seqs(B) == [1], PATIENCE_S)
        time.sleep(0.3)
    finally:
        impostor.close()
    assert db.hit_seqs(A) == []
    assert ingest.stats()["received"] == 1


def test_device_cannot_forge_acks_for_another_device(
    site: SecureSite, fleet: Fleet, tmp_path: Path, wait_until
) -> None:
    from agent.envelope import encode_ack

    with Outbox(tmp_path / "a-outbox.sqlite") as outbox:
        fleet.put_hits(outbox, 3, A)
        uplink = fleet.uplink(site.config(A), outbox, A)  # no HQ running: nothing acks
        forger = site.client(B, "forger-b")
        try:
            assert wait_until(lambda: uplink.stats()["sent"] == 3, PATIENCE_S)
            # the ACL drops it; and a signature by anyone but HQ would be refused anyway
            forger.publish(Topics(PREFIX, A).acks, encode_ack(A, [1, 2, 3], fleet.key(B)))
            time.sleep(0.5)
            assert outbox.depth() == 3
        finally:
            forger.close()
            uplink.stop()


def test_forged_signature_is_refused_and_never_acked(
    site: SecureSite, db: HqDatabase, fleet: Fleet, ingest: IngestService, wait_until
) -> None:
    thief = Fleet(fleet.hq_keys)  # knows HQ's public key, not A's signing key
    device = site.client(A, "forger-a")
    try:
        device.subscribe(Topics(PREFIX, A).acks)
        device.publish(Topics(PREFIX, A).hits, thief.hit_payload(1, device=A))
        assert wait_until(lambda: ingest.stats()["rejected"] == 1, PATIENCE_S)
        time.sleep(0.3)
        assert device.acked_seqs(fleet, A) == []
    finally:
        device.close()
    assert db.count_hits() == 0


def test_replayed_message_is_stored_once(
    site: SecureSite, db: HqDatabase, fleet: Fleet, ingest: IngestService, wait_until
) -> None:
    device = site.client(A, "replayer-a")
    payload = fleet.hit_payload(5, device=A)
    try:
        for _ in range(4):
            device.publish(Topics(PREFIX, A).hits, payload)
        assert wait_until(lambda: ingest.stats()["duplicates"] == 3, PATIENCE_S)
    finally:
        device.close()
    assert db.hit_seqs(A) == [5]


def test_revoked_device_messages_are_refused_and_its_certificate_no_longer_connects(
    site: SecureSite, db: HqDatabase, fleet: Fleet, ingest: IngestService, wait_until
) -> None:
    assert db.revoke_device(A, time.time())
    device = site.client(A, "revoked-a")
    try:
        time.sleep(0.3)  # the ingest registry refreshes every 0.2 s here
        device.publish(Topics(PREFIX, A).hits, fleet.hit_payload(1, device=A))
        assert wait_until(lambda: ingest.stats()["rejected"] == 1, PATIENCE_S)
    finally:
        device.close()
    assert db.count_hits() == 0
    # and at the broker: the certificate goes on the CRL, the broker reloads it
    files = site.certs[A]
    assert site.broker.tls is not None and site.broker.tls.crl is not None
    revoke_device_tls(site.ca_dir, files.cert, site.broker.tls.crl)
    site.broker.restart()
    assert not connects(site.config(A), (files.ca, files.cert, files.key))
    other = site.certs[B]
    assert connects(site.config(B), (other.ca, other.cert, other.key))


def test_hq_port_is_not_reachable_without_tls(site: SecureSite) -> None:
    with socket.create_connection((site.base.host, site.base.port), timeout=2) as sock:
        sock.sendall(b"\x10\x00")  # the start of a plain MQTT CONNECT
        sock.settimeout(2)
        try:
            data = sock.recv(16)
        except (ConnectionResetError, TimeoutError):
            data = b""
    assert not data.startswith(b"\x20")  # no CONNACK


def test_shipped_acl_is_what_the_code_generates() -> None:
    from agent.broker import acl_text

    shipped = Path(__file__).parent.parent / "deploy" / "mosquitto" / "acl"
    assert shipped.read_text(encoding="utf-8") == acl_text()


def test_shipped_broker_config_runs_and_requires_client_certificates(tmp_path: Path) -> None:
    """deploy/mosquitto/raqib.conf, with its paths pointed at a temporary directory."""
    from agent.broker import acl_text, find_mosquitto
    from hq.broker_control import write_dynsec_config

    deploy = Path(__file__).parent.parent / "deploy" / "mosquitto"
    etc = tmp_path / "etc"
    tls = setup_local_tls(tmp_path / "ca", etc)
    (etc / "acl").write_text(acl_text(), encoding="utf-8")
    write_dynsec_config(etc / "dynamic-security.json")
    device = issue_device_tls(tmp_path / "ca", A, tmp_path / A)
    port = free_port()
    text = (deploy / "raqib.conf").read_text(encoding="utf-8")
    text = text.replace("/etc/mosquitto/raqib/", f"{etc}/").replace("broker.crt", tls.cert.name)
    text = text.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    text = text.replace("listener 8883", f"listener {port} 127.0.0.1")
    text = text.replace("log_dest syslog", "log_dest stderr")
    text += f"user {pwd.getpwuid(os.getuid()).pw_name}\n"  # as the test's user, not mosquitto
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text, encoding="utf-8")
    proc = subprocess.Popen(
        [find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        config = MqttConfig(port=port, keepalive_s=5)
        deadline = time.monotonic() + 10
        ok = False
        while time.monotonic() < deadline and not ok:
            ok = connects(config, (device.ca, device.cert, device.key))
        assert ok, "the shipped config did not accept a device certificate"
        assert not connects(config, (device.ca, None, None))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    config_errors = [
        line for line in err.decode().splitlines() if "Error" in line and "SSL" not in line
    ]
    assert config_errors == []
