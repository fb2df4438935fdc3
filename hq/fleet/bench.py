"""`raqib bench fleet`: a whole fleet against real Mosquitto, PostgreSQL and HQ ingest workers.

What one run does (every part real except the cameras' sensors, see
:mod:`hq.fleet.devices`):

1. a throw-away PostgreSQL cluster, a Mosquitto broker with mTLS, per-device
   ACLs and CRL, HQ's keys and CA, and ``workers`` ingest processes on the
   shared subscription, storing into PostgreSQL;
2. N devices enrolled the real way: an Ed25519 signing key each, registered in
   HQ's database, and a TLS certificate from HQ's CA; each gets the fleet's
   signed watchlist (root + a 1,000-entry list v1) in its own cache (a copy of
   one cache a real manager built; each device's manager re-verifies it);
3. the devices, split over ``processes`` processes, connect (one MQTT 5
   session each), then send the :class:`~hq.fleet.devices.Mix` (heartbeats,
   ledger entries, hits) for ``duration_s`` seconds, time compressed by
   ``mix.compression``;
4. a quarter into that window the fleet admin publishes (retained, as
   ``hq-admin``) a signed delta adding 1,000 entries; each device verifies and
   applies it and reports its list version in a heartbeat at once; the
   rollout time is from the publish until HQ's database shows the new version
   for 50 % and 99 % of the devices (counted for ``ROLLOUT_TIMEOUT_S``);
5. a poller reads new hit rows as they commit: hit latency is the time from the
   device sealing the hit into its outbox to the row being visible (poll
   interval 50 ms, so figures are at most that much high);
6. producers stop, outboxes drain (HQ acked everything), and every device's
   sequence numbers are checked against the database: ``lost`` (put but not
   stored) and ``duplicated`` (stored more than once) must be 0.

CPU figures are cores in use over the busy window (CPU seconds / wall
seconds) per component; memory is resident MiB at the end of it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text

from agent.broker import LocalBroker, free_port
from agent.config import parse_config
from agent.errors import TransportError
from agent.pki import DEVICE_KEY, HqKeys, TlsFiles, write_private
from agent.watchlist.content import ListEntry
from agent.watchlist.format import Root
from agent.watchlist.manager import WatchlistManager
from agent.watchlist.publish import BrokerTarget, publish_bundle, watchlist_topic
from agent.watchlist.simulator import AdminSimulator
from hq.db import HqDatabase, device_messages, devices, hits
from hq.enrol import issue_device_tls, issue_hq_tls, setup_local_tls, tls_overrides
from hq.fleet import procstat
from hq.fleet.devices import Mix, device_process
from hq.pgcluster import ThrowawayPostgres
from hq.workers import WorkerPool

log = logging.getLogger(__name__)

Figures = dict[str, float]
LIST_ENTRIES: Final = 1000
DEVICES_PER_PROCESS: Final = 250
"""The devices of a process share one selector thread (epoll: no descriptor limit; each device
holds about ten: two SQLite files with their WAL, its socket) and a few sender threads; one
process runs on one core at a time (the GIL), so four of them for 1,000 devices."""
ENROLERS: Final = 8
POLL_S: Final = 0.05
ROLLOUT_TIMEOUT_S: Final = 60.0
"""The target: a list that has not reached 99 % of the fleet by then counts as not rolled out."""
DRAIN_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True)
class FleetOptions:
    devices: int = 1000
    duration_s: float = 60.0
    processes: int = 0
    """Device processes; 0: enough for ``DEVICES_PER_PROCESS`` each."""
    workers: int = 2
    mix: Mix = field(default_factory=Mix)
    device_state: Path | None = None
    """Where the simulated cameras keep their keys, outboxes and list caches; None: the
    system's temporary folder. All of them share that one disk, where a real camera fsyncs
    its own card: ``/dev/shm`` takes that shared queue out (figure ``device_state_in_ram``)."""


@dataclass
class _Site:
    root: Path
    devices: Path
    ids: list[str]
    hq_keys_dir: Path
    broker: LocalBroker
    device_mqtt: dict[str, dict[str, Any]]
    hq_mqtt: dict[str, Any]
    admin_target: BrokerTarget


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _enrol(
    root: Path, devices: Path, ids: list[str], db: HqDatabase, hq: HqKeys
) -> dict[str, TlsFiles]:
    """The real enrolment steps for each device: signing key, registry, TLS certificate
    (on a few threads: each step fsyncs what it writes, and the waits overlap)."""

    def enrol(device: str) -> TlsFiles:
        key = Ed25519PrivateKey.generate()
        keys = devices / device / "keys"
        write_private(keys / DEVICE_KEY, key)
        hq.public().save(keys)
        db.enrol_device(device, key.public_key(), time.time())
        return issue_device_tls(root / "ca", device, devices / device / "tls")

    with ThreadPoolExecutor(ENROLERS) as pool:
        return dict(zip(ids, pool.map(enrol, ids), strict=True))


def _list_cache(root: Path, anchor: bytes, full: bytes) -> Path:
    """The fleet's current list applied once by a real device manager: each simulated
    device starts from a copy of this cache, as a camera provisioned with the list would."""
    path = root / "watchlist-v1.sqlite"
    manager = WatchlistManager.open(path, Root.from_bytes(anchor))
    try:
        result = manager.handle_update(full, time.time())
    finally:
        manager.close()
    if not result.applied:
        raise TransportError(f"the fleet's base watchlist was refused: {result.reason}")
    return path


def _site(root: Path, devices: Path, ids: list[str], db: HqDatabase, broker_port: int) -> _Site:
    hq_keys_dir = root / "hq-keys"
    hq = HqKeys.load_or_create(hq_keys_dir)
    tls = setup_local_tls(root / "ca", root / "broker-tls")
    device_tls = _enrol(root, devices, ids, db, hq)
    base: dict[str, Any] = {
        "port": broker_port,
        "keepalive_s": 120,
        "ack_timeout_s": 30.0,
    }
    device_mqtt = {d: base | tls_overrides(device_tls[d]) for d in ids}
    hq_mqtt = base | tls_overrides(issue_hq_tls(root / "ca", root / "hq-tls"))
    admin = issue_hq_tls(root / "ca", root / "admin-tls", user="hq-admin")
    target = BrokerTarget(port=broker_port, tls_ca=admin.ca, tls_cert=admin.cert, tls_key=admin.key)
    broker = LocalBroker(port=broker_port, workdir=root / "broker", tls=tls)
    return _Site(root, devices, ids, hq_keys_dir, broker, device_mqtt, hq_mqtt, target)


class _Poller(threading.Thread):
    """Watches the database: hit latency as rows commit, list versions in device statuses."""

    def __init__(self, url: str, new_version: int) -> None:
        super().__init__(name="fleet-poller", daemon=True)
        self._db = HqDatabase(url)
        self._version = new_version
        self._last_id = 0
        self.latencies_ms: list[float] = []
        self.measuring = threading.Event()
        self.rollout_from: float | None = None
        self.updated: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(POLL_S):
            self._hits()
            if self.rollout_from is not None:
                self._statuses()
        self._db.close()

    def _hits(self) -> None:
        query = select(hits.c.id, hits.c.sent_at).where(hits.c.id > self._last_id)
        with self._db._read("poll hits") as conn:
            rows = conn.execute(query.order_by(hits.c.id)).all()
        now = time.time()
        if rows:
            self._last_id = int(rows[-1].id)
        if self.measuring.is_set():
            self.latencies_ms += [(now - float(r.sent_at)) * 1000 for r in rows]

    def _statuses(self) -> None:
        needle = f'"watchlist_version":{self._version}'
        query = select(devices.c.device_id, devices.c.status).where(
            devices.c.status.contains(needle)
        )
        with self._db._read("poll statuses") as conn:
            rows = conn.execute(query).all()
        now = time.time()
        for device, status in rows:
            if device not in self.updated and json.loads(status).get("watchlist_version") == (
                self._version
            ):
                self.updated[str(device)] = now


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Fleet:
    """The device processes and their reports."""

    def __init__(self, site: _Site, options: FleetOptions, anchor: bytes, list_cache: Path) -> None:
        ctx = mp.get_context("spawn")
        self.reports: Any = ctx.Queue()
        self.go, self.stop_producing, self.stop = ctx.Event(), ctx.Event(), ctx.Event()
        groups = [site.ids[i :: options.processes] for i in range(options.processes)]
        groups = [g for g in groups if g]
        self.procs = [
            ctx.Process(
                target=device_process,
                kwargs={
                    "root": str(site.devices),
                    "devices": group,
                    "mqtt": {d: site.device_mqtt[d] for d in group},
                    "anchor": anchor,
                    "list_cache": str(list_cache),
                    "mix": options.mix,
                    "reports": self.reports,
                    "go": self.go,
                    "stop_producing": self.stop_producing,
                    "stop": self.stop,
                },
                name=f"fleet-devices-{i}",
            )
            for i, group in enumerate(groups)
        ]
        self.latest: dict[tuple[str, int], Any] = {}
        self.produced: dict[int, dict[str, float]] = {}
        self.final: dict[str, tuple[list[int], list[int]]] = {}

    def start(self) -> None:
        for proc in self.procs:
            proc.start()

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def pump(self, timeout: float = 0.5) -> None:
        """Read the reports that arrived."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                kind, pid, value = self.reports.get(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # queue.Empty
                return
            if kind == "produced":
                self.produced[pid] = value
            elif kind == "final":
                self.final.update(value)
            else:
                self.latest[(kind, pid)] = value

    def total(self, kind: str) -> int:
        return sum(int(v) for (k, _pid), v in self.latest.items() if k == kind)

    def wait_for(self, kind: str, target: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            reporting = len([k for k in self.latest if k[0] == kind])
            if reporting == len(self.procs) and self.total(kind) >= target:
                return True
            if not all(p.is_alive() for p in self.procs):
                raise TransportError("a fleet device process died")
        return False

    def close(self) -> None:
        self.stop_producing.set()
        self.stop.set()
        deadline = time.monotonic() + 20
        for proc in self.procs:
            while proc.is_alive() and time.monotonic() < deadline:
                self.pump(0.2)  # a child cannot exit while its reports sit in the pipe
            if proc.is_alive():
                proc.kill()
            proc.join(5)


def _stored(db: HqDatabase) -> tuple[dict[str, set[int]], int, int]:
    """Per device the distinct stored sequence numbers; all rows; hit rows."""
    by_device: dict[str, set[int]] = {}
    rows = 0
    with db._read("count stored messages") as conn:
        for table in (hits, device_messages):
            for device, seq in conn.execute(select(table.c.device_id, table.c.seq)):
                by_device.setdefault(str(device), set()).add(int(seq))
                rows += 1
        hit_rows = int(conn.execute(select(func.count()).select_from(hits)).scalar_one())
    return by_device, rows, hit_rows


def _usage(pids: dict[str, list[int]]) -> dict[str, tuple[float, float]]:
    return {
        name: (procstat.cpu_seconds(procstat.tree(p)), procstat.rss_mb(procstat.tree(p)))
        for name, p in pids.items()
    }


def run_fleet_bench(options: FleetOptions) -> Figures:
    """Run the fleet described in the module docstring; returns its figures."""
    _raise_fd_limit()
    if options.processes < 1:
        needed = -(-options.devices // DEVICES_PER_PROCESS)
        options = dataclasses.replace(options, processes=max(2, needed))
    ids = [f"cam-{n:05d}" for n in range(options.devices)]
    root = Path(tempfile.mkdtemp(prefix="raqib-fleet-"))
    devices = Path(tempfile.mkdtemp(prefix="raqib-fleet-devices-", dir=options.device_state))
    figures: Figures = {
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "device_state_in_ram": float(_in_ram(devices)),
    }
    try:
        with ThrowawayPostgres(max_connections=100) as pg, HqDatabase(pg.url) as db:
            t0 = time.perf_counter()
            site = _site(root, devices, ids, db, free_port())
            figures["enrol_s"] = round(time.perf_counter() - t0, 1)
            log.info("fleet: %d devices enrolled in %.0f s", options.devices, figures["enrol_s"])
            admin = AdminSimulator(fleet="fleet-bench", now=int(time.time()))
            base = [
                ListEntry(f"{10000 + i}-A-1", "stolen", f"C-{i}", 2) for i in range(LIST_ENTRIES)
            ]
            full = admin.full(base, 1)
            added = [
                ListEntry(f"{10000 + i}-B-2", "wanted", f"D-{i}", 3) for i in range(LIST_ENTRIES)
            ]
            delta = admin.delta(base, [], added, 2, 1)
            figures.update(
                _run(
                    site,
                    pg=pg,
                    options=options,
                    anchor=admin.root.to_bytes(),
                    full=full,
                    delta=delta,
                    db=db,
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(devices, ignore_errors=True)
    return figures


def _in_ram(path: Path) -> bool:
    """True when ``path`` is on a tmpfs (its fsyncs cost nothing)."""
    best, fstype = "", ""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and path.is_relative_to(fields[1]) and len(fields[1]) >= len(best):
            best, fstype = fields[1], fields[2]
    return fstype == "tmpfs"


def _run(
    site: _Site,
    *,
    pg: ThrowawayPostgres,
    options: FleetOptions,
    anchor: bytes,
    full: bytes,
    delta: bytes,
    db: HqDatabase,
) -> Figures:
    config = parse_config(
        {
            "mqtt": site.hq_mqtt,
            "hq": {"database_url": pg.url, "keys_dir": str(site.hq_keys_dir)},
            "logging": {"level": "WARNING"},
        }
    )
    figures: Figures = {"devices": float(options.devices)}
    with site.broker:
        pool = WorkerPool(config, options.workers)
        pool.start()
        stop_pool = threading.Event()
        supervisor = threading.Thread(target=pool.supervise, args=(stop_pool,), daemon=True)
        supervisor.start()
        fleet = _Fleet(site, options, anchor, _list_cache(site.root, anchor, full))
        poller = _Poller(pg.url, 2)
        try:
            figures.update(
                _drive(
                    site,
                    pg=pg,
                    options=options,
                    fleet=fleet,
                    poller=poller,
                    pool=pool,
                    delta=delta,
                    db=db,
                )
            )
        finally:
            poller.stopping.set()
            fleet.close()
            stop_pool.set()
            supervisor.join(30)
    return figures


def _drive(
    site: _Site,
    *,
    pg: ThrowawayPostgres,
    options: FleetOptions,
    fleet: _Fleet,
    poller: _Poller,
    pool: WorkerPool,
    delta: bytes,
    db: HqDatabase,
) -> Figures:
    t0 = time.perf_counter()
    fleet.start()
    if not fleet.wait_for("connected", options.devices, 180):
        raise TransportError(f"only {fleet.total('connected')} of {options.devices} connected")
    connect_s = time.perf_counter() - t0
    log.info("fleet: %d devices opened and connected in %.0f s", options.devices, connect_s)
    poller.start()
    pids = {
        "broker": [site.broker.pid or 0],
        "ingest": pool.pids(),
        "postgres": [pg.postmaster_pid() or 0],
        "devices": fleet.pids(),
    }
    rows_before = _row_count(db)
    fleet.go.set()
    time.sleep(min(5.0, options.duration_s / 6))  # producers reach their pace
    poller.measuring.set()
    start, before = time.time(), _usage(pids)
    rows_start = _row_count(db)
    time.sleep(options.duration_s / 4)
    published = time.time()
    publish_bundle(delta, watchlist_topic("raqib/v1"), site.admin_target, timeout_s=30)
    poller.rollout_from = published
    log.info("fleet: busy window running; 1,000-entry delta published")
    need99 = -(-options.devices * 99 // 100)
    end_at = start + options.duration_s
    while time.time() < end_at or (
        len(poller.updated) < need99 and time.time() < published + ROLLOUT_TIMEOUT_S
    ):
        fleet.pump(0.5)
    elapsed = time.time() - start
    log.info(
        "fleet: window over after %.0f s; %d devices have the new list",
        elapsed,
        len(poller.updated),
    )
    after = _usage(pids)
    rows_end = _row_count(db)
    poller.measuring.clear()
    fleet.stop_producing.set()
    drained = _drain(fleet, options)
    log.info("fleet: outboxes %s", "drained" if drained else "NOT drained in time")
    time.sleep(1.0)
    figures = _accounting(fleet, db, options)
    figures.update(_bytes_per_row(db))
    rollout = sorted(t - published for t in poller.updated.values())
    heartbeats = sum(v["heartbeats"] for v in fleet.produced.values())
    produced = sum(len(put) for put, _h in fleet.final.values())
    figures.update(
        connect_s=round(connect_s, 1),
        busy_window_s=round(elapsed, 1),
        compression=options.mix.compression,
        ingest_workers=float(options.workers),
        device_processes=float(options.processes),
        drained=float(drained),
        hit_latency_ms_p50=round(_percentile(poller.latencies_ms, 0.5), 1),
        hit_latency_ms_p99=round(_percentile(poller.latencies_ms, 0.99), 1),
        hit_latency_ms_max=round(max(poller.latencies_ms, default=float("nan")), 1),
        hits_timed=float(len(poller.latencies_ms)),
        rollout_s_p50=round(rollout[len(rollout) // 2], 2) if rollout else float("nan"),
        rollout_s_p99=round(rollout[need99 - 1], 2) if len(rollout) >= need99 else float("nan"),
        rollout_devices=float(len(rollout)),
        messages_per_s=round((produced + heartbeats) / (elapsed + 5.0), 1),
        db_rows_per_s=round((rows_end - rows_start) / elapsed, 1),
        producer_late_s_max=round(
            max((v["late_s"] for v in fleet.produced.values()), default=-1), 2
        ),
        devices_connected_at_end=float(fleet.total("connected")),
        rows_before_window=float(rows_before),
    )
    for name in pids:
        cpu = (after[name][0] - before[name][0]) / elapsed
        figures[f"{name}_cpu_cores"] = round(cpu, 2)
        figures[f"{name}_rss_mb"] = round(after[name][1], 1)
    return figures


def _row_count(db: HqDatabase) -> int:
    with db._read("count rows") as conn:
        return int(
            conn.execute(
                text("SELECT (SELECT count(*) FROM hits) + (SELECT count(*) FROM device_messages)")
            ).scalar_one()
        )


def _bytes_per_row(db: HqDatabase) -> Figures:
    """On-disk bytes (table, TOAST and indexes) per stored row, for the capacity plan."""
    figures: Figures = {}
    with db._read("measure table sizes") as conn:
        for table in ("hits", "device_messages"):
            size = conn.execute(
                text("SELECT pg_total_relation_size(:t)"), {"t": table}
            ).scalar_one()
            source = hits if table == "hits" else device_messages
            rows = conn.execute(select(func.count()).select_from(source)).scalar_one()
            figures[f"db_bytes_per_{table}_row"] = round(int(size) / max(1, int(rows)))
    return figures


def _drain(fleet: _Fleet, options: FleetOptions) -> bool:
    """Wait until every outbox is empty (HQ acked all); then collect the final reports.
    False if some messages were still waiting after ``DRAIN_TIMEOUT_S``."""
    drained = False
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline and not drained:
        fleet.pump(0.5)
        depths = [v for (k, _pid), v in fleet.latest.items() if k == "depth"]
        everyone = len(fleet.produced) == len(depths) == len(fleet.procs)
        drained = everyone and sum(depths) == 0
    fleet.stop.set()
    deadline = time.monotonic() + 30
    while len(fleet.final) < options.devices and time.monotonic() < deadline:
        fleet.pump(0.5)
    return drained


def _accounting(fleet: _Fleet, db: HqDatabase, options: FleetOptions) -> Figures:
    stored, rows, hit_rows = _stored(db)
    missing = sum(len(set(put) - stored.get(d, set())) for d, (put, _h) in fleet.final.items())
    waiting = sum(v for (k, _pid), v in fleet.latest.items() if k == "depth")
    lost = max(0, missing - waiting)  # what is still in an outbox is late, not lost
    distinct = sum(len(s) for s in stored.values())
    hits_put = sum(len(h) for _p, h in fleet.final.values())
    return {
        "lost": float(lost),
        "still_in_outboxes": float(waiting),
        "duplicated": float(rows - distinct),
        "messages_stored": float(rows),
        "hits_stored": float(hit_rows),
        "hits_put": float(hits_put),
        "devices_reported": float(len(fleet.final)),
        "mean_put_per_device": round(statistics.fmean([len(p) for p, _ in fleet.final.values()]), 1)
        if fleet.final
        else 0.0,
    }
