"""Simulated cameras for ``raqib bench fleet``: many real device stacks in one process.

Each simulated device is the real device code, minus the camera: its own
Ed25519 key and mTLS certificate, its own durable outbox (SQLite,
``synchronous=FULL``), the real ``Sealer`` (HPKE to HQ + Ed25519), the real
``Uplink`` (its own MQTT 5 connection, persistent session, signed acks,
heartbeats, last will) and the real watchlist path (its own ``WatchlistManager``
and cache, which verifies and applies each signed list). Only what the camera
would produce is synthetic: ledger entries (one per video segment,
hash-chained and signed as the recorder signs them) and hits (a plate crop of
``CROP_BYTES``), put into the outbox at a rate given by :class:`Mix`.

What differs from a camera is only the threads: a camera runs paho's network
thread, a sender and a watchlist updater for its one device; here the devices
of a process share one :class:`~agent.transport.shared_loop.SharedLoop` (one
selector thread for all sockets, ``SENDERS_PER_PROCESS`` sender threads so
that the outboxes' fsyncs overlap) and ``UPDATERS_PER_PROCESS`` watchlist
workers. A few producer threads put the messages (SQLite releases the GIL while
it fsyncs). The parent talks to a device process through a queue of reports
and three events (go, stop producing, stop).
"""

from __future__ import annotations

import heapq
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from agent.config import MqttConfig
from agent.evidence.entry import GENESIS, entry_hash, sign_entry
from agent.messages import HIT_KIND, hit_body
from agent.pki import DEVICE_KEY, HqPublicKeys, load_ed25519_private
from agent.reads import GnssFix, Hit, Match, TrackedRead, WatchlistEntry
from agent.transport.outbox import PRIORITY_HIT, PRIORITY_LEDGER, Outbox
from agent.transport.sealer import Sealer
from agent.transport.shared_loop import SharedLoop
from agent.transport.topics import Topics
from agent.transport.uplink import Uplink
from agent.watchlist.format import Root
from agent.watchlist.manager import UpdateResult, WatchlistManager
from agent.watchlist.publish import watchlist_topic
from agent.watchlist.updater import UpdateWorker

log = logging.getLogger(__name__)

LEDGER_KIND: Final = "ledger"
CROP_BYTES: Final = 4096
PRODUCERS_PER_PROCESS: Final = 2
SENDERS_PER_PROCESS: Final = 8
"""Sender threads of a process's shared loop: each outbox commit waits for an fsync (1-40 ms
on this machine's shared disk), so one thread would serialise the devices' disks."""
UPDATERS_PER_PROCESS: Final = 1
"""Watchlist workers of a process. One: a rollout reaches all 250 devices of a process at once,
and more workers only took the GIL from the senders (hits waited up to 2 s behind the
applies); one worker applies the 250 lists in about 2 s of CPU."""
OPENERS_PER_PROCESS: Final = 8
CONNECTS_PER_S: Final = 25.0
"""Per device process: how fast its devices come on line."""


@dataclass(frozen=True, slots=True)
class Mix:
    """What one camera sends, in real seconds, and how much faster the simulation runs.

    Defaults: a heartbeat a minute (``mqtt.heartbeat_s``), a ledger entry per
    10 s video segment, a watchlist hit every 10 minutes (a busy patrol car in a
    city with a large stolen-vehicle list; most cameras see far fewer).
    """

    heartbeat_s: float = 60.0
    segment_s: float = 10.0
    hit_every_s: float = 600.0
    compression: float = 1.0

    def scaled(self, seconds: float) -> float:
        return seconds / self.compression


@dataclass
class SimDevice:
    """One simulated camera's real device objects and what it has put so far."""

    device_id: str
    topics: Topics
    sealer: Sealer
    outbox: Outbox
    uplink: Uplink
    manager: WatchlistManager
    prev_hash: str = GENESIS
    segments: int = 0
    put_seqs: list[int] | None = None
    hit_seqs: list[int] | None = None

    def status(self) -> dict[str, Any]:
        """The heartbeat's figures, as the daemon reports them (battery etc. simulated)."""
        watchlist = self.manager.status(time.time())
        return {
            "battery_pct": 80.0,
            "storage_free_mb": 20_000.0,
            "temperature_c": 45.0,
            "watchlist_version": watchlist.get("version"),
            "watchlist_stale": watchlist.get("stale"),
            "watchlist_last_refusal": watchlist.get("last_refusal"),
            "model_version": "fleet-sim",
            "agent_version": "fleet-sim",
        }

    def put_ledger(self, now: float, segment_s: float) -> int:
        """One signed, chained segment entry, as the recorder makes it, through the outbox."""
        self.segments += 1
        content = {
            "v": 1,
            "alg": "ed25519",
            "device": self.device_id,
            "seq": self.segments,
            "at": now,
            "prev": self.prev_hash,
            "officer": "",
            "type": "segment",
            "number": self.segments,
            "recording": "fleet-sim",
            "part": self.segments,
            "file": f"seg-{self.segments:08d}.mp4.enc",
            "start": now - segment_s,
            "end": now,
            "frames": 250,
            "sha256": os.urandom(32).hex(),
            "size": 2_500_000,
            "gnss": {"lat": 33.57, "lon": -7.59, "accuracy_m": 5.0, "timestamp": now},
            "flags": [],
        }
        body = sign_entry(content, self.sealer._key)
        self.prev_hash = entry_hash(body)
        topic = self.topics.ledger
        seq = self.outbox.put(
            LEDGER_KIND, topic, self.sealer.maker(LEDGER_KIND, topic, body), PRIORITY_LEDGER
        )
        self.uplink.wake()
        return seq

    def put_hit(self, now: float, crop: bytes) -> int:
        n = random.randrange(10_000, 99_999)
        plate = f"{n}-B-6"
        hit = Hit(
            device_id=self.device_id,
            read=TrackedRead(plate, "MA", 0.93, now - 1.0, now, 4, (10, 20, 120, 30), n),
            match=Match(WatchlistEntry(plate, "stolen", f"case-{n}", 2), "exact"),
            gnss=GnssFix(33.57, -7.59, 5.0, now),
            crop_jpeg=crop,
        )
        topic = self.topics.hits
        maker = self.sealer.maker(HIT_KIND, topic, hit_body(hit))
        seq = self.outbox.put(HIT_KIND, topic, maker, PRIORITY_HIT)
        self.uplink.wake()
        return seq


def open_device(
    state: Path,
    device_id: str,
    *,
    mqtt: dict[str, Any],
    anchor: Root,
    list_cache: str,
    mix: Mix,
    shared: SharedLoop,
) -> SimDevice:
    """The real device objects for one camera whose keys and certificates are under ``state``
    (its watchlist subscription is added by :func:`subscribe_watchlists`)."""
    keys = state / "keys"
    sealer = Sealer(
        device_id, load_ed25519_private(keys / DEVICE_KEY, "key"), HqPublicKeys.load(keys)
    )
    config = MqttConfig.model_validate(mqtt)
    outbox = Outbox(state / "outbox.sqlite")
    cache = state / "watchlist.sqlite"
    if not cache.exists():  # provisioned with the fleet's current list, like a new camera
        shutil.copyfile(list_cache, cache)
    manager = WatchlistManager.open(cache, anchor)  # checks the cached list's signatures
    if manager.status(time.time()).get("version") is None:
        raise RuntimeError(f"{device_id}: the provisioned watchlist was refused")
    holder: dict[str, SimDevice] = {}

    def status() -> dict[str, Any]:
        return holder["device"].status()

    uplink = Uplink(
        config,
        sealer,
        outbox,
        status_source=status,
        heartbeat_s=mix.scaled(mix.heartbeat_s),
        window=20,
        max_unacked=200,
        shared=shared,
    )
    device = SimDevice(
        device_id, Topics(config.topic_prefix, device_id), sealer, outbox, uplink, manager
    )
    device.put_seqs, device.hit_seqs = [], []
    holder["device"] = device
    return device


def subscribe_watchlists(sims: list[SimDevice], workers: int) -> list[UpdateWorker]:
    """Each device's fleet watchlist subscription, verified and applied by its own manager on
    one of ``workers`` shared update threads; a device that applied a new list reports its
    status at once, as the daemon does."""
    updaters: list[UpdateWorker] = []
    for i in range(min(workers, len(sims))):
        share = sims[i::workers]
        updater = UpdateWorker(share[0].manager, _report_applied(share[0]), serves=len(share))
        for sim in share:
            topic = watchlist_topic(sim.topics.prefix)
            sim.uplink.subscribe(topic, updater.feed(sim.manager, _report_applied(sim)))
        updaters.append(updater)
    return updaters


def _report_applied(sim: SimDevice) -> Callable[[UpdateResult], None]:
    def on_result(result: UpdateResult) -> None:
        if result.applied:
            sim.uplink.report_status_now()

    return on_result


class Producer(threading.Thread):
    """Puts each device's ledger entries and hits at the mix's (compressed) rates."""

    def __init__(self, devices: list[SimDevice], mix: Mix, stop: Any) -> None:
        super().__init__(name="fleet-producer", daemon=True)
        self._devices = devices
        self._mix = mix
        self._stop_event = stop
        self._crop = os.urandom(CROP_BYTES)
        self.late_s = 0.0
        self.errors = 0

    def _schedule(self, start: float) -> list[tuple[float, int, str]]:
        segment = self._mix.scaled(self._mix.segment_s)
        hit_mean = self._mix.scaled(self._mix.hit_every_s)
        heap: list[tuple[float, int, str]] = []
        for i in range(len(self._devices)):
            heap.append((start + random.uniform(0, segment), i, LEDGER_KIND))
            heap.append((start + random.expovariate(1 / hit_mean), i, HIT_KIND))
        heapq.heapify(heap)
        return heap

    def run(self) -> None:
        segment = self._mix.scaled(self._mix.segment_s)
        hit_mean = self._mix.scaled(self._mix.hit_every_s)
        heap = self._schedule(time.time())
        while not self._stop_event.is_set():
            due, i, kind = heap[0]
            now = time.time()
            if due > now:
                self._stop_event.wait(min(due - now, 0.5))
                continue
            heapq.heappop(heap)
            self.late_s = max(self.late_s, now - due)
            device = self._devices[i]
            try:
                if kind == LEDGER_KIND:
                    seq = device.put_ledger(now, self._mix.segment_s)
                    heapq.heappush(heap, (due + segment, i, kind))
                else:
                    seq = device.put_hit(now, self._crop)
                    assert device.hit_seqs is not None
                    device.hit_seqs.append(seq)
                    heapq.heappush(heap, (due + random.expovariate(1 / hit_mean), i, kind))
                assert device.put_seqs is not None
                device.put_seqs.append(seq)
            except Exception:
                self.errors += 1
                log.exception("fleet: %s could not put a %s", device.device_id, kind)


def device_process(
    *,
    root: str,
    devices: list[str],
    mqtt: dict[str, dict[str, Any]],
    anchor: bytes,
    list_cache: str,
    mix: Mix,
    reports: Any,
    go: Any,
    stop_producing: Any,
    stop: Any,
) -> None:
    """A child process: open its devices, connect them, produce until told, drain, report."""
    logging.basicConfig(level=logging.WARNING)
    root_doc = Root.from_bytes(anchor)
    shared = SharedLoop(senders=SENDERS_PER_PROCESS, name="fleet").start()

    def open_one(device_id: str) -> SimDevice:
        return open_device(
            Path(root) / device_id,
            device_id,
            mqtt=mqtt[device_id],
            anchor=root_doc,
            list_cache=list_cache,
            mix=mix,
            shared=shared,
        )

    with ThreadPoolExecutor(OPENERS_PER_PROCESS) as pool:  # the files' fsyncs overlap
        sims = list(pool.map(open_one, devices))
    updaters = subscribe_watchlists(sims, UPDATERS_PER_PROCESS)
    for updater in updaters:
        updater.start()
    reports.put(("opened", os.getpid(), len(sims)))
    for n, sim in enumerate(sims):  # a fleet comes on line over a while, not in one second
        sim.uplink.start()
        if n % 10 == 9:
            reports.put(("connected", os.getpid(), sum(s.uplink.connected for s in sims)))
        time.sleep(1 / CONNECTS_PER_S)
    while not go.wait(0.5):
        if stop.is_set():
            _close(sims, updaters, shared)
            return
        reports.put(("connected", os.getpid(), sum(s.uplink.connected for s in sims)))
    producers = [
        Producer(sims[i::PRODUCERS_PER_PROCESS], mix, stop_producing)
        for i in range(PRODUCERS_PER_PROCESS)
    ]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    heartbeats = sum(s.uplink.stats()["heartbeats"] for s in sims)
    reports.put(
        (
            "produced",
            os.getpid(),
            {
                "heartbeats": heartbeats,
                "late_s": max(p.late_s for p in producers),
                "errors": sum(p.errors for p in producers),
            },
        )
    )
    while not stop.wait(0.5):
        reports.put(("depth", os.getpid(), sum(s.outbox.depth() for s in sims)))
    reports.put(
        (
            "final",
            os.getpid(),
            {s.device_id: (s.put_seqs or [], s.hit_seqs or []) for s in sims},
        )
    )
    _close(sims, updaters, shared)


def _close(sims: list[SimDevice], updaters: list[UpdateWorker], shared: SharedLoop) -> None:
    for sim in sims:
        sim.uplink.stop(timeout=0.3)
    for updater in updaters:
        updater.stop(timeout=1.0)
    shared.close()
    for sim in sims:
        sim.outbox.close()
        sim.manager.close()
