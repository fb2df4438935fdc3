"""The composition root: start-up reads as the ordered list of steps in ``Agent.start``.

One process: a capture thread fills a bounded frame queue, the main loop reads
plates and raises hits, each hit alerts the officer at once and is stored in the
durable outbox before the uplink thread sends it to HQ. Nothing here blocks on
the network: with no broker the agent keeps reading and queues its hits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from agent import __version__
from agent.alerts import Alerter, make_alert_adapter
from agent.capture.factory import open_source
from agent.capture.queue import FrameQueue
from agent.capture.worker import CaptureWorker
from agent.commands import SEEN_FILE, CommandService, SeenCommands, device_handlers
from agent.config import GnssConfig, RaqibConfig
from agent.deep_reads import DeepReads
from agent.disposition import DispositionDesk
from agent.errors import PayloadError, StorageError, TransportError, WatchlistError
from agent.evidence.entry import MESSAGE_KIND as LEDGER_KIND
from agent.evidence.service import EvidenceService
from agent.messages import COMMAND_REPLY_KIND, DISPOSITION_KIND, HIT_KIND, hit_body
from agent.metrics import MetricsServer, write_status
from agent.pipeline import Pipeline
from agent.pki import DEVICE_KEY, HqPublicKeys, fingerprint, load_or_create_device_key
from agent.reader.base import PlateReader
from agent.reads import Hit
from agent.systemd import SystemdNotifier
from agent.tracking import Tracker
from agent.transport.outbox import PRIORITY_HIT, PRIORITY_LEDGER, Outbox
from agent.transport.sealer import Sealer
from agent.transport.topics import Topics
from agent.transport.uplink import Uplink
from agent.watchlist.manager import UpdateResult, WatchlistManager
from agent.watchlist.matcher import Matcher
from agent.watchlist.provision import open_device_watchlist
from agent.watchlist.publish import watchlist_key_topic, watchlist_topic
from agent.watchlist.updater import UpdateWorker
from firmware_glue.gnss import GnssAdapter, GpsdGnss, NmeaReplayGnss, NmeaSerialGnss
from firmware_glue.power import PowerMonitor, SimulatedPower, SysfsPower

log = logging.getLogger(__name__)

FRAME_WAIT_S = 0.2
DEEP_READ_DRAIN_S = 5.0
"""At the end of a file, how long to wait for the frame the deep reads' worker is reading."""
MAX_UNSAVED_HITS = 1000


def disk_free_mb(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free // 2**20
    except OSError:
        return -1


def open_watchlist(config: RaqibConfig) -> WatchlistManager | None:
    """The verified watchlist cache; None (logged loudly) if the device has none it can trust."""
    try:
        return open_device_watchlist(config)
    except (WatchlistError, StorageError) as exc:
        log.error("watchlist unavailable, NO WATCHLIST ALERTS until one is installed: %s", exc)
        return None


def model_version(config: RaqibConfig) -> str | None:
    """The shipped recogniser's version, for the heartbeat (None if unreadable)."""
    try:
        meta = json.loads((config.reader.models_dir / "recogniser.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    version = meta.get("version") if isinstance(meta, dict) else None
    return str(version) if version is not None else None


def make_power(config: RaqibConfig) -> PowerMonitor:
    return SysfsPower() if config.board.power == "sysfs" else SimulatedPower()


def make_gnss(config: GnssConfig) -> GnssAdapter | None:
    if config.adapter == "replay":
        return NmeaReplayGnss(config.path, max_age_s=config.max_age_s)
    if config.adapter == "serial":
        return NmeaSerialGnss(config.path, max_age_s=config.max_age_s)
    if config.adapter == "gpsd":
        return GpsdGnss(port=config.gpsd_port, max_age_s=config.max_age_s)
    return None


def make_reader(config: RaqibConfig) -> PlateReader:
    from agent.reader.pipeline import ModelPlateReader

    return ModelPlateReader.from_config(config.reader)


@dataclass(slots=True)
class AgentStats:
    hits_raised: int = 0
    hits_queued: int = 0
    storage_errors: int = 0


class Agent:
    """The device daemon. ``run`` returns on ``stop()`` (SIGTERM) or at the end of a file."""

    def __init__(self, config: RaqibConfig, reader: PlateReader | None = None) -> None:
        self.config = config
        self._reader = reader
        self._stop = threading.Event()
        self._unsaved: deque[Hit] = deque(maxlen=MAX_UNSAVED_HITS)
        self.stats = AgentStats()
        self.notifier = SystemdNotifier()
        self.topics = Topics(config.mqtt.topic_prefix, config.device.id)
        self._fps_mark = (time.monotonic(), 0)
        self.evidence: EvidenceService | None = None
        self.watchlist: WatchlistManager | None = None
        self._watchlist_results: deque[UpdateResult] = deque()
        self._model_version = model_version(config)
        self.power = make_power(config)

    def start(self) -> None:
        """Bring the agent up in order; only a missing model or state dir is fatal."""
        cfg = self.config
        state_dir = Path(cfg.device.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        tracker = Tracker(cfg.tracker.gap_s, cfg.tracker.min_reads, cfg.tracker.retention_s)
        reader = self._reader or make_reader(cfg)
        self.deep_reads = DeepReads(cfg.reader) if cfg.reader.deep_reads else None
        self.watchlist = open_watchlist(cfg)
        matcher = self.watchlist.matcher if self.watchlist is not None else Matcher()
        self.pipeline = Pipeline(
            reader,
            tracker,
            matcher,
            cfg.device.id,
            cfg.reader.every_nth_frame,
            fast_min_confidence=cfg.tracker.fast_alert_threshold,
            realert_s=cfg.tracker.realert_s,
            deep=self.deep_reads,
        )
        self.alerter = Alerter(make_alert_adapter(cfg.alert))
        self.gnss = make_gnss(cfg.gnss)
        if self.gnss is not None:
            self.gnss.start()
        self.sealer = self._make_sealer()
        self.outbox = Outbox(state_dir / "outbox.sqlite")
        self.uplink = Uplink(
            cfg.mqtt,
            self.sealer,
            self.outbox,
            status_source=self._heartbeat_status,
            heartbeat_s=cfg.mqtt.heartbeat_s,
        )
        self.watchlist_updates = self._subscribe_watchlist()
        self.disposition = self._make_disposition_desk()
        self.commands = self._subscribe_commands()
        self.uplink.start()
        self.evidence = self._start_evidence()
        self._wait_for_watchlist_key()
        self.queue = FrameQueue(cfg.capture.queue_size)
        evidence = self.evidence
        hooks = evidence.camera_hooks if evidence is not None else None
        self.capture = CaptureWorker(
            lambda: open_source(cfg.capture, hooks),
            self.queue,
            *([evidence.frames] if evidence is not None and evidence.wants_frames else []),
            loop=cfg.capture.loop,
            reconnect_s=cfg.capture.reconnect_s,
        )
        self.capture.start()
        self.metrics = self._start_metrics()
        if self.commands is not None:
            self.commands.start()
        self.notifier.ready(f"reading plates from {cfg.capture.source}")
        log.info("agent started", extra={"device": cfg.device.id, "source": cfg.capture.source})

    def _subscribe_watchlist(self) -> UpdateWorker | None:
        """Fleet and per-device list updates, verified and applied on their own thread."""
        if self.watchlist is None:
            return None
        worker = UpdateWorker(self.watchlist, self._watchlist_results.append)
        worker.start()
        prefix = self.config.mqtt.topic_prefix
        self.uplink.subscribe(watchlist_topic(prefix), worker.offer)
        self.uplink.subscribe(watchlist_topic(prefix, self.config.device.id), worker.offer)
        self.uplink.subscribe(watchlist_key_topic(prefix, self.config.device.id), worker.offer_key)
        return worker

    def _make_disposition_desk(self) -> DispositionDesk:
        """The officer's verdict on the latest alert (button or command) -> ``disposition``."""
        cfg = self.config
        return DispositionDesk(
            lambda body: self._queue_event(DISPOSITION_KIND, body),
            officer=cfg.evidence.officer,
            window_s=cfg.alert.disposition_window_s,
            long_press_s=cfg.alert.long_press_s,
            feedback=lambda message: self.alerter.adapter.signal(1, message),
        )

    def _subscribe_commands(self) -> CommandService | None:
        """HQ-signed remote commands, verified and run on their own thread (``agent.commands``)."""
        try:
            seen = SeenCommands(Path(self.config.device.state_dir) / SEEN_FILE)
        except StorageError as exc:
            log.error("remote commands off: %s", exc)
            return None
        handlers = device_handlers(
            self.record,
            self.uplink.heartbeat_now,
            self.disposition.from_command,
        )
        service = CommandService(
            self.config.device.id,
            self.sealer.hq_signing_key,
            seen,
            handlers,
            lambda body: self._queue_event(COMMAND_REPLY_KIND, body),
        )
        # started at the end of start(): a command queued at the broker while the device
        # was away waits until the recorder it may need is up
        self.uplink.subscribe(self.topics.commands, service.offer)
        return service

    def _queue_event(self, kind: str, body: dict[str, object]) -> None:
        """A disposition or command reply into the durable outbox (StorageError if not kept)."""
        topic = self.topics.events
        self.outbox.put(kind, topic, self.sealer.maker(kind, topic, body), PRIORITY_HIT)
        self.uplink.wake()

    def _wait_for_watchlist_key(self) -> None:
        """``watchlist.key_wait_s``: give HQ's key and list a moment before reading plates."""
        wait_s = self.config.watchlist.key_wait_s
        manager = self.watchlist
        if manager is None or wait_s <= 0:
            return
        deadline = time.monotonic() + wait_s
        while (manager.locked or len(manager.matcher) == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._apply_watchlist_results()
        if manager.locked:
            log.warning(
                "no watchlist key from HQ after %.0f s: reading plates without alerts", wait_s
            )

    def _apply_watchlist_results(self) -> None:
        """On the main loop: swap in a new list, and put each outcome in the ledger for HQ."""
        while self._watchlist_results:
            result = self._watchlist_results.popleft()
            if result.applied and self.watchlist is not None:
                self.pipeline.replace_matcher(self.watchlist.matcher)
                self.uplink.report_status_now()  # HQ sees the new version at once
            elif result.reason == "replay" and result.offered_version == result.version:
                continue  # the retained list again, at each reconnect
            elif result.reason == "locked":
                continue  # held until HQ's key arrives, then applied (or refused) and noted
            if self.evidence is not None:
                name = "watchlist_applied" if result.applied else "watchlist_refused"
                self.evidence.note_action(name, "hq", result.to_dict())

    def _make_sealer(self) -> Sealer:
        """Device key (made on first start) and HQ's public keys (ConfigError if not enrolled)."""
        keys_dir = self.config.device.keys_path
        key = load_or_create_device_key(keys_dir / DEVICE_KEY)
        log.info("device signing key", extra={"fingerprint": fingerprint(key.public_key())})
        return Sealer(self.config.device.id, key, HqPublicKeys.load(keys_dir))

    def _start_evidence(self) -> EvidenceService | None:
        """Recorder (own frame queue and thread), ledger and record button; None if off.

        A broken evidence store is reported to the officer and the agent goes on
        reading plates without recording.
        """
        cfg = self.config
        if not cfg.evidence.enabled:
            return None
        keys_dir = cfg.device.keys_path
        try:
            service = EvidenceService(
                cfg,
                signing_key=load_or_create_device_key(keys_dir / DEVICE_KEY),
                hq_key=HqPublicKeys.load(keys_dir).encryption,
                alert=self.alerter.adapter,
                gnss=self.gnss.latest if self.gnss is not None else None,
                publish=self._queue_ledger_entry,
                claim_press=self.disposition.on_button,
            )
            service.start()
        except (StorageError, TransportError) as exc:
            log.error("evidence recorder not started, NOT RECORDING: %s", exc)
            self.alerter.adapter.signal(5, f"NOT RECORDING: {exc}")
            return None
        return service

    def _queue_ledger_entry(self, body: dict[str, object]) -> None:
        """A signed ledger entry into the durable outbox (StorageError: the ledger retries)."""
        topic = self.topics.ledger
        self.outbox.put(
            LEDGER_KIND, topic, self.sealer.maker(LEDGER_KIND, topic, body), PRIORITY_LEDGER
        )
        self.uplink.wake()

    def record(self, start: bool, detail: dict[str, object] | None = None) -> bool:
        """A verified remote command: start or stop recording; False if recording is off."""
        if self.evidence is None:
            return False
        self.evidence.command(start, detail)
        return True

    def _heartbeat_status(self) -> dict[str, object]:
        """What the retained MQTT status says about this device (None: cannot tell)."""
        power = self.power.read()
        watchlist = self.watchlist.status(time.time()) if self.watchlist is not None else {}
        return {
            "battery_pct": power.battery_percent,
            "storage_free_mb": disk_free_mb(Path(self.config.device.state_dir)),
            "temperature_c": power.temperature_c,
            "watchlist_version": watchlist.get("version"),
            "watchlist_stale": watchlist.get("stale"),
            "watchlist_last_refusal": watchlist.get("last_refusal"),
            "watchlist_locked": watchlist.get("locked"),
            "model_version": self._model_version,
            "agent_version": __version__,
        }

    def _start_metrics(self) -> MetricsServer | None:
        cfg = self.config.status
        if cfg.metrics_port == 0:
            return None
        try:
            server = MetricsServer(self.status, cfg.metrics_host, cfg.metrics_port)
        except OSError as exc:
            log.error("metrics endpoint not started: %s", exc, extra={"port": cfg.metrics_port})
            return None
        server.start()
        return server

    def stop(self) -> None:
        """Ask the main loop to finish (signal-safe)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def _handle(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received, stopping", extra={"signal": signal.Signals(signum).name})
            self.stop()

        signal.signal(signal.SIGTERM, _handle)
        signal.signal(signal.SIGINT, _handle)

    def run(self, until_end: bool = False) -> None:
        """Main loop: frames to hits until stopped, or until the source ends if ``until_end``."""
        next_ping = next_status = 0.0
        while not self._stop.is_set():
            frame = self.queue.get(FRAME_WAIT_S)
            if frame is not None:
                hits = self.pipeline.process(frame)
            elif until_end and self.queue.closed:
                for hit in self.pipeline.poll(DEEP_READ_DRAIN_S):  # the last frame read deep
                    self._on_hit(hit)
                break
            else:
                hits = self.pipeline.poll()
            for hit in hits:
                self._on_hit(hit)
            self._retry_unsaved()
            self._apply_watchlist_results()
            now = time.monotonic()
            if self.notifier.watchdog_interval_s is not None and now >= next_ping:
                self.notifier.watchdog()
                next_ping = now + self.notifier.watchdog_interval_s
            if now >= next_status:
                write_status(Path(self.config.device.state_dir), self.status())
                next_status = now + self.config.status.interval_s
                if self.evidence is not None:
                    self.evidence.tick()
        self.pipeline.tracker.flush(time.time())

    def _on_hit(self, hit: Hit) -> None:
        if self.gnss is not None:
            hit = dataclasses.replace(hit, gnss=self.gnss.latest())
        self.stats.hits_raised += 1
        self.alerter.alert(hit)
        if self.evidence is not None:
            self.evidence.on_hit(hit)
        self._save(hit)

    def _save(self, hit: Hit) -> bool:
        body = hit_body(hit, self._model_version)
        try:
            seq = self.outbox.put(
                HIT_KIND,
                self.topics.hits,
                self.sealer.maker(HIT_KIND, self.topics.hits, body),
                PRIORITY_HIT,
            )
        except PayloadError as exc:  # cannot be sealed (e.g. too large): it never could be
            self.stats.storage_errors += 1
            log.error("hit cannot be sent to HQ: %s", exc)
            return True
        except StorageError as exc:
            self.stats.storage_errors += 1
            log.error("hit not yet stored, will retry: %s", exc)
            self._unsaved.append(hit)
            return False
        self.stats.hits_queued += 1
        self.disposition.alerted(seq)
        self.uplink.wake()
        return True

    def _retry_unsaved(self) -> None:
        while self._unsaved:
            hit = self._unsaved.popleft()
            if not self._save(hit):
                return

    def wait_delivered(self, timeout_s: float) -> bool:
        """Block until HQ has acknowledged everything in the outbox (demo, tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.depth() == 0 and not self._unsaved:
                return True
            time.sleep(0.05)
        return False

    def shutdown(self) -> None:
        """Stop threads and close storage; safe to call once after start."""
        self.notifier.stopping()
        if self.metrics is not None:
            self.metrics.stop()
        self.capture.stop()
        if self.deep_reads is not None:
            self.deep_reads.close()
        if self.evidence is not None:
            self.evidence.stop()  # closes the open segment; its ledger entry goes to the outbox
        if self.watchlist_updates is not None:
            self.watchlist_updates.stop()
        if self.commands is not None:
            self.commands.stop()
        self.uplink.stop(timeout=5.0)
        final = self.status()
        self.outbox.close()
        self.alerter.close()
        if self.gnss is not None:
            self.gnss.stop()
        if self.watchlist is not None:
            self.watchlist.close()
        log.info("agent stopped", extra=final)

    def _watchlist_version(self) -> int | None:
        if self.watchlist is None or self.watchlist.cache.current is None:
            return None
        return self.watchlist.cache.current.metadata.version

    def _deep_status(self) -> dict[str, float | int | bool]:
        """Deep reads' figures (none when they are off)."""
        if self.deep_reads is None:
            return {}
        d = self.deep_reads.stats
        return {
            "deep_reads_running": self.deep_reads.running,
            "deep_reads": d.read,
            "deep_reads_busy": d.busy,
            "deep_read_errors": d.errors,
            "deep_read_restarts": d.restarts,
            "deep_read_ms": round(d.read_ms_ema, 1),
            "deep_hits": self.pipeline.stats.deep_hits,
        }

    def status(self) -> dict[str, float | int | bool | str | None]:
        """Local health figures: status file, Prometheus endpoint, final log line."""
        q = self.queue.stats()
        p = self.pipeline.stats
        now = time.monotonic()
        fps = (p.frames - self._fps_mark[1]) / max(1e-6, now - self._fps_mark[0])
        self._fps_mark = (now, p.frames)
        return {
            "device": self.config.device.id,
            "frames": p.frames,
            "camera_fps": round(fps, 1),
            "frames_dropped": q.dropped,
            "bad_frames": p.bad_frames,
            "reads": p.reads,
            "reader_ms": round(p.read_ms_ema, 2),
            **self._deep_status(),
            "hits": self.stats.hits_raised,
            "hits_unsaved": len(self._unsaved),
            "capture_errors": self.capture.errors,
            "watchlist_entries": len(self.pipeline.matcher),
            "watchlist_version": self._watchlist_version(),
            "watchlist_locked": self.watchlist.locked if self.watchlist is not None else None,
            "watchlist_key": self.watchlist.key_state if self.watchlist is not None else None,
            "outbox_depth": self.outbox.depth(),
            "mqtt_connected": self.uplink.connected,
            "disk_free_mb": disk_free_mb(Path(self.config.device.state_dir)),
            **(self.evidence.status() if self.evidence is not None else {}),
        }
