"""`raqib bench transport`: sealed hits per second, device outbox -> Mosquitto -> HQ database.

What one run measures, for 1, 2 and 4 ingest worker processes:

- ``DEVICES`` simulated devices, each with its own durable outbox already
  holding ``HITS_PER_DEVICE`` sealed hits (a 4 KiB crop each) -- a fleet coming
  back from a dead zone -- run their real uplinks in two device processes;
- a local Mosquitto (mTLS with client certificates, as in production, unless
  ``tls=False``);
- N ``raqib hq ingest`` worker processes on the shared subscription, verifying,
  decrypting and storing into SQLite in batches, then signing acks.

The clock runs from the uplinks' start until every outbox is empty, i.e. until
HQ has stored *and acknowledged* every hit and the device has deleted it.
``lost`` is hits sent minus distinct hits stored; ``duplicated`` is stored rows
beyond one per ``(device, seq)``. Everything (broker, workers, devices) shares
this machine's cores, so the figure is a floor for a real HQ; the load average
at the start is reported so a busy machine shows in the figures.

It also times sealing + durable ``put`` on the device and an outbox of 100,000
queued messages (put, reopen, drain by acks).
"""

from __future__ import annotations

import base64
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.broker import LocalBroker, free_port
from agent.config import MqttConfig, RaqibConfig, parse_config
from agent.messages import HIT_KIND
from agent.pki import DEVICE_KEY, HqKeys, HqPublicKeys, load_ed25519_private, write_private
from agent.transport.outbox import PRIORITY_HIT, PRIORITY_STATUS, Outbox
from agent.transport.sealer import Sealer
from agent.transport.topics import Topics
from agent.transport.uplink import Uplink
from hq.db import HqDatabase
from hq.enrol import issue_device_tls, issue_hq_tls, setup_local_tls, tls_overrides
from hq.workers import WorkerPool

log = logging.getLogger(__name__)

Figures = dict[str, float]

DEVICES: Final = 8
HITS_PER_DEVICE: Final = 1500
DEVICE_PROCESSES: Final = 2
CROP_BYTES: Final = 4096
WORKER_COUNTS: Final = (1, 2, 4)
RUN_TIMEOUT_S: Final = 180.0
OUTBOX_BIG: Final = 100_000


def _hit_body(n: int, crop_b64: str) -> dict[str, Any]:
    plate = f"{10000 + n % 90000}-B-6"
    return {
        "plate": plate,
        "format": "MA",
        "confidence": 0.93,
        "first_seen": 1000.0 + n,
        "last_seen": 1001.0 + n,
        "n_reads": 4,
        "box": [10, 20, 120, 30],
        "match": "exact",
        "entry": {"plate": plate, "reason": "stolen", "case_ref": f"case-{n}", "priority": 2},
        "gnss": {"lat": 33.57, "lon": -7.59, "accuracy_m": 5.0, "timestamp": 1000.0 + n},
        "crop_jpeg_b64": crop_b64,
    }


def _fill_outboxes(root: Path, hq: HqKeys, devices: list[str]) -> float:
    """Device keys and full outboxes under ``root/{device}``; returns sealed puts per second."""
    crop = base64.b64encode(os.urandom(CROP_BYTES)).decode("ascii")
    start = time.perf_counter()
    for device in devices:
        key = Ed25519PrivateKey.generate()
        write_private(root / device / "keys" / DEVICE_KEY, key)
        hq.public().save(root / device / "keys")
        sealer = Sealer(device, key, hq.public())
        topic = Topics("raqib/v1", device).hits
        with Outbox(root / device / "outbox.sqlite") as box:
            for first in range(1, HITS_PER_DEVICE + 1, 500):
                makers = [
                    sealer.maker(HIT_KIND, topic, _hit_body(n, crop))
                    for n in range(first, min(first + 500, HITS_PER_DEVICE + 1))
                ]
                box.put_many(HIT_KIND, topic, makers, PRIORITY_HIT)
    return len(devices) * HITS_PER_DEVICE / (time.perf_counter() - start)


def _device_process(
    root: str, devices: list[str], mqtt: dict[str, Any], done: Any, go: Any
) -> None:
    """Run the uplinks of some devices until their outboxes are empty (a child process)."""
    boxes, uplinks = [], []
    for device in devices:
        state = Path(root) / device
        keys = state / "keys"
        sealer = Sealer(
            device, load_ed25519_private(keys / DEVICE_KEY, "key"), HqPublicKeys.load(keys)
        )
        config = MqttConfig.model_validate(mqtt[device])
        box = Outbox(state / "outbox.sqlite")
        boxes.append(box)
        uplinks.append(Uplink(config, sealer, box, window=200))
    done.put("ready")
    go.wait(RUN_TIMEOUT_S)
    for uplink in uplinks:
        uplink.start()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while any(box.depth() for box in boxes) and time.monotonic() < deadline:
        time.sleep(0.02)
    done.put(time.time())
    for uplink in uplinks:
        uplink.stop(timeout=2.0)
    for box in boxes:
        box.close()


def _count(db: HqDatabase) -> tuple[int, int]:
    from sqlalchemy import func, select

    from hq.db import hits

    pairs = select(hits.c.device_id, hits.c.seq).distinct().subquery()
    with db._read("count") as conn:
        rows = int(conn.execute(select(func.count()).select_from(hits)).scalar_one())
        unique = int(conn.execute(select(func.count()).select_from(pairs)).scalar_one())
    return rows, unique


class _Site:
    """Broker, keys and certificates for one benchmark run."""

    def __init__(self, root: Path, devices: list[str], tls: bool) -> None:
        self.root = root
        self.devices = devices
        self.port = free_port()
        self.tls = setup_local_tls(root / "ca", root / "broker-tls") if tls else None
        base: dict[str, object] = {"port": self.port, "keepalive_s": 10, "ack_timeout_s": 15.0}
        self.hq_mqtt: dict[str, object] = dict(base)
        self.device_mqtt: dict[str, dict[str, object]] = {d: dict(base) for d in devices}
        if tls:
            self.hq_mqtt |= tls_overrides(issue_hq_tls(root / "ca", root / "hq-tls"))
            for d in devices:
                files = issue_device_tls(root / "ca", d, root / "tls" / d)
                self.device_mqtt[d] |= tls_overrides(files)


def _run(site: _Site, template: Path, hq_keys_dir: Path, workers: int) -> Figures:
    work = site.root / f"run-{workers}w"
    shutil.copytree(template, work / "devices")
    db_url = f"sqlite:///{work / 'hq.sqlite'}"
    with HqDatabase(db_url) as db:
        for device in site.devices:
            key = load_ed25519_private(work / "devices" / device / "keys" / DEVICE_KEY, "key")
            db.enrol_device(device, key.public_key(), time.time())
    config: RaqibConfig = parse_config(
        {
            "mqtt": site.hq_mqtt,
            "hq": {"database_url": db_url, "keys_dir": str(hq_keys_dir)},
            "logging": {"level": "WARNING"},
        }
    )
    with LocalBroker(port=site.port, workdir=work / "broker", tls=site.tls):
        pool = WorkerPool(config, workers)
        pool.start()
        stop = threading.Event()
        supervisor = threading.Thread(target=pool.supervise, args=(stop,), daemon=True)
        supervisor.start()
        time.sleep(3.0)  # workers import, connect and subscribe
        elapsed = _drive_devices(site, work / "devices")
        time.sleep(0.5)
        stop.set()
        supervisor.join(30)
    total = len(site.devices) * HITS_PER_DEVICE
    with HqDatabase(db_url) as db:
        rows, unique = _count(db)
    return {
        f"hits_per_s_{workers}w": round(total / elapsed, 1),
        f"lost_{workers}w": total - unique,
        f"duplicated_{workers}w": rows - unique,
    }


def _drive_devices(site: _Site, devices_dir: Path) -> float:
    ctx = mp.get_context("spawn")
    done = ctx.Queue()
    go = ctx.Event()
    groups = [site.devices[i::DEVICE_PROCESSES] for i in range(DEVICE_PROCESSES)]
    procs = [
        ctx.Process(
            target=_device_process,
            args=(str(devices_dir), group, site.device_mqtt, done, go),
        )
        for group in groups
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        done.get(timeout=60)  # imported and outboxes open
    start = time.time()
    go.set()
    ends = [float(done.get(timeout=RUN_TIMEOUT_S + 30)) for _ in procs]
    for proc in procs:
        proc.join(30)
    return max(ends) - start


def bench_outbox_big(root: Path) -> Figures:
    """100,000 queued messages: put (batches of 1,000), reopen, drain oldest-first by acks."""
    path = root / "big" / "outbox.sqlite"
    payload = os.urandom(600)
    start = time.perf_counter()
    with Outbox(path, max_messages=OUTBOX_BIG) as box:
        for _ in range(OUTBOX_BIG // 1000):
            box.put_many("status", "t", [lambda _s: payload] * 1000, PRIORITY_STATUS)
    put_s = time.perf_counter() - start
    start = time.perf_counter()
    with Outbox(path, max_messages=OUTBOX_BIG) as box:
        depth = box.depth()
        drained = 0
        while items := box.due(0.0, 0.0, 2000):
            drained += box.ack([i.seq for i in items])
    drain_s = time.perf_counter() - start
    return {
        "outbox_100k_depth": depth,
        "outbox_100k_put_per_s": round(OUTBOX_BIG / put_s, 1),
        "outbox_100k_drain_per_s": round(drained / drain_s, 1),
        "outbox_100k_lost": OUTBOX_BIG - drained,
    }


def bench_transport(_config: RaqibConfig, *, tls: bool = True) -> Figures:
    """End-to-end sealed hits/s with 1, 2 and 4 ingest workers; see the module docstring."""
    devices = [f"bench-{n:02d}" for n in range(DEVICES)]
    root = Path(tempfile.mkdtemp(prefix="raqib-bench-transport-"))
    try:
        hq_keys_dir = root / "hq-keys"
        hq = HqKeys.load_or_create(hq_keys_dir)
        figures: Figures = {"load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
        figures["seal_put_per_s"] = round(_fill_outboxes(root / "tpl", hq, devices), 1)
        site = _Site(root, devices, tls)
        lost = duplicated = 0.0
        for workers in WORKER_COUNTS:
            run = _run(site, root / "tpl", hq_keys_dir, workers)
            lost += run.pop(f"lost_{workers}w")
            duplicated += run.pop(f"duplicated_{workers}w")
            figures.update(run)
        figures.update(
            lost=lost,
            duplicated=duplicated,
            hits_per_run=len(devices) * HITS_PER_DEVICE,
            mtls=float(tls),
        )
        figures.update(bench_outbox_big(root))
        return figures
    finally:
        shutil.rmtree(root, ignore_errors=True)
