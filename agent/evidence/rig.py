"""A device and an HQ on one machine, for tests, the bench and fault drills.

``EvidenceRig`` makes the keys, enrols the device at a directory HQ, and builds
the real recorder, ledger and evidence directory around them; ``frames`` makes
moving synthetic frames with a steady clock. Nothing here is patched or faked:
the recorder is driven synchronously through ``Recorder.feed`` so a test knows
exactly which frame a request applies to.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.capture.queue import FrameQueue
from agent.evidence.audio import AudioTrack
from agent.evidence.ledger import Ledger
from agent.evidence.recorder import Recorder, RecorderSettings
from agent.evidence.store import EvidenceDir
from agent.frames import Frame
from agent.pki import HqKeys, load_or_create_device_key
from firmware_glue.alert import SimulatedAlert
from firmware_glue.microphone import Microphone
from hq.evidence_store import HqEvidenceStore
from hq.upload import UploadReport, upload

EPOCH = 1_790_000_000.0


def frames(
    seconds: float,
    *,
    width: int = 320,
    height: int = 240,
    fps: float = 25.0,
    start: float = EPOCH,
    first_index: int = 0,
) -> Iterator[Frame]:
    """Moving synthetic frames (a bar sweeping over a gradient) with timestamps from ``start``."""
    base = np.zeros((height, width, 3), np.uint8)
    base[:, :, 0] = np.linspace(0, 200, width, dtype=np.uint8)[None, :]
    base[:, :, 2] = np.linspace(0, 200, height, dtype=np.uint8)[:, None]
    for i in range(round(seconds * fps)):
        index = first_index + i
        image = base.copy()
        x = (index * 7) % max(1, width - 40)
        image[:, x : x + 40, 1] = 255
        image[10:30, 10 : 10 + (index % (width - 20)), :] = 250
        yield Frame(index, start + index / fps, index / fps, image)


@dataclass
class EvidenceRig:
    """One device (keys, ledger, evidence directory, recorder) and a directory HQ."""

    root: Path
    device_id: str = "cam-rig-01"
    settings: RecorderSettings = field(
        default_factory=lambda: RecorderSettings(
            segment_s=1.0, pre_event_s=2.0, post_event_s=1.0, gop_s=0.5, chunk_bytes=4096
        )
    )
    max_bytes: int = 0
    enrol: bool = True
    microphone: Microphone | None = None
    """Records sound too (e.g. a ``FileMicrophone``); started with the rig."""

    def __post_init__(self) -> None:
        self.device_dir = self.root / "device"
        self.hq_root = self.root / "hq-root"
        self.hq_keys_dir = self.root / "hq-keys"
        self.signing_key = load_or_create_device_key(self.device_dir / "device.key")
        self.hq_key = HqKeys.load_or_create(self.hq_keys_dir).encryption
        self.alerts = SimulatedAlert()
        self.ledger = Ledger(self.device_dir / "ledger.sqlite", self.device_id, self.signing_key)
        self.dir = EvidenceDir(
            self.device_dir / "evidence",
            max_bytes=self.max_bytes,
            margin_bytes=4 * self.settings.chunk_bytes + 8192,
        )
        self.audio = AudioTrack(self.microphone) if self.microphone is not None else None
        if self.audio is not None:
            self.audio.start()
        self.recorder = Recorder(
            FrameQueue(8),
            self.dir,
            self.ledger,
            self.hq_key.public_key(),
            self.settings,
            device_id=self.device_id,
            alert=lambda msg: self.alerts.signal(5, msg),
            audio=self.audio,
        )
        if self.enrol:
            with self.hq() as hq:
                hq.db.enrol_device(self.device_id, self.signing_key.public_key(), time.time())

    def hq(self) -> HqEvidenceStore:
        return HqEvidenceStore.at(self.hq_root)

    def feed(self, seconds: float, **kwargs: Any) -> float:
        """Feed ``seconds`` of frames after the last one fed; returns the last frame's time."""
        start_index = getattr(self, "_next_index", 0)
        last = EPOCH
        for frame in frames(seconds, first_index=start_index, fps=self.settings.fps, **kwargs):
            self.recorder.feed(frame)
            last = frame.timestamp
        self._next_index = start_index + round(seconds * self.settings.fps)
        return last

    def record(self, seconds: float, by: str = "officer") -> None:
        """A manual recording of about ``seconds`` (plus the pre-event ring)."""
        self.recorder.request_start(by)
        self.feed(seconds)
        self.recorder.request_stop(by)
        self.recorder.feed(None)

    def upload(self, **kwargs: Any) -> UploadReport:
        with self.hq() as hq:
            return upload(self.ledger, self.dir, hq, **kwargs)

    def hq_files(self) -> list[Path]:
        with self.hq() as hq:
            return hq.files(self.device_id)

    def close(self) -> None:
        self.recorder.finish()
        if self.audio is not None:
            self.audio.close()
        self.ledger.close()


def other_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()
