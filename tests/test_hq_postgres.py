"""HQ on a real PostgreSQL server (Debian's ``postgresql`` package): same guarantees as SQLite.

The module starts its own throw-away cluster (initdb + pg_ctl in a temporary
directory, as the ``postgres`` user when run as root) on a free loopback port.
If the server binaries are missing the tests fail, saying how to install them:
``scripts/setup.sh`` does it for CI.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from transport_kit import DEVICE, PATIENCE_S, Fleet, sample_hit

from agent.broker import LocalBroker, free_port
from agent.config import MqttConfig
from agent.messages import HIT_KIND, hit_body, parse_hit_body
from agent.transport.outbox import Outbox
from hq.db import HqDatabase, Incoming
from hq.ingest import IngestService

pytestmark = pytest.mark.slow


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
        "run scripts/setup.sh or `apt-get install postgresql`"
    )


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="raqib-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for path in (root, sock):
            os.chown(path, pg.pw_uid, pg.pw_gid)
    port = free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=on"
    start = _as_postgres(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w"]
    )
    subprocess.run([*start, "start"], check=True, capture_output=True, timeout=60)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def db(pg_url: str) -> Iterator[HqDatabase]:
    database = HqDatabase(pg_url)
    with database._engine.begin() as conn:
        conn.execute(text("TRUNCATE hits, device_messages, devices, dispositions, commands"))
    yield database
    database.close()


def record(n: int):  # type: ignore[no-untyped-def]
    return parse_hit_body(hit_body(sample_hit(n)))


def test_postgres_store_is_idempotent_and_counts_gaps(db: HqDatabase) -> None:
    fleet = Fleet()
    fleet.enrol(db)
    assert db.store_hit(DEVICE, 1, record(1), 10.0) is True
    assert db.store_hit(DEVICE, 1, record(1), 11.0) is False
    assert db.store_hit(DEVICE, 4, record(4), 12.0) is True
    (device,) = db.list_devices()
    assert (device["last_seq"], device["gaps"]) == (4, 2)
    assert db.list_hits()[0]["crop_jpeg"] == b"\xff\xd8fake-jpeg\xff\xd9"


def test_postgres_dispositions_commands_and_false_read_rates(db: HqDatabase, pg_url: str) -> None:
    Fleet().enrol(db)
    db.store_hit(DEVICE, 1, parse_hit_body(hit_body(sample_hit(1), model_version="r9")), 10.0)
    db.record_disposition(
        DEVICE, 1, source="operator", verdict="false_read", note="", actor="op", at=11.0
    )
    rates = db.false_read_rates()
    assert rates["by_model_version"]["r9"] == {"dispositioned": 1, "false_reads": 1, "rate": 1.0}
    db.record_command(
        {
            "command_id": "pg-cmd-01",
            "device_id": DEVICE,
            "action": "send_status",
            "args": {},
            "issued_by": "op",
            "issued_at": 1.0,
            "expires_at": 61.0,
        }
    )
    assert db.record_command_reply("pg-cmd-01", True, "sent", 2.0, device_id=DEVICE)
    assert db.list_commands()[0]["reply_ok"] is True
    with db._engine.begin() as conn:  # an HQ database from before model versions
        conn.execute(text("ALTER TABLE hits DROP COLUMN model_version"))
    reopened = HqDatabase(pg_url)
    try:
        assert reopened.list_hits()[0]["model_version"] is None
    finally:
        reopened.close()


def test_postgres_concurrent_workers_store_overlapping_batches_exactly_once(
    pg_url: str, db: HqDatabase
) -> None:
    fleet = Fleet()
    fleet.enrol(db)
    items = [Incoming(DEVICE, seq, HIT_KIND, 1.0, 2.0, record=record(seq)) for seq in range(1, 301)]
    results: list[list[bool]] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        with HqDatabase(pg_url) as own:  # its own engine, as a separate process would have
            for start in range(offset, 300, 50):
                batch = items[start : start + 100]
                outcome = own.store_batch(batch)
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=worker, args=(n * 25,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert db.hit_seqs(DEVICE) and sorted(db.hit_seqs(DEVICE)) == list(range(1, 301))
    assert sum(sum(r) for r in results) == 300
    (device,) = db.list_devices()
    assert (device["received"], device["gaps"]) == (300, 0)


@pytest.mark.broker
def test_postgres_end_to_end_two_workers_through_mosquitto(
    db: HqDatabase, pg_url: str, tmp_path: Path, wait_until
) -> None:
    fleet = Fleet()
    devices = ["cam-pg1", "cam-pg2"]
    fleet.enrol(db, *devices)
    with LocalBroker(workdir=tmp_path / "broker") as broker:
        config = MqttConfig(port=broker.port, keepalive_s=5, ack_timeout_s=2.0, reconnect_max_s=1)
        dbs = [HqDatabase(pg_url) for _ in range(2)]
        workers = [
            IngestService(config, own, fleet.hq_keys, client_id=f"pg-{n}")
            for n, own in enumerate(dbs)
        ]
        for worker in workers:
            worker.start()
        boxes = [Outbox(tmp_path / f"{d}.sqlite") for d in devices]
        uplinks = []
        try:
            assert wait_until(lambda: all(w.connected for w in workers), PATIENCE_S)
            time.sleep(0.2)
            for device, box in zip(devices, boxes, strict=True):
                fleet.put_hits_bulk(box, 500, device)
            uplinks = [fleet.uplink(config, b, d) for d, b in zip(devices, boxes, strict=True)]
            assert wait_until(lambda: all(b.depth() == 0 for b in boxes), 60)
        finally:
            for uplink in uplinks:
                uplink.stop()
            for worker in workers:
                worker.stop()
            for own in dbs:
                own.close()
            for box in boxes:
                box.close()
    for device in devices:
        assert sorted(db.hit_seqs(device)) == list(range(1, 501))
    assert {d["device_id"]: d["gaps"] for d in db.list_devices()} == dict.fromkeys(devices, 0)
