"""The evidence subsystem as the daemon sees it: one object to start, feed, command and stop.

It owns the recorder's frame queue (a capture sink), the ledger, the evidence
directory, the recorder thread and the officer's record button. The daemon
passes what it already has (device key, HQ key, alert adapter, GNSS, and a
``publish`` that puts a ledger entry in the durable outbox) and calls
``on_hit``, ``command``, ``note_action``, ``tick`` and ``stop``.

At start it chooses the H.264 encoder (``agent.evidence.encoder``): with the
board's hardware encoder, ``camera_hooks`` starts it on the Pi camera and the
recorder takes its packets instead of frames (``wants_frames`` is False). With
``[audio]`` a microphone is recorded too, and a mute button is the officer's.
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
from agent.config import AudioConfig, EvidenceConfig, RaqibConfig
from agent.errors import CaptureError, TransportError
from agent.evidence.audio import AudioTrack
from agent.evidence.encoder import HARDWARE, EncoderChoice, choose_encoder
from agent.evidence.hit_seal import seal_hit_detail
from agent.evidence.ledger import Ledger, Publish
from agent.evidence.packets import PacketQueue
from agent.evidence.recorder import BY_COMMAND, BY_OFFICER, Recorder, RecorderSettings
from agent.evidence.store import EvidenceDir
from agent.reads import GnssFix, Hit
from firmware_glue.alert import AlertAdapter
from firmware_glue.button import RecordButton, make_button
from firmware_glue.hw_encoder import FeedSettings, HardwareEncoderFeed, hardware_h264_encoder
from firmware_glue.microphone import make_microphone

log = logging.getLogger(__name__)

LEDGER_FILE: Final = "evidence-ledger.sqlite"
ALERT_PRIORITY: Final = 5
PACKET_QUEUE: Final = 250
"""Encoded frames held for the recorder (10 s at 25 fps): muxing never takes that long."""


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
        detect_encoder: Callable[[], str | None] = hardware_h264_encoder,
        encoder_library: tuple[Callable[..., Any], type[Any]] | None = None,
    ) -> None:
        """Open the ledger and the evidence directory; raises StorageError if they cannot be.

        ``claim_press(held_s)`` may take a button press for something else (the
        officer's verdict on an alert); only a press it does not take toggles recording.
        ``detect_encoder`` and ``encoder_library`` (``H264Encoder``, ``Output``)
        stand in for the board and picamera2 in tests.
        """
        cfg = config.evidence
        self._claim_press = claim_press
        self.config = config
        self._alert = alert
        self._hq_key = hq_key
        self.frames = FrameQueue(cfg.queue_size)
        self.encoder: EncoderChoice = choose_encoder(config, detect_encoder)
        self.packets = PacketQueue(PACKET_QUEUE) if self.encoder.kind == HARDWARE else None
        self.hardware_feed = self._make_feed(config, encoder_library)
        self.ledger = Ledger(
            ledger_path(config),
            config.device.id,
            signing_key,
            officer=cfg.officer,
            publish=publish,
        )
        self.dir = open_evidence_dir(cfg, evidence_path(config))
        self.audio = self._make_audio(config.audio)
        settings = RecorderSettings(
            segment_s=cfg.segment_s,
            pre_event_s=cfg.pre_event_s,
            post_event_s=cfg.post_event_s,
            gop_s=cfg.gop_s,
            fps=config.capture.fps,
            crf=cfg.crf,
            preset=cfg.preset,
            chunk_bytes=cfg.chunk_kib * 1024,
            audio_pre_event=config.audio.pre_event,
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
            audio=self.audio,
            packets=self.packets,
        )
        self.button = self._make_button(cfg.button, cfg.button_gpio, "record")
        self.mute_button = (
            self._make_button(config.audio.mute_button, config.audio.mute_button_gpio, "mute")
            if self.audio is not None
            else None
        )
        self._stopped = False
        log.info("evidence encoder: %s (%s)", self.encoder.kind, self.encoder.reason)

    def _make_button(self, kind: str, pin: int, what: str) -> RecordButton | None:
        """A button; without one, hits and commands still start recording."""
        try:
            return make_button(kind, pin)
        except TransportError as exc:
            self._officer_alert(f"{what} button not working: {exc}")
            return None

    def _make_feed(
        self, config: RaqibConfig, library: tuple[Callable[..., Any], type[Any]] | None
    ) -> HardwareEncoderFeed | None:
        if self.packets is None:
            return None
        cfg = config.evidence
        settings = FeedSettings(
            gop_s=cfg.gop_s,
            fps=config.capture.fps,
            bitrate=cfg.hardware_bitrate_kbps * 1000 or None,
        )
        factory, base = library if library is not None else (None, None)
        return HardwareEncoderFeed(
            self.packets,
            settings,
            encoder_factory=factory,
            output_base=base,
            on_error=lambda msg: self._officer_alert(f"NOT RECORDING: {msg}"),
        )

    def _make_audio(self, cfg: AudioConfig) -> AudioTrack | None:
        """The microphone's track; a microphone that cannot open is told to the officer."""
        mic = make_microphone(cfg.source, cfg.device, cfg.path, cfg.sample_rate, cfg.channels)
        if mic is None:
            return None
        track = AudioTrack(mic, cfg.bitrate_kbps * 1000)
        try:
            track.start()
        except CaptureError as exc:
            self._officer_alert(f"MICROPHONE NOT WORKING: recording without sound ({exc})")
            return None
        log.info("recording sound from %s", mic.name)
        return track

    @property
    def camera_hooks(self) -> HardwareEncoderFeed | None:
        """For ``Picamera2Source(hooks=...)``: starts the board's encoder with the camera."""
        return self.hardware_feed

    @property
    def wants_frames(self) -> bool:
        """False when the board's encoder records: the capture worker need not copy frames here."""
        return self.packets is None

    def start(self) -> None:
        """Seal what a power cut left, note a changed config, start recorder and button."""
        self._note_config()
        self.recorder.start()
        if self.button is not None:
            self.button.start(self._pressed)
        if self.mute_button is not None:
            self.mute_button.start(lambda _held_s: self.recorder.request_mute(None, BY_OFFICER))
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
            entry = hit.match.entry  # sealed to HQ: the ledger names no listed plate in clear
            self.recorder.on_hit(
                seal_hit_detail(self._hq_key, self.config.device.id, entry.plate, entry.case_ref)
            )

    def command(self, start: bool, detail: dict[str, Any] | None = None) -> None:
        """A verified remote command from HQ: start or stop recording."""
        if start:
            self.recorder.request_start(BY_COMMAND, detail)
        else:
            self.recorder.request_stop(BY_COMMAND, detail)

    def mute(self, muted: bool, by: str = BY_OFFICER) -> None:
        """The officer mutes (True) or unmutes the microphone; the ledger records who and when."""
        self.recorder.request_mute(muted, by)

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
        for button in (self.button, self.mute_button):
            if button is not None:
                button.close()
        self.frames.close()
        if self.packets is not None:
            self.packets.close()
        self.recorder.stop(timeout)
        if self.audio is not None:
            self.audio.close()
        self.ledger.publish_pending()
        self.ledger.close()

    def audio_state(self) -> str:
        """``off`` (no microphone), ``failed``, ``muted`` or ``on``."""
        if self.audio is None:
            return "off"
        if self.audio.failed:
            return "failed"
        return "muted" if self.recorder.stats.muted else "on"

    def status(self) -> dict[str, int | float | bool | str]:
        stats = self.recorder.stats
        dropped = self.frames.stats().dropped if self.packets is None else self.packets.dropped
        return {
            "recording": stats.recording,
            "evidence_segments": stats.segments,
            "evidence_storage_full": stats.disk_full,
            "evidence_frames_dropped": dropped,
            "evidence_encoder": self.encoder.kind,
            "evidence_encode_cpu_s": round(stats.encode_cpu_s, 2),
            "audio": self.audio_state(),
        }
