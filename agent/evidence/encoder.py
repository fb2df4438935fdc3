"""Which H.264 encoder records the footage: the board's own, or libx264 in software.

Chosen once at start and reported in ``raqib status``: a Pi camera on a board
with a hardware encoder (a Pi 4) records through picamera2's ``H264Encoder``,
which costs the CPU nothing and leaves the cores to the plate reader; a Pi 5
(no H.264 encoder), a USB or IP camera, or a replayed file record through the
software recorder (libx264 through PyAV, ``agent.evidence.recorder``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from agent.config import RaqibConfig
from firmware_glue.hw_encoder import hardware_h264_encoder

log = logging.getLogger(__name__)

HARDWARE: Final = "hardware"
SOFTWARE: Final = "software"


@dataclass(frozen=True, slots=True)
class EncoderChoice:
    kind: Literal["hardware", "software"]
    reason: str


def choose_encoder(
    config: RaqibConfig, detect: Callable[[], str | None] = hardware_h264_encoder
) -> EncoderChoice:
    """The encoder for this device; ``detect`` names the board's encoder device (None: none)."""
    wanted = config.evidence.encoder
    source = config.capture.source
    if wanted == SOFTWARE:
        return EncoderChoice(SOFTWARE, "evidence.encoder = software")
    if source != "picamera2":
        if wanted == HARDWARE:
            log.error("evidence.encoder = hardware needs capture.source = picamera2; software")
        return EncoderChoice(SOFTWARE, f"the camera ({source}) is not a Pi camera")
    if wanted == HARDWARE:
        return EncoderChoice(HARDWARE, "evidence.encoder = hardware")
    device = detect()
    if device is None:
        return EncoderChoice(SOFTWARE, "the board has no hardware H.264 encoder")
    return EncoderChoice(HARDWARE, f"the board's encoder {device}")
