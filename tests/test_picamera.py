"""The picamera2 adapter's real code against the picamera2 simulator (faked at the boundary)."""

from __future__ import annotations

import errno
import io
import logging
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING

import av
import cv2
import numpy as np
import pytest

from agent.capture.factory import open_source
from agent.config import CaptureConfig
from agent.errors import CaptureError
from agent.frames import Frame
from firmware_glue import picamera2_sim as sim
from firmware_glue.camera import (
    DirectorySegmentWriter,
    HardwareRecorder,
    HardwareRecorderSettings,
    HardwareSegment,
    Picamera2Source,
    select_sensor_mode,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

pytestmark = pytest.mark.device


def configured(camera: sim.Picamera2) -> dict[str, object]:
    return next(args for name, args in camera.calls if name == "create_video_configuration")


def test_sensor_mode_is_the_full_view_mode_that_covers_the_stream_at_the_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    modes = sim.IMX708_MODES
    # 1080p25: the 2x2-binned full-view mode, not the cropped fast one nor the full readout.
    assert select_sensor_mode(modes, (1920, 1080), 25).size == (2304, 1296)
    # 100 fps: only the cropped 1536x864 mode is fast enough.
    assert select_sensor_mode(modes, (1280, 720), 100).size == (1536, 864)
    assert select_sensor_mode(modes, (4608, 2592), 10).size == (4608, 2592)
    with caplog.at_level(logging.WARNING):
        # Full resolution at 30 fps does not exist: the largest mode fast enough, upscaled.
        assert select_sensor_mode(modes, (4608, 2592), 30).size == (2304, 1296)
        assert select_sensor_mode(modes, (640, 480), 200).fps == pytest.approx(120.13)
    assert "upscaled" in caplog.text
    assert "capped" in caplog.text


def test_the_chosen_mode_frame_rate_and_streams_are_what_picamera2_is_asked_for() -> None:
    factory = sim.simulated()
    source = Picamera2Source(1920, 1080, 25, camera_factory=factory)
    camera = source.open()
    try:
        args = configured(camera)
        assert args == {
            "main": {"size": (1920, 1080), "format": "YUV420"},
            "lores": {"size": (1280, 720), "format": "YUV420"},
            "sensor": {"output_size": (2304, 1296), "bit_depth": 10},
            "controls": {"FrameRate": 25},
        }
        assert [name for name, _ in camera.calls][-2:] == ["configure", "start"]
        # The main stream (for the encoder) is delivered at the recording size.
        main = camera.capture_array("main")
        assert main.shape == (1080 * 3 // 2, 1920)
        assert camera.camera_configuration()["main"]["size"] == (1920, 1080)
    finally:
        source.close()
    assert camera.calls[-2:] == [("stop", None), ("close", None)]

    forced = Picamera2Source(1280, 720, 25, sensor_mode=2, camera_factory=factory)
    camera = forced.open()
    forced.close()
    assert configured(camera)["sensor"] == {"output_size": (4608, 2592), "bit_depth": 10}
    with pytest.raises(CaptureError, match="sensor mode 7 does not exist"):
        Picamera2Source(1280, 720, 25, sensor_mode=7, camera_factory=factory).open()


def test_the_factory_still_builds_the_adapter_from_the_capture_config() -> None:
    source = open_source(CaptureConfig(source="picamera2", width=1920, height=1080, fps=30))
    assert isinstance(source, Picamera2Source)
    assert source.main_size == (1920, 1080)
    assert source.lores_size == (1280, 720)
    assert source.fps == 30


@pytest.mark.parametrize(("pi4", "lores_format"), [(True, "YUV420"), (False, "RGB888")])
def test_lores_frames_reach_the_reader_as_bgr_at_the_reader_size(
    pi4: bool, lores_format: str
) -> None:
    # 1000 px wide: YUV rows are padded to a 1024-byte stride, which must not leak into frames.
    factory = sim.simulated(pi4=pi4)
    source = Picamera2Source(
        1280,
        720,
        25,
        reader_size=(1000, 562),
        lores_format=lores_format,
        camera_factory=factory,
    )
    frames = list(islice(source.frames(), 3))
    assert source.camera is None  # closed when the consumer stopped
    for number, frame in enumerate(frames):
        image = frame.image
        assert image.shape == (562, 1000, 3)
        assert image.dtype == np.uint8
        assert image.flags["C_CONTIGUOUS"]
        assert frame.index == number
        expected = cv2.resize(
            sim.bands_pattern(number, (1280, 720)), (1000, 562), interpolation=cv2.INTER_AREA
        )
        assert np.abs(image.astype(int) - expected.astype(int)).mean() < 3.0
    blue, green, red = (
        frames[0].image[300, 100],
        frames[0].image[300, 500],
        frames[0].image[300, 900],
    )
    assert blue[0] > 200 and blue[2] < 40  # BGR order: blue band in channel 0
    assert green[1] > 200
    assert red[2] > 200 and red[0] < 40


def test_rgb_lores_on_a_pi4_is_refused_as_a_capture_error() -> None:
    factory = sim.simulated(pi4=True)
    source = Picamera2Source(1280, 720, 25, lores_format="RGB888", camera_factory=factory)
    with pytest.raises(CaptureError, match="lores stream must be YUV"):
        next(source.frames())
    assert factory.instances[-1].calls[-2:] == [("stop", None), ("close", None)]


def test_camera_failures_become_capture_errors(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open the Pi camera: no cameras"):
        Picamera2Source(1280, 720, 25, camera_factory=sim.simulated(fail_open="no cameras")).open()

    factory = sim.simulated(fail_after=2)
    source = Picamera2Source(640, 360, 25, camera_factory=factory)
    got: list[Frame] = []
    with pytest.raises(
        CaptureError, match="stopped delivering frames: Camera frontend has timed out"
    ):
        got.extend(source.frames())
    assert len(got) == 2  # frames before the failure are kept
    assert factory.instances[-1].calls[-2:] == [("stop", None), ("close", None)]
    assert source.camera is None

    unconfigured = sim.simulated()(0)
    recorder = HardwareRecorder(
        unconfigured,
        DirectorySegmentWriter(tmp_path / "segments"),
        HardwareRecorderSettings(),
        size=(640, 360),
        encoder_factory=sim.H264Encoder,
        output_base=sim.Output,
    )
    with pytest.raises(CaptureError, match=r"cannot start the hardware H\.264 encoder"):
        recorder.start()


def test_hardware_encoder_writes_decodable_segments_with_the_pre_event_ring(
    tmp_path: Path,
) -> None:
    factory = sim.simulated()
    source = Picamera2Source(640, 360, 25, reader_size=(640, 360), camera_factory=factory)
    camera = source.open()
    settings = HardwareRecorderSettings(segment_s=1.0, pre_event_s=1.0, gop_s=1.0, fps=25)
    finished: list[HardwareSegment] = []
    recorder = HardwareRecorder(
        camera,
        DirectorySegmentWriter(tmp_path / "segments"),
        settings,
        size=source.main_size,
        encoder_factory=sim.H264Encoder,
        output_base=sim.Output,
        on_segment=finished.append,
    )
    recorder.start()
    try:
        for _ in range(40):  # 1.6 s of pre-event footage: the ring keeps whole GOPs >= 1 s
            source.read()
        recorder.record(True)
        for _ in range(60):
            source.read()
        recorder.record(False)
        for _ in range(10):  # not recording: nothing written
            source.read()
    finally:
        recorder.stop()
        source.close()
    assert ("start_encoder", {"name": "main", "iperiod": 25}) in camera.calls
    assert finished == recorder.segments
    assert [s.path.name for s in finished] == [f"seg-{n:06d}.mp4" for n in (1, 2, 3, 4)]
    assert not list((tmp_path / "segments").glob("*.partial"))
    assert [s.pre_event for s in finished] == [True, True, False, False]
    decoded = []
    for segment in finished:
        with av.open(str(segment.path)) as container:
            frames = list(container.decode(video=0))
        assert (frames[0].width, frames[0].height) == (640, 360)
        assert frames[0].key_frame
        assert len(frames) == segment.frames
        decoded.append(len(frames))
    assert decoded == [25, 25, 25, 25]  # frames 0..99: ring (0..39) + live (40..99), cut at GOPs
    assert finished[1].start == pytest.approx(finished[0].start + 1.0, abs=1e-3)
    assert recorder.errors == 0


class _FullDisk(io.FileIO):
    """A segment file that runs out of space after ``room`` bytes."""

    room = 2_000

    def write(self, data: Buffer, /) -> int:
        if self.tell() + len(memoryview(data)) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


class _FullDiskWriter(DirectorySegmentWriter):
    def open(self, number: int, started_at: float) -> tuple[Path, IO[bytes]]:
        del started_at
        path = self.root / f"seg-{number:06d}.mp4.partial"
        return path, _FullDisk(path, "xb")


def test_a_full_disk_stops_recording_without_breaking_the_encoder_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = Picamera2Source(640, 360, 25, reader_size=(640, 360), camera_factory=sim.simulated())
    camera = source.open()
    recorder = HardwareRecorder(
        camera,
        _FullDiskWriter(tmp_path / "segments"),
        HardwareRecorderSettings(segment_s=10.0, pre_event_s=0.0, fps=25),
        size=source.main_size,
        encoder_factory=sim.H264Encoder,
        output_base=sim.Output,
    )
    recorder.start()
    recorder.record(True)
    try:
        with caplog.at_level(logging.ERROR):
            for _ in range(60):  # the encoder keeps running: no exception reaches read()
                source.read()
    finally:
        recorder.stop()
        source.close()
    assert recorder.errors >= 1
    assert not recorder.recording
    assert "recording stopped" in caplog.text
