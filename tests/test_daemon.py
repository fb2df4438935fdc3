"""The agent end to end on real parts: sample clip, shipped models, Mosquitto, SQLite HQ."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.broker import LocalBroker, free_port
from agent.config import DEFAULT_SAMPLES_DIR, RaqibConfig, parse_config
from agent.daemon import Agent
from agent.pki import HqKeys
from agent.watchlist.provision import CACHE_FILE, FleetSigner, provision_watchlist
from firmware_glue.alert import SimulatedAlert
from hq.db import HqDatabase
from hq.enrol import enrol_local
from hq.ingest import IngestService
from hq.watchlist_keys import WatchlistKeyRegistry

CLIP = DEFAULT_SAMPLES_DIR / "street_clip.mp4"
TRUTH = json.loads((DEFAULT_SAMPLES_DIR / "street_clip.truth.json").read_text(encoding="utf-8"))
WATCHLIST = DEFAULT_SAMPLES_DIR / "watchlist.csv"


def watchlisted_plates_in_clip() -> set[str]:
    listed = {line.split(",")[0] for line in WATCHLIST.read_text(encoding="utf-8").splitlines()[1:]}
    return {v["plate"] for v in TRUTH["vehicles"]} & listed


def agent_config(tmp_path: Path, port: int, **capture: object) -> RaqibConfig:
    """The test device's config, enrolled at a test HQ (keys made once per tmp_path)."""
    config = parse_config(
        {
            "device": {"id": "cam-test-01", "state_dir": str(tmp_path / "device")},
            "capture": {"uri": str(CLIP), **capture},
            "mqtt": {"port": port, "ack_timeout_s": 2.0, "reconnect_max_s": 1.0},
            "hq": {
                "database_url": f"sqlite:///{tmp_path / 'hq.sqlite'}",
                "keys_dir": str(tmp_path / "hq-keys"),
            },
            "status": {"metrics_port": 0, "interval_s": 0.5},
            # these tests read the clip with no HQ key service: the grace copy made at
            # enrolment opens the encrypted list (test_watchlist_confidential covers "memory")
            "watchlist": {"key_policy": "grace"},
        }
    )
    enrol_local(config)
    signer = FleetSigner.load_or_create(tmp_path / "hq-watchlist", "test-fleet", time.time())
    provision_watchlist(config, signer, WATCHLIST, time.time())
    return config


def write_toml(path: Path, config: RaqibConfig) -> Path:
    lines = []
    for section, values in config.model_dump(mode="json").items():
        lines.append(f"[{section}]")
        lines += [
            f"{key} = {json.dumps(value)}" for key, value in values.items() if value is not None
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with LocalBroker(workdir=tmp_path / "broker") as running:
        yield running


@pytest.fixture
def hq(tmp_path: Path, broker: LocalBroker) -> Iterator[HqDatabase]:
    config = agent_config(tmp_path, broker.port)
    db = HqDatabase(config.hq.database_url)
    ingest = IngestService(config.mqtt, db, HqKeys.load(config.hq.keys_dir))
    ingest.start()
    yield db
    ingest.stop()
    db.close()


@pytest.mark.broker
def test_sample_clip_hits_reach_hq_once_each(
    tmp_path: Path, broker: LocalBroker, hq: HqDatabase
) -> None:
    agent = Agent(agent_config(tmp_path, broker.port))
    agent.start()
    try:
        agent.run(until_end=True)
        assert agent.wait_delivered(20)
    finally:
        agent.shutdown()
    # each listed plate once, read exactly or near enough for a fuzzy match
    # (a plate read as it enters the frame: ``BY-446-C`` for ``BY-446-CV``)
    stored = {row["entry_plate"] for row in hq.list_hits()}
    assert stored == watchlisted_plates_in_clip()
    assert all(row["match"] in ("exact", "fuzzy") for row in hq.list_hits())
    assert hq.count_hits() == agent.stats.hits_raised == len(stored)
    assert isinstance(agent.alerter.adapter, SimulatedAlert)
    assert len(agent.alerter.adapter.events) == len(stored)
    rows = hq.list_hits()
    assert all(row["crop_jpeg"][:2] == b"\xff\xd8" for row in rows)  # a JPEG of the plate


@pytest.mark.broker
def test_with_deep_reads_each_listed_plate_still_reaches_hq_once(
    tmp_path: Path, broker: LocalBroker, hq: HqDatabase
) -> None:
    """The photo reader's deep reads join the video's tracks: no listed plate twice, the
    worker's figures in the status, and the worker stopped with the agent."""
    config = agent_config(tmp_path, broker.port)
    config = config.model_copy(
        update={"reader": config.reader.model_copy(update={"deep_reads": True})}
    )
    agent = Agent(config)
    agent.start()
    try:
        agent.run(until_end=True)
        assert agent.wait_delivered(20)
        status = agent.status()
    finally:
        agent.shutdown()
    stored = [row["entry_plate"] for row in hq.list_hits()]
    assert sorted(stored) == sorted(watchlisted_plates_in_clip())
    assert status["deep_reads_running"] is True
    assert isinstance(status["deep_reads"], int) and status["deep_reads"] >= 1
    assert status["deep_read_errors"] == 0
    assert agent.deep_reads is not None and not agent.deep_reads.running


@pytest.mark.broker
def test_broker_absent_at_start_agent_keeps_reading_and_delivers_later(tmp_path: Path) -> None:
    port = free_port()
    agent = Agent(agent_config(tmp_path, port))
    agent.start()
    try:
        agent.run(until_end=True)  # the whole clip is read with no broker at all
        assert agent.stats.hits_raised == len(watchlisted_plates_in_clip())
        assert agent.outbox.depth() >= agent.stats.hits_raised  # hits and ledger entries
        assert not agent.uplink.connected
        with LocalBroker(port=port, workdir=tmp_path / "broker") as broker:
            config = agent_config(tmp_path, broker.port)
            db = HqDatabase(config.hq.database_url)
            ingest = IngestService(config.mqtt, db, HqKeys.load(config.hq.keys_dir))
            ingest.start()
            try:
                assert agent.wait_delivered(30)
                assert db.count_hits() == agent.stats.hits_raised
            finally:
                ingest.stop()
                db.close()
    finally:
        agent.shutdown()


@pytest.mark.broker
def run_clip(config: RaqibConfig) -> Agent:
    agent = Agent(config)
    agent.start()
    try:
        agent.run(until_end=True)
    finally:
        agent.shutdown()
    return agent


def test_watchlist_cache_edited_on_disk_is_refused_and_the_agent_keeps_reading(
    tmp_path: Path,
) -> None:
    config = agent_config(tmp_path, free_port())
    cache = config.device.state_dir / CACHE_FILE
    with contextlib.closing(sqlite3.connect(cache)) as db, db:
        db.execute("UPDATE wl_lists SET content = content || x'00'")
    agent = run_clip(config)
    assert agent.pipeline.stats.reads > 0  # plates are still read
    assert agent.stats.hits_raised == 0  # but nothing matches a refused list
    assert agent.watchlist is not None
    assert agent.watchlist.status(time.time())["cache_tampered"]
    agent.watchlist.close()  # status() after the agent's shutdown opened the cache again


def test_device_without_a_trusted_watchlist_root_runs_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = agent_config(tmp_path, free_port())
    (config.device.keys_path / "watchlist-root.json").unlink()
    agent = run_clip(config)
    assert agent.watchlist is None
    assert agent.pipeline.stats.reads > 0
    assert agent.stats.hits_raised == 0
    assert "NO WATCHLIST ALERTS" in caplog.text


class LogWatcher:
    """Collects a child process's output on a thread so tests can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.05)
        return False

    def text(self) -> str:
        self._thread.join(5)
        return "".join(self.lines)


@contextlib.contextmanager
def agent_process(
    config_path: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], LogWatcher]]:
    """`raqib run --config` as a child process; killed and reaped on exit."""
    with subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    ) as process:
        watcher = LogWatcher(process)
        try:
            yield process, watcher
        finally:
            process.kill()
            process.wait(10)
            watcher.text()


def test_sigterm_stops_the_agent_cleanly(tmp_path: Path) -> None:
    config = agent_config(tmp_path, free_port(), loop=True, realtime=True)
    with agent_process(write_toml(tmp_path / "raqib.toml", config)) as (process, watcher):
        assert watcher.wait_for("agent started"), watcher.text()
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    output = watcher.text()
    assert "signal received, stopping" in output
    assert "agent stopped" in output


def test_corrupt_video_is_reported_and_the_daemon_keeps_running(tmp_path: Path) -> None:
    data = bytearray(CLIP.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 4000] = b"\xff" * 4000
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    config = agent_config(tmp_path, free_port(), uri=str(corrupt))
    with agent_process(write_toml(tmp_path / "raqib.toml", config)) as (process, watcher):
        assert watcher.wait_for("corrupt or truncated"), watcher.text()
        time.sleep(1.0)
        assert process.poll() is None  # still running after the bad file
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert "agent stopped" in watcher.text()


def test_systemd_gets_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(30)
        config = agent_config(tmp_path, free_port(), loop=True, realtime=True)
        env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}
        messages: list[str] = []
        config_path = write_toml(tmp_path / "raqib.toml", config)
        with agent_process(config_path, env) as (process, _watcher):
            while not any("WATCHDOG=1" in m for m in messages):
                messages.append(sock.recv(4096).decode())
            process.send_signal(signal.SIGTERM)
            while not any("STOPPING=1" in m for m in messages):
                messages.append(sock.recv(4096).decode())
            assert process.wait(timeout=20) == 0
    assert messages[0].startswith("READY=1")


def test_bad_config_exits_with_usage_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "raqib.toml"
    path.write_text("[capture]\nqueue_size = -1\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "capture.queue_size" in result.stderr


@pytest.mark.broker
@pytest.mark.security
def test_watchlist_update_over_mqtt_is_applied_and_a_forged_one_refused(
    tmp_path: Path, broker: LocalBroker
) -> None:
    from agent.watchlist.publish import BrokerTarget, publish_bundle, watchlist_topic

    config = agent_config(tmp_path, broker.port, loop=True, realtime=True)
    newer = tmp_path / "v2.csv"
    newer.write_text(WATCHLIST.read_text(encoding="utf-8") + "AA-111-AA,stolen,T-1,1\n", "utf-8")
    signer = FleetSigner.load_or_create(tmp_path / "hq-watchlist", "test-fleet", time.time())
    intruder = FleetSigner.load_or_create(tmp_path / "intruder", "test-fleet", time.time())
    topic = watchlist_topic(config.mqtt.topic_prefix)
    target = BrokerTarget(port=broker.port)
    agent = Agent(config)
    agent.start()
    runner = threading.Thread(target=agent.run)
    runner.start()
    try:
        with WatchlistKeyRegistry(config.hq.database_url) as registry:
            fleet = registry.recipients()
        publish_bundle(signer.sealed_full_list(newer, 2, time.time(), 7, fleet), topic, target)
        deadline = time.monotonic() + 20

        def swapped_in() -> bool:
            # The cache takes the list on the update thread; the main loop then
            # swaps the matcher in: wait for both.
            return (
                agent.status()["watchlist_version"] == 2
                and agent.pipeline.matcher.match("AA-111-AA", 0.9) is not None
            )

        while not swapped_in() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent.status()["watchlist_version"] == 2
        assert agent.pipeline.matcher.match("AA-111-AA", 0.9) is not None

        forged = intruder.sealed_full_list(WATCHLIST, 3, time.time(), 7, fleet)
        publish_bundle(forged, topic, target)
        assert agent.watchlist is not None
        deadline = time.monotonic() + 20
        while agent.watchlist.status(time.time())["last_refusal"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert agent.status()["watchlist_version"] == 2  # the forged list changed nothing
    finally:
        agent.stop()
        runner.join(30)
        agent.shutdown()
