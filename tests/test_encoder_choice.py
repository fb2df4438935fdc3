"""The H.264 encoder is chosen at start by the board, and the hardware path records evidence.

A simulated Pi 4 (its kernel lists ``bcm2835-codec-encode``) with a Pi camera
records through picamera2's ``H264Encoder`` (``firmware_glue.picamera2_sim``
stands in for the library and the chip) into the same sealed, chained segments
as the software recorder; a Pi 5, a USB camera or a replayed file record in
software. ``raqib status`` says which.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest

from agent.config import RaqibConfig, parse_config
from agent.evidence.encoder import choose_encoder
from agent.evidence.ledger import Ledger
from agent.evidence.sealing import open_segment
from agent.evidence.service import EvidenceService, evidence_path, ledger_path
from agent.pki import HqKeys, load_or_create_device_key
from firmware_glue import picamera2_sim as sim
from firmware_glue.camera import Picamera2Source
from firmware_glue.hw_encoder import hardware_h264_encoder

pytestmark = [pytest.mark.device, pytest.mark.evidence]

PI4_NODES = {  # /sys/class/video4linux on Raspberry Pi OS Bookworm, Pi 4 with a camera
    "video0": "unicam-image",
    "video10": "bcm2835-codec-decode",
    "video11": "bcm2835-codec-encode",
    "video12": "bcm2835-codec-isp",
    "video13": "bcm2835-isp",
}
PI5_NODES = {  # Pi 5: the PiSP back end and the HEVC decoder, no H.264 encoder
    "video0": "rp1-cfe",
    "video19": "rpi-hevc-dec",
    "video20": "pispbe-input",
    "video21": "pispbe-tdn_input",
}


def sysfs(root: Path, nodes: dict[str, str]) -> Path:
    for node, name in nodes.items():
        (root / node).mkdir(parents=True)
        (root / node / "name").write_text(name + "\n")
    return root


def test_the_board_encoder_is_found_by_its_kernel_name(tmp_path: Path) -> None:
    assert hardware_h264_encoder(sysfs(tmp_path / "pi4", PI4_NODES)) == "/dev/video11"
    assert hardware_h264_encoder(sysfs(tmp_path / "pi5", PI5_NODES)) is None
    assert hardware_h264_encoder(tmp_path / "x86-has-no-such-dir") is None


def config(tmp_path: Path, source: str = "picamera2", encoder: str = "auto") -> RaqibConfig:
    return parse_config(
        {
            "device": {"id": "cam-pi-01", "state_dir": str(tmp_path / "state")},
            "capture": {"source": source, "width": 640, "height": 360, "fps": 25},
            "evidence": {"encoder": encoder, "segment_s": 1, "gop_s": 0.5, "button": "none"},
        }
    )


@pytest.mark.parametrize(
    ("source", "encoder", "board", "expected"),
    [
        ("picamera2", "auto", "/dev/video11", "hardware"),  # Pi 4
        ("picamera2", "auto", None, "software"),  # Pi 5
        ("v4l2", "auto", "/dev/video11", "software"),  # a USB camera on a Pi 4
        ("file", "auto", None, "software"),  # x86, replayed footage
        ("picamera2", "software", "/dev/video11", "software"),  # forced off
        ("picamera2", "hardware", None, "hardware"),  # forced on (picamera2 decides)
        ("rtsp", "hardware", "/dev/video11", "software"),  # no encoder on an IP stream
    ],
)
def test_encoder_choice(
    tmp_path: Path, source: str, encoder: str, board: str | None, expected: str
) -> None:
    choice = choose_encoder(config(tmp_path, source, encoder), lambda: board)
    assert choice.kind == expected
    assert choice.reason


def service(tmp_path: Path, board: str | None) -> tuple[EvidenceService, HqKeys]:
    cfg = config(tmp_path)
    hq = HqKeys.load_or_create(tmp_path / "hq-keys")
    made = EvidenceService(
        cfg,
        signing_key=load_or_create_device_key(tmp_path / "device.key"),
        hq_key=hq.encryption.public_key(),
        detect_encoder=lambda: board,
        encoder_library=(sim.H264Encoder, sim.Output),
    )
    return made, hq


def test_a_pi4_records_through_the_hardware_encoder_into_sealed_segments(tmp_path: Path) -> None:
    evidence, hq = service(tmp_path, "/dev/video11")
    assert evidence.status()["evidence_encoder"] == "hardware"
    assert not evidence.wants_frames and evidence.camera_hooks is not None
    camera = Picamera2Source(
        640, 360, 25, reader_size=(640, 360), camera_factory=sim.simulated(),
        hooks=evidence.camera_hooks,
    )  # fmt: skip
    evidence.start()
    evidence.command(True, {"reason": "test"})
    camera.open()
    try:
        for _ in range(75):  # 3 s of camera frames; the reader would get these lores frames
            camera.read()
    finally:
        camera.close()  # stops the hardware encoder (its last packets flushed)
        status = evidence.status()
        evidence.stop()  # the recorder drains the packets and seals the last segment
    sim_camera = sim.Picamera2.instances[-1]
    assert ("start_encoder", {"name": "main", "iperiod": 12}) in sim_camera.calls
    assert status["evidence_encoder"] == "hardware"
    assert status["evidence_encode_cpu_s"] == 0.0  # the chip encoded, not the CPU

    ledger = Ledger(ledger_path(evidence.config), "cam-pi-01", None)
    segments = [e["segment"] for e in ledger.entries() if e["type"] == "segment"]
    ledger.close()
    assert len(segments) >= 3
    decoded = 0
    for seg in segments:
        sealed = (evidence_path(evidence.config) / seg["file"]).read_bytes()
        opened = open_segment(sealed, hq.encryption)
        assert opened.complete
        with av.open(io.BytesIO(opened.plaintext)) as container:
            frames = list(container.decode(video=0))
        assert frames[0].key_frame and (frames[0].width, frames[0].height) == (640, 360)
        assert len(frames) == seg["frames"]
        decoded += len(frames)
    assert decoded == 75  # every frame the camera took, none lost between chip and ledger


def test_a_pi5_falls_back_to_software_and_says_so(tmp_path: Path) -> None:
    evidence, _ = service(tmp_path, None)
    evidence.start()
    try:
        assert evidence.encoder.kind == "software"
        assert "no hardware H.264 encoder" in evidence.encoder.reason
        assert evidence.wants_frames and evidence.camera_hooks is None
        assert evidence.status()["evidence_encoder"] == "software"
    finally:
        evidence.stop()


def test_a_hardware_encoder_that_fails_to_start_alerts_and_the_camera_goes_on(
    tmp_path: Path,
) -> None:
    from firmware_glue.alert import SimulatedAlert

    alerts = SimulatedAlert()
    cfg = config(tmp_path)
    hq = HqKeys.load_or_create(tmp_path / "hq-keys")

    def broken_encoder(**_kwargs: object) -> object:
        raise RuntimeError("Failed to open /dev/video11")

    evidence = EvidenceService(
        cfg,
        signing_key=load_or_create_device_key(tmp_path / "device.key"),
        hq_key=hq.encryption.public_key(),
        alert=alerts,
        detect_encoder=lambda: "/dev/video11",
        encoder_library=(broken_encoder, sim.Output),
    )
    camera = Picamera2Source(
        640, 360, 25, reader_size=(640, 360), camera_factory=sim.simulated(),
        hooks=evidence.camera_hooks,
    )  # fmt: skip
    evidence.start()
    try:
        frame = camera.read() if camera.open() else None  # the reader still gets frames
        assert frame is not None and frame.shape == (360, 640, 3)
    finally:
        camera.close()
        evidence.stop()
    assert any("NOT RECORDING" in e.message for e in alerts.events)
