"""The board's H.264 encoder: is there one, and feeding its packets to the evidence recorder.

A Raspberry Pi 4 (and 3, Zero 2) has a hardware H.264 encoder, exposed by the
``bcm2835-codec`` V4L2 memory-to-memory driver as ``/dev/video11``
(``bcm2835-codec-encode``); picamera2's ``H264Encoder`` drives it. A Pi 5 has
none (its V4L2 nodes are the PiSP back end and the HEVC decoder), nor has an
x86 machine: there the recorder encodes in software (libx264 through PyAV).
``hardware_h264_encoder`` tells which by the kernel's device names.

``HardwareEncoderFeed`` starts picamera2's encoder on the camera's ``main``
stream each time ``Picamera2Source`` opens the camera, and puts each access
unit, stamped with its capture time, into the recorder's ``PacketQueue``.
A failure never stops the camera: the plate reader keeps its frames, and the
officer is told that nothing is being recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from agent.errors import CaptureError
from agent.evidence.packets import EncodedPacket, PacketQueue
from firmware_glue.camera import make_output

log = logging.getLogger(__name__)

V4L2_SYSFS: Final = Path("/sys/class/video4linux")
ENCODER_NAMES: Final = ("bcm2835-codec-encode",)
"""V4L2 device names of H.264 encoders picamera2's ``H264Encoder`` can drive."""
MODEL_FILE: Final = Path("/proc/device-tree/model")


def hardware_h264_encoder(sysfs: Path = V4L2_SYSFS) -> str | None:
    """The ``/dev/videoN`` name of the board's H.264 encoder, or None if it has none."""
    try:
        nodes = sorted(sysfs.iterdir())
    except OSError:
        return None
    for node in nodes:
        try:
            name = (node / "name").read_text("utf-8", errors="replace").strip()
        except OSError:
            continue
        if name in ENCODER_NAMES:
            return f"/dev/{node.name}"
    return None


def board_model(model_file: Path = MODEL_FILE) -> str:
    """``Raspberry Pi 4 Model B Rev 1.5`` on a Pi; the machine type elsewhere."""
    try:
        return model_file.read_text("utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        import platform

        return platform.machine() or "unknown"


@dataclass(frozen=True, slots=True)
class FeedSettings:
    gop_s: float = 1.0
    fps: float = 25.0
    bitrate: int | None = None
    """Bits per second; None lets picamera2 choose (its medium quality)."""


class HardwareEncoderFeed:
    """picamera2's ``H264Encoder`` on ``main``, its packets into ``packets``.

    ``attach(camera)`` / ``detach(camera)`` are ``Picamera2Source``'s start and
    close hooks. ``encoder_factory`` and ``output_base`` replace
    ``picamera2.encoders.H264Encoder`` and ``picamera2.outputs.Output``
    (``firmware_glue.picamera2_sim`` in tests).
    """

    def __init__(
        self,
        packets: PacketQueue,
        settings: FeedSettings,
        *,
        encoder_factory: Callable[..., Any] | None = None,
        output_base: type[Any] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.packets = packets
        self.settings = settings
        self._encoder_factory = encoder_factory
        self._output_base = output_base
        self._on_error = on_error or (lambda _msg: None)
        self._encoder: Any = None
        self._size = (0, 0)
        self._t0: float | None = None
        self.errors = 0
        self.started = 0

    def _library(self) -> tuple[Callable[..., Any], type[Any]]:
        if self._encoder_factory is not None and self._output_base is not None:
            return self._encoder_factory, self._output_base
        try:
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import Output
        except ImportError as exc:
            raise CaptureError("picamera2 is not installed (the 'pi' extra)") from exc
        return H264Encoder, Output

    def attach(self, camera: Any) -> None:
        """Start the encoder on the started camera; a failure is reported, never raised."""
        gop = max(1, round(self.settings.gop_s * self.settings.fps))
        try:
            encoder_factory, output_base = self._library()
            main = camera.camera_configuration()["main"]
            self._size = (int(main["size"][0]), int(main["size"][1]))
            encoder = encoder_factory(
                bitrate=self.settings.bitrate, repeat=True, iperiod=gop, framerate=self.settings.fps
            )
            camera.start_encoder(encoder, make_output(output_base, self), name="main")
        except Exception as exc:  # libcamera/V4L2 raise plain RuntimeError/OSError variants
            self._fail(f"cannot start the hardware H.264 encoder: {exc}")
            return
        self._encoder = encoder
        self._t0 = None
        self.started += 1
        log.info("recording through the hardware H.264 encoder (%dx%d)", *self._size)

    def detach(self, camera: Any) -> None:
        """Stop the encoder (its last packets are flushed to the queue)."""
        encoder, self._encoder = self._encoder, None
        if encoder is None or not getattr(encoder, "running", True):
            return
        try:
            camera.stop_encoder(encoder)
        except Exception as exc:
            self._fail(f"stopping the hardware encoder failed: {exc}")

    def _fail(self, message: str) -> None:
        self.errors += 1
        log.error("%s", message)
        self._on_error(message)

    # -- called by the picamera2 Output on the encoder thread ------------------------------

    def packet(self, data: bytes, keyframe: bool, timestamp_us: int | None) -> None:
        """One access unit; microseconds since the encoder's first frame become capture time."""
        pts_s = int(timestamp_us or 0) / 1e6
        if self._t0 is None:
            self._t0 = time.time() - pts_s
        self.packets.put(EncodedPacket(bytes(data), keyframe, self._t0 + pts_s, self._size))

    def closed(self) -> None:
        """The encoder's output stopped (camera closed); the recorder seals on its own stall."""
