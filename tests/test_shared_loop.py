"""Many real uplinks on one shared loop (the fleet simulator's way of running devices):
one selector thread carries every socket, a few sender threads step every uplink, and HQ
still stores each message exactly once, across a broker crash too."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from transport_kit import Fleet

from agent.broker import LocalBroker
from agent.config import MqttConfig
from agent.transport.outbox import Outbox
from agent.transport.shared_loop import SharedLoop
from agent.transport.uplink import Uplink
from agent.watchlist.content import ListEntry
from agent.watchlist.manager import UpdateResult, WatchlistManager
from agent.watchlist.simulator import AdminSimulator
from agent.watchlist.updater import UpdateWorker
from hq.db import HqDatabase
from hq.ingest import IngestService

pytestmark = [pytest.mark.broker, pytest.mark.fleet]

DEADLINE_S = 60.0


@pytest.fixture
def db(tmp_db_url: str) -> Iterator[HqDatabase]:
    database = HqDatabase(tmp_db_url)
    yield database
    database.close()


@contextlib.contextmanager
def descriptors_above_1023() -> Iterator[None]:
    """Hold descriptors up to 1,100, so the sockets opened meanwhile are past select()'s 1023."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"needs 4,096 descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Rig:
    """N devices (own key, own outbox, own MQTT session) on one shared loop, and HQ ingest."""

    def __init__(
        self,
        n: int,
        config: MqttConfig,
        db: HqDatabase,
        fleet: Fleet,
        tmp: Path,
        senders: int,
        high_fds: bool = False,
    ) -> None:
        """``high_fds``: the devices' sockets get descriptors above 1023 (HQ's ingest, which
        waits with paho's select(), connects first)."""
        self.devices = [f"cam-s{i:03d}" for i in range(n)]
        fleet.enrol(db, *self.devices)
        self.fleet = fleet
        self.ingest = IngestService(config, db, fleet.hq_keys, client_id="hq-ingest-shared")
        self.ingest.start()
        self.loop = SharedLoop(senders=senders, name="test").start()
        self.boxes = [Outbox(tmp / f"{d}.sqlite") for d in self.devices]
        with descriptors_above_1023() if high_fds else contextlib.nullcontext():
            self.uplinks: list[Uplink] = [
                fleet.uplink(config, box, d, shared=self.loop)
                for d, box in zip(self.devices, self.boxes, strict=True)
            ]
            self.wait(lambda: self.connected() == n, "every device connected")

    def put(self, per_device: int) -> None:
        for device, box, uplink in zip(self.devices, self.boxes, self.uplinks, strict=True):
            self.fleet.put_hits_bulk(box, per_device, device)
            uplink.wake()

    def wait(self, predicate: object, what: str) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + DEADLINE_S
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert predicate(), what

    def drained(self) -> bool:
        return all(box.depth() == 0 for box in self.boxes)

    def connected(self) -> int:
        return sum(uplink.connected for uplink in self.uplinks)

    def close(self) -> None:
        for uplink in self.uplinks:
            uplink.stop(timeout=2.0)
        self.loop.close()
        self.ingest.stop()
        for box in self.boxes:
            box.close()


def assert_each_once(db: HqDatabase, devices: list[str], per_device: int) -> None:
    for device in devices:
        assert sorted(db.hit_seqs(device)) == list(range(1, per_device + 1)), device
    assert db.count_hits() == len(devices) * per_device


def test_many_devices_on_one_selector_thread_deliver_every_message_once(
    broker: LocalBroker,
    mqtt_config: MqttConfig,
    db: HqDatabase,
    tmp_path: Path,
) -> None:
    threads_before = threading.active_count()
    rig = Rig(60, mqtt_config, db, Fleet(), tmp_path, senders=2, high_fds=True)
    try:
        assert rig.loop.connections == 60
        # one network thread, two senders, two connectors, and ingest's own: not one per device
        assert threading.active_count() - threads_before <= 8
        sockets = [u._client.socket() for u in rig.uplinks]
        assert min(s.fileno() for s in sockets if s is not None) > 1023  # past select()
        rig.put(5)
        rig.wait(rig.drained, "every outbox emptied by HQ's acks")
        rig.put(3)  # a second round on the same sessions
        rig.wait(rig.drained, "the second round acked too")
    finally:
        rig.close()
    assert_each_once(db, rig.devices, 8)
    assert rig.ingest.stats()["rejected"] == 0
    assert sum(u.stats()["acked"] for u in rig.uplinks) == 60 * 8


def test_shared_loop_reconnects_every_device_after_a_broker_crash(
    broker: LocalBroker, mqtt_config: MqttConfig, db: HqDatabase, tmp_path: Path
) -> None:
    rig = Rig(20, mqtt_config, db, Fleet(), tmp_path, senders=2)
    try:
        rig.put(10)
        broker.restart(kill=True)  # mid-flow: some published, some acked, some neither
        rig.put(10)  # put while the broker is down or coming back
        rig.wait(lambda: rig.connected() == 20, "every device back after the crash")
        rig.wait(rig.drained, "everything acked after the crash")
        assert rig.loop.connections == 20
    finally:
        rig.close()
    assert_each_once(db, rig.devices, 20)


def test_a_stopped_uplink_leaves_the_loop_and_keeps_its_messages(
    broker: LocalBroker, mqtt_config: MqttConfig, db: HqDatabase, tmp_path: Path
) -> None:
    rig = Rig(3, mqtt_config, db, Fleet(), tmp_path, senders=1)
    try:
        rig.uplinks[0].stop(timeout=2.0)
        assert not rig.uplinks[0].connected
        rig.wait(lambda: rig.loop.connections == 2, "the stopped device's socket closed")
        rig.put(2)
        rig.wait(lambda: all(b.depth() == 0 for b in rig.boxes[1:]), "the others acked")
        time.sleep(0.5)
        assert rig.boxes[0].depth() == 2  # the stopped device keeps its messages for later
    finally:
        rig.close()


def test_one_update_worker_applies_each_devices_list_with_its_own_manager(
    tmp_path: Path,
) -> None:
    """The fleet simulator's watchlist path: one worker thread for many devices, each update
    verified and applied by the device's own manager, each result to that device."""
    admin = AdminSimulator(now=int(time.time()))
    base = [ListEntry(f"{10 + i}-A-1", "stolen", f"C-{i}", 2) for i in range(20)]
    managers = [WatchlistManager.open(tmp_path / f"d{i}.sqlite", admin.root) for i in range(3)]
    results: dict[int, list[UpdateResult]] = {0: [], 1: [], 2: []}
    worker = UpdateWorker(managers[0], results[0].append, serves=3)
    offers = [worker.feed(m, results[i].append) for i, m in enumerate(managers)]
    worker.start()
    try:
        offers[0](admin.full(base, 1))
        offers[2](admin.full(base[:5], 1))
        offers[1](b"not a signed list")
        deadline = time.monotonic() + 10
        while sum(map(len, results.values())) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert [r.applied for r in results[0]] == [True]
    assert [r.applied for r in results[1]] == [False]
    assert [r.applied for r in results[2]] == [True]
    entries = [m.status(time.time())["entries"] for m in managers]
    for manager in managers:
        manager.close()
    assert entries == [20, 0, 5]


class Counter:
    """A stand-in sender that records when it was stepped."""

    def __init__(self, poll_s: float, pause: float = 0.0, fail: bool = False) -> None:
        self._poll_s, self._pause, self._fail = poll_s, pause, fail
        self.steps: list[float] = []

    @property
    def poll_s(self) -> float:
        return self._poll_s

    def step(self) -> float:
        self.steps.append(time.monotonic())
        if self._fail:
            raise RuntimeError("a bug in one uplink's step")
        return self._pause


def test_shared_senders_step_woken_uplinks_at_once_and_the_rest_every_poll() -> None:
    with SharedLoop(senders=2, name="test-senders") as loop:
        idle, woken = Counter(poll_s=0.2), Counter(poll_s=10.0)
        broken, paused = Counter(poll_s=0.05, fail=True), Counter(poll_s=0.05, pause=0.6)
        for counter in (idle, woken, broken, paused):
            loop.add_sender(counter)
        time.sleep(0.1)
        asked = time.monotonic()
        loop.wake(woken)
        time.sleep(1.0)
        loop.wake(paused)  # held: its last step asked for a pause
        loop.remove_sender(idle)
        after_removal = len(idle.steps)
        time.sleep(0.3)
    assert len(woken.steps) == 2  # added, then woken; its poll of 10 s never came
    assert woken.steps[1] - asked < 0.2
    assert 4 <= after_removal <= 8  # every 0.2 s for ~1.1 s
    assert len(idle.steps) == after_removal
    # a raising step stops neither it nor the others; it is retried after 1 s, as on a camera
    assert len(broken.steps) >= 2
    assert all(b - a >= 0.95 for a, b in zip(broken.steps, broken.steps[1:], strict=False))
    gaps = [b - a for a, b in zip(paused.steps, paused.steps[1:], strict=False)]
    assert paused.steps and all(gap >= 0.55 for gap in gaps)
