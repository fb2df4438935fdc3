"""The evidence subsystem as the daemon sees it: one object to start, feed, command and stop.

It owns the recorder's frame queue (a capture sink), the ledger, the evidence
directory, the recorder thread and the officer's record button. The daemon
passes what it already has (device key, HQ key, alert adapter, GNSS, and a
``publish`` that puts a ledger entry in the durable outbox) and calls
``on_hit``, ``command``, ``note_action``, ``tick`` and ``stop``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.capture.queue import FrameQueue
from agent.config import EvidenceConfig, RaqibConfig
from agent.errors import TransportError
from agent.evidence.ledger import Ledger, Publish
from agent.evidence.recorder import BY_COMMAND, BY_OFFICER, Recorder, RecorderSettings
from agent.evidence.store import EvidenceDir
from agent.reads import GnssFix, Hit
from firmware_glue.alert import AlertAdapter
from firmware_glue.button import RecordButton, make_button

log = logging.getLogger(__name__)

LEDGER_FILE: Final = "evidence-ledger.sqlite"
ALERT_PRIORITY: Final = 5


def evidence_path(config: RaqibConfig) -> Path:
    return config.evidence.path or Path(config.device.state_dir) / "evidence"


def ledger_path(config: RaqibConfig) -> Path:
    return Path(config.device.state_dir) / LEDGER_FILE


def open_evidence_dir(cfg: EvidenceConfig, root: Path) -> EvidenceDir:
    chunk = cfg.chunk_kib * 1024
    return EvidenceDir(
        root,
        max_bytes=cfg.max_mb * 2**20,
        min_free_bytes=cfg.min_free_mb * 2**20,
        margin_bytes=max(16 * chunk, 2 * 2**20) if cfg.max_mb == 0 else min(16 * chunk, 2**20),
    )


def config_digest(config: RaqibConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode("utf-8")).hexdigest()


class EvidenceService:
    """Recorder, ledger, evidence directory and record button of one device."""

    def __init__(
        self,
        config: RaqibConfig,
        *,
        signing_key: Ed25519PrivateKey,
        hq_key: X25519PublicKey,
        alert: AlertAdapter | None = None,
        gnss: Callable[[], GnssFix | None] | None = None,
        publish: Publish | None = None,
        claim_press: Callable[[float], bool] | None = None,
    ) -> None:
        """Open the ledger and the evidence directory; raises StorageError if they cannot be.

        ``claim_press(held_s)`` may take a button press for something else (the
        officer's verdict on an alert); only a press it does not take toggles recording.
        """
        cfg = config.evidence
        self._claim_press = claim_press
        self.config = config
        self._alert = alert
        self.frames = FrameQueue(cfg.queue_size)
        self.ledger = Ledger(
            ledger_path(config),
            config.device.id,
            signing_key,
            officer=cfg.officer,
            publish=publish,
        )
        self.dir = open_evidence_dir(cfg, evidence_path(config))
        settings = RecorderSettings(
            segment_s=cfg.segment_s,
            pre_event_s=cfg.pre_event_s,
            post_event_s=cfg.post_event_s,
            gop_s=cfg.gop_s,
            fps=config.capture.fps,
            crf=cfg.crf,
            preset=cfg.preset,
            chunk_bytes=cfg.chunk_kib * 1024,
        )
        self.recorder = Recorder(
            self.frames,
            self.dir,
            self.ledger,
            hq_key,
            settings,
            device_id=config.device.id,
            gnss=gnss,
            alert=self._officer_alert,
        )
        self.button = self._make_button(cfg)
        self._stopped = False

    def _make_button(self, cfg: EvidenceConfig) -> RecordButton | None:
        """The record button; without one, hits and commands still start recording."""
        try:
            return make_button(cfg.button, cfg.button_gpio)
        except TransportError as exc:
            self._officer_alert(f"record button not working: {exc}")
            return None

    def start(self) -> None:
        """Seal what a power cut left, note a changed config, start recorder and button."""
        self._note_config()
        self.recorder.start()
        if self.button is not None:
            self.button.start(self._pressed)
        log.info(
            "evidence recorder started",
            extra={"dir": str(self.dir.root), "segment_s": self.config.evidence.segment_s},
        )

    def _pressed(self, held_s: float) -> None:
        if self._claim_press is not None:
            try:
                if self._claim_press(held_s):
                    return
            except Exception:  # a failing verdict must not keep the officer from recording
                log.exception("button press handler failed; toggling recording")
        self.recorder.toggle(BY_OFFICER)

    def _note_config(self) -> None:
        digest = config_digest(self.config)
        last = next(
            (
                e["action"]["detail"].get("sha256")
                for e in reversed(self.ledger.entries())
                if e["type"] == "action" and e["action"]["name"] == "config_changed"
            ),
            None,
        )
        if last != digest:
            self.ledger.add_action("config_changed", "device", {"sha256": digest})

    def _officer_alert(self, message: str) -> None:
        log.error("officer alert: %s", message)
        if self._alert is None:
            return
        try:
            self._alert.signal(ALERT_PRIORITY, message)
        except Exception:  # a broken buzzer must not stop the recorder
            log.exception("alert adapter failed")

    # -- what the daemon calls ---------------------------------------------------------

    def on_hit(self, hit: Hit) -> None:
        if self.config.evidence.record_on_hit:
            entry = hit.match.entry
            self.recorder.on_hit({"plate": entry.plate, "case_ref": entry.case_ref})

    def command(self, start: bool, detail: dict[str, Any] | None = None) -> None:
        """A verified remote command from HQ: start or stop recording."""
        if start:
            self.recorder.request_start(BY_COMMAND, detail)
        else:
            self.recorder.request_stop(BY_COMMAND, detail)

    def note_action(self, name: str, by: str, detail: dict[str, Any] | None = None) -> None:
        """Enter an officer's or device's action (e.g. ``watchlist_applied``) in the ledger."""
        self.ledger.add_action(name, by, detail)

    def tick(self) -> None:
        """Retry handing ledger entries to the outbox that could not be queued before."""
        if self.ledger.pending_publish:
            self.ledger.publish_pending()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the open segment and close everything; call after capture has stopped.

        Safe to call twice (the demo finishes recording before the agent shuts down).
        """
        if self._stopped:
            return
        self._stopped = True
        if self.button is not None:
            self.button.close()
        self.frames.close()
        self.recorder.stop(timeout)
        self.ledger.publish_pending()
        self.ledger.close()

    def status(self) -> dict[str, int | bool]:
        stats = self.recorder.stats
        return {
            "recording": stats.recording,
            "evidence_segments": stats.segments,
            "evidence_storage_full": stats.disk_full,
            "evidence_frames_dropped": self.frames.stats().dropped,
        }
