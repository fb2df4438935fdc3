"""The composition root: start-up reads as the ordered list of steps in ``Agent.start``.

One process: a capture thread fills a bounded frame queue, the main loop reads
plates and raises hits, each hit alerts the officer at once and is stored in the
durable outbox before the uplink thread sends it to HQ. Nothing here blocks on
the network: with no broker the agent keeps reading and queues its hits.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from agent.alerts import Alerter, make_alert_adapter
from agent.capture.factory import open_source
from agent.capture.queue import FrameQueue
from agent.capture.worker import CaptureWorker
from agent.config import GnssConfig, RaqibConfig
from agent.envelope import encode_message
from agent.errors import StorageError, WatchlistError
from agent.messages import HIT_KIND, hit_body
from agent.metrics import MetricsServer, write_status
from agent.pipeline import Pipeline
from agent.reader.base import PlateReader
from agent.reads import Hit
from agent.systemd import SystemdNotifier
from agent.tracking import Tracker
from agent.transport.outbox import PRIORITY_HIT, Outbox
from agent.transport.topics import Topics
from agent.transport.uplink import Uplink
from agent.watchlist.matcher import Matcher
from agent.watchlist.plain import load_plain_watchlist
from firmware_glue.gnss import GnssAdapter, GpsdGnss, NmeaReplayGnss, NmeaSerialGnss

log = logging.getLogger(__name__)

FRAME_WAIT_S = 0.2
MAX_UNSAVED_HITS = 1000


def disk_free_mb(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free // 2**20
    except OSError:
        return -1


def load_matcher(config: RaqibConfig) -> Matcher:
    """The watchlist index; a broken list is reported and the agent runs with none."""
    try:
        entries = load_plain_watchlist(config.watchlist.path)
    except WatchlistError as exc:
        log.error("watchlist refused, running with an empty list: %s", exc)
        entries = []
    log.info("watchlist loaded", extra={"entries": len(entries)})
    return Matcher(entries, config.watchlist.fuzzy, config.watchlist.fuzzy_min_confidence)


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

    def start(self) -> None:
        """Bring the agent up in order; only a missing model or state dir is fatal."""
        cfg = self.config
        state_dir = Path(cfg.device.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        tracker = Tracker(cfg.tracker.gap_s, cfg.tracker.min_reads, cfg.tracker.retention_s)
        reader = self._reader or make_reader(cfg)
        self.pipeline = Pipeline(
            reader, tracker, load_matcher(cfg), cfg.device.id, cfg.reader.every_nth_frame
        )
        self.alerter = Alerter(make_alert_adapter(cfg.alert))
        self.gnss = make_gnss(cfg.gnss)
        if self.gnss is not None:
            self.gnss.start()
        self.outbox = Outbox(state_dir / "outbox.sqlite")
        self.uplink = Uplink(cfg.mqtt, cfg.device.id, self.outbox)
        self.uplink.start()
        self.queue = FrameQueue(cfg.capture.queue_size)
        self.capture = CaptureWorker(
            lambda: open_source(cfg.capture),
            self.queue,
            loop=cfg.capture.loop,
            reconnect_s=cfg.capture.reconnect_s,
        )
        self.capture.start()
        self.metrics = self._start_metrics()
        self.notifier.ready(f"reading plates from {cfg.capture.source}")
        log.info("agent started", extra={"device": cfg.device.id, "source": cfg.capture.source})

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
                for hit in self.pipeline.process(frame):
                    self._on_hit(hit)
            elif until_end and self.queue.closed:
                break
            self._retry_unsaved()
            now = time.monotonic()
            if self.notifier.watchdog_interval_s is not None and now >= next_ping:
                self.notifier.watchdog()
                next_ping = now + self.notifier.watchdog_interval_s
            if now >= next_status:
                write_status(Path(self.config.device.state_dir), self.status())
                next_status = now + self.config.status.interval_s
        self.pipeline.tracker.flush(time.time())

    def _on_hit(self, hit: Hit) -> None:
        if self.gnss is not None:
            hit = dataclasses.replace(hit, gnss=self.gnss.latest())
        self.stats.hits_raised += 1
        self.alerter.alert(hit)
        self._save(hit)

    def _save(self, hit: Hit) -> bool:
        body = hit_body(hit)
        device = self.config.device.id
        try:
            self.outbox.put(
                HIT_KIND,
                self.topics.hits,
                lambda seq: encode_message(HIT_KIND, device, seq, body, time.time()),
                PRIORITY_HIT,
            )
        except StorageError as exc:
            self.stats.storage_errors += 1
            log.error("hit not yet stored, will retry: %s", exc, extra={"plate": hit.read.text})
            self._unsaved.append(hit)
            return False
        self.stats.hits_queued += 1
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
        self.uplink.stop(timeout=5.0)
        self.outbox.close()
        self.alerter.close()
        if self.gnss is not None:
            self.gnss.stop()
        log.info("agent stopped", extra=self.status())

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
            "hits": self.stats.hits_raised,
            "hits_unsaved": len(self._unsaved),
            "capture_errors": self.capture.errors,
            "watchlist_entries": len(self.pipeline.matcher),
            "outbox_depth": self.outbox.depth(),
            "mqtt_connected": self.uplink.connected,
            "disk_free_mb": disk_free_mb(Path(self.config.device.state_dir)),
        }
