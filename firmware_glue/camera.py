"""The Raspberry Pi camera through picamera2 (only importable on a Pi with libcamera).

One camera, two streams (picamera2's video configuration):

* ``main`` at the recording size (``capture.width`` x ``capture.height``), YUV420,
  which picamera2's hardware ``H264Encoder`` takes without a conversion;
* ``lores`` at the plate reader's size (1280x720 by default, never larger than
  ``main``), YUV420 because the Pi 4's ISP only gives YUV on lores; the adapter
  converts it to the BGR array the reader wants with OpenCV.

The sensor mode is chosen explicitly (the full field-of-view mode with the
smallest readout that still covers the main stream at the frame rate), and the
frame rate is pinned with the ``FrameRate`` control.

``HardwareRecorder`` drives picamera2's ``H264Encoder`` on the main stream into
fragmented-MP4 segment files cut at keyframes, with a pre-event ring of encoded
packets (what ``CircularOutput`` does), through a ``SegmentWriter`` (plain files
by default; docs/deploy-pi.md says how it maps onto the evidence store).

picamera2 is imported lazily so this module loads anywhere; every entry point
takes an injected factory, so ``firmware_glue.picamera2_sim`` can stand in for
the library at exactly this boundary.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Final, Protocol

import av
import cv2
import numpy as np

from agent.errors import CaptureError
from agent.frames import Frame, Image

log = logging.getLogger(__name__)

READER_SIZE: Final = (1280, 720)
"""The lores stream: what the plate reader is tuned for."""
MAIN_FORMAT: Final = "YUV420"
LORES_FORMAT: Final = "YUV420"
US: Final = Fraction(1, 1_000_000)
"""picamera2 encoders stamp packets in microseconds since the first frame."""
MOVFLAGS: Final = "frag_keyframe+empty_moov+default_base_moof"
"""As the software recorder: a cut or half-written segment plays to its last fragment."""

CameraFactory = Callable[[int], Any]
"""``Picamera2(camera_num)`` or a stand-in with the same methods."""


class CameraHooks(Protocol):
    """Told when the camera has started and before it closes (the hardware encoder's feed)."""

    def attach(self, camera: Any) -> None: ...

    def detach(self, camera: Any) -> None: ...


class PacketSink(Protocol):
    """Takes the hardware encoder's access units (on picamera2's encoder thread)."""

    def packet(self, data: bytes, keyframe: bool, timestamp_us: int | None) -> None: ...

    def closed(self) -> None: ...


def picamera2_available() -> bool:
    return importlib.util.find_spec("picamera2") is not None


def _real_camera_factory() -> CameraFactory:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise CaptureError("picamera2 is not installed (install the 'pi' extra on a Pi)") from exc
    factory: CameraFactory = Picamera2
    return factory


# -- sensor mode -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SensorMode:
    """One entry of ``Picamera2.sensor_modes`` (size, bit depth, top fps, field of view)."""

    index: int
    size: tuple[int, int]
    bit_depth: int
    fps: float
    crop: tuple[int, int, int, int]

    @classmethod
    def parse(cls, index: int, mode: Mapping[str, Any]) -> SensorMode:
        width, height = mode["size"]
        crop = tuple(int(v) for v in mode.get("crop_limits", (0, 0, width, height)))
        return cls(
            index=index,
            size=(int(width), int(height)),
            bit_depth=int(mode.get("bit_depth", 10)),
            fps=float(mode.get("fps", 0.0)),
            crop=(crop[0], crop[1], crop[2], crop[3]),
        )

    @property
    def area(self) -> int:
        return self.size[0] * self.size[1]


def select_sensor_mode(
    modes: Sequence[Mapping[str, Any]], size: tuple[int, int], fps: float
) -> SensorMode:
    """The mode to run the sensor in for a ``size`` stream at ``fps``.

    Among the modes fast enough and at least as large as ``size``: the widest
    field of view first (a cropped mode narrows what a car camera sees), then
    the smallest readout (binned modes are faster and less noisy), then the
    deepest bits. If no mode covers ``size`` at ``fps``, the largest fast-enough
    one (upscaled); if none is fast enough, the fastest (the rate is capped).
    """
    parsed = [SensorMode.parse(i, m) for i, m in enumerate(modes) if "size" in m]
    if not parsed:
        raise CaptureError("the camera reports no sensor modes")
    fast = [m for m in parsed if m.fps + 0.01 >= fps]
    covering = [m for m in fast if m.size[0] >= size[0] and m.size[1] >= size[1]]
    if covering:
        widest = max(m.crop[2] * m.crop[3] for m in covering)
        return min(covering, key=lambda m: (m.crop[2] * m.crop[3] < widest, m.area, -m.bit_depth))
    if fast:
        chosen = max(fast, key=lambda m: (m.area, m.bit_depth))
        log.warning(
            "camera: no sensor mode covers %dx%d at %.0f fps; using %dx%d (upscaled)",
            *size,
            fps,
            *chosen.size,
        )
        return chosen
    chosen = max(parsed, key=lambda m: (m.fps, m.area))
    log.warning("camera: no sensor mode reaches %.0f fps; capped at %.1f", fps, chosen.fps)
    return chosen


def lores_size(main: tuple[int, int], wanted: tuple[int, int] = READER_SIZE) -> tuple[int, int]:
    """``wanted`` shrunk (keeping its aspect) to fit inside ``main``, with even sides."""
    scale = min(1.0, main[0] / wanted[0], main[1] / wanted[1])
    width, height = int(wanted[0] * scale), int(wanted[1] * scale)
    return (width - width % 2, height - height % 2)


# -- frames ------------------------------------------------------------------------------


def to_bgr(array: Any, fmt: str, size: tuple[int, int]) -> Image:
    """A ``capture_array`` result in picamera2's ``fmt`` as a C-contiguous BGR image."""
    width, height = size
    image = np.asarray(array, dtype=np.uint8)
    if fmt in ("YUV420", "YVU420"):
        # (height * 3/2, stride): convert at the stride width, then drop the padding.
        code = cv2.COLOR_YUV2BGR_I420 if fmt == "YUV420" else cv2.COLOR_YUV2BGR_YV12
        if image.ndim != 2 or image.shape[0] != height * 3 // 2 or image.shape[1] < width:
            raise CaptureError(f"{fmt} buffer of shape {image.shape} is not {width}x{height}")
        bgr = cv2.cvtColor(image, code)[:, :width]
    elif fmt in ("RGB888", "XRGB8888"):  # B, G, R(, A) in memory: already OpenCV's order
        bgr = image[:, :, :3]
    elif fmt in ("BGR888", "XBGR8888"):  # R, G, B(, A) in memory
        bgr = image[:, :, 2::-1]
    else:
        raise CaptureError(f"unsupported picamera2 stream format {fmt!r}")
    if bgr.shape[:2] != (height, width):
        raise CaptureError(f"stream delivered {bgr.shape[1]}x{bgr.shape[0]}, not {width}x{height}")
    return np.ascontiguousarray(bgr)


class Picamera2Source:
    """Frames for the plate reader from the Pi camera's ``lores`` stream, as BGR arrays.

    ``width`` x ``height`` is the ``main`` stream (recording); the reader gets
    ``lores`` (``reader_size`` fitted inside main). ``sensor_mode`` forces a
    mode by its index in ``Picamera2.sensor_modes``; by default it is chosen by
    ``select_sensor_mode``. ``camera_factory`` replaces ``picamera2.Picamera2``.
    """

    live = True
    name = "picamera2"

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        reader_size: tuple[int, int] = READER_SIZE,
        sensor_mode: int | None = None,
        camera_num: int = 0,
        buffer_count: int = 6,
        lores_format: str = LORES_FORMAT,
        camera_factory: CameraFactory | None = None,
        hooks: CameraHooks | None = None,
    ) -> None:
        self.main_size = (width - width % 2, height - height % 2)
        self.lores_size = lores_size(self.main_size, reader_size)
        self.fps = fps
        self._sensor_index = sensor_mode
        self._camera_num = camera_num
        self._buffer_count = buffer_count
        self._lores_format = lores_format
        self._factory = camera_factory
        self._hooks = hooks
        self._camera: Any = None
        self._lock = threading.Lock()
        self.sensor_mode: SensorMode | None = None
        self.configuration: dict[str, Any] = {}

    @property
    def camera(self) -> Any:
        """The open ``Picamera2`` (for ``HardwareRecorder``); None before ``open``/``frames``."""
        return self._camera

    def open(self) -> Any:
        """Open, configure and start the camera; raises CaptureError if it cannot be."""
        with self._lock:
            if self._camera is None:
                self._camera = self._start()
            return self._camera

    def _start(self) -> Any:
        factory = self._factory or _real_camera_factory()
        try:
            camera = factory(self._camera_num)
        except Exception as exc:  # libcamera raises plain RuntimeError/OSError variants
            raise CaptureError(f"cannot open the Pi camera: {exc}") from exc
        try:
            self.sensor_mode = mode = self._choose_mode(camera)
            config = camera.create_video_configuration(
                main={"size": self.main_size, "format": MAIN_FORMAT},
                lores={"size": self.lores_size, "format": self._lores_format},
                sensor={"output_size": mode.size, "bit_depth": mode.bit_depth},
                controls={"FrameRate": self.fps},
                buffer_count=self._buffer_count,
                encode="main",
                display=None,
            )
            camera.configure(config)
            self.configuration = dict(camera.camera_configuration())
            lores = self.configuration.get("lores") or {}
            width, height = lores.get("size", self.lores_size)
            self.lores_size = (int(width), int(height))
            self._lores_format = str(lores.get("format", self._lores_format))
            camera.start()
            if self._hooks is not None:
                self._hooks.attach(camera)
        except CaptureError:
            _close_quietly(camera)
            raise
        except Exception as exc:
            _close_quietly(camera)
            raise CaptureError(f"cannot start the Pi camera: {exc}") from exc
        log.info(
            "camera: sensor mode %d (%dx%d, %d bit, up to %.0f fps), main %dx%d, lores %dx%d %s",
            mode.index,
            *mode.size,
            mode.bit_depth,
            mode.fps,
            *self.main_size,
            *self.lores_size,
            self._lores_format,
        )
        return camera

    def _choose_mode(self, camera: Any) -> SensorMode:
        modes = list(camera.sensor_modes)
        if self._sensor_index is None:
            return select_sensor_mode(modes, self.main_size, self.fps)
        if not 0 <= self._sensor_index < len(modes):
            raise CaptureError(
                f"sensor mode {self._sensor_index} does not exist (the camera has {len(modes)})"
            )
        return SensorMode.parse(self._sensor_index, modes[self._sensor_index])

    def read(self) -> Image:
        """The next lores frame as BGR; raises CaptureError if the camera stopped."""
        camera = self._camera
        if camera is None:
            raise CaptureError("the Pi camera is not open")
        try:
            array = camera.capture_array("lores")
        except Exception as exc:
            raise CaptureError(f"Pi camera stopped delivering frames: {exc}") from exc
        if array is None:
            raise CaptureError("Pi camera stopped delivering frames: no buffer")
        return to_bgr(array, self._lores_format, self.lores_size)

    def frames(self) -> Iterator[Frame]:
        self.open()
        start = time.monotonic()
        index = 0
        try:
            while True:
                image = self.read()
                yield Frame(index, time.time(), time.monotonic() - start, image)
                index += 1
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            camera, self._camera = self._camera, None
        if camera is not None:
            if self._hooks is not None:
                self._hooks.detach(camera)
            _close_quietly(camera)


def _close_quietly(camera: Any) -> None:
    for step in ("stop", "close"):
        try:
            getattr(camera, step)()
        except Exception:  # closing a failed camera must not hide the first error
            log.exception("camera: %s failed", step)


# -- hardware H.264 recording ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HardwareRecorderSettings:
    segment_s: float = 10.0
    pre_event_s: float = 30.0
    gop_s: float = 1.0
    fps: float = 25.0
    bitrate: int | None = None
    """Bits per second for the encoder; None lets picamera2 pick (Quality.MEDIUM)."""


@dataclass(frozen=True, slots=True)
class HardwareSegment:
    """A finished segment file, as the evidence ledger would enter it."""

    number: int
    path: Path
    start: float
    end: float
    frames: int
    size: int
    pre_event: bool


class SegmentWriter(Protocol):
    """Where segments go: ``open`` a writable file, ``finish`` it once the muxer closed."""

    def open(self, number: int, started_at: float) -> tuple[Path, IO[bytes]]: ...

    def finish(self, path: Path, file: IO[bytes]) -> Path: ...


class DirectorySegmentWriter:
    """Plain ``seg-NNNNNN.mp4`` files: written as ``.partial``, fsynced, renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def open(self, number: int, started_at: float) -> tuple[Path, IO[bytes]]:
        del started_at
        path = self.root / f"seg-{number:06d}.mp4.partial"
        return path, path.open("xb")

    def finish(self, path: Path, file: IO[bytes]) -> Path:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        final = path.with_suffix("")
        path.replace(final)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return final


@dataclass(slots=True)
class _Packet:
    data: bytes
    keyframe: bool
    pts: int


@dataclass(slots=True)
class _Segment:
    number: int
    path: Path
    file: IO[bytes]
    container: Any
    stream: Any
    start: float
    base_pts: int
    last_pts: int = -1
    frames: int = 0
    pre_event: bool = False


class HardwareRecorder:
    """picamera2's hardware ``H264Encoder`` on the main stream, cut into MP4 segments.

    The encoder runs from ``start`` to ``stop``; while not recording its packets
    are kept in a ring of ``pre_event_s`` that starts at a keyframe (as
    ``CircularOutput``). ``record(True)`` writes the ring, then live packets;
    a new segment starts at the first keyframe after ``segment_s``. Packets
    arrive on picamera2's encoder thread; ``record`` may be called from any.
    ``encoder_factory`` and ``output_base`` replace ``picamera2.encoders.H264Encoder``
    and ``picamera2.outputs.Output``.
    """

    def __init__(
        self,
        camera: Any,
        writer: SegmentWriter,
        settings: HardwareRecorderSettings,
        *,
        size: tuple[int, int],
        encoder_factory: Callable[..., Any] | None = None,
        output_base: type[Any] | None = None,
        on_segment: Callable[[HardwareSegment], None] | None = None,
    ) -> None:
        self._camera = camera
        self._writer = writer
        self.settings = settings
        self._size = size
        self._encoder_factory = encoder_factory
        self._output_base = output_base
        self._on_segment = on_segment or (lambda _segment: None)
        self._lock = threading.Lock()
        self._encoder: Any = None
        self._ring: deque[_Packet] = deque()
        self._recording = False
        self._segment: _Segment | None = None
        self._number = 0
        self._t0: float | None = None
        self.segments: list[HardwareSegment] = []
        self.errors = 0

    def _library(self) -> tuple[Callable[..., Any], type[Any]]:
        if self._encoder_factory is not None and self._output_base is not None:
            return self._encoder_factory, self._output_base
        try:
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import Output
        except ImportError as exc:
            raise CaptureError(
                "picamera2 is not installed (install the 'pi' extra on a Pi)"
            ) from exc
        return H264Encoder, Output

    def start(self) -> None:
        """Start the hardware encoder on ``main`` (the camera must be started)."""
        encoder_factory, output_base = self._library()
        gop = max(1, round(self.settings.gop_s * self.settings.fps))
        try:
            encoder = encoder_factory(
                bitrate=self.settings.bitrate, repeat=True, iperiod=gop, framerate=self.settings.fps
            )
            self._camera.start_encoder(encoder, make_output(output_base, self), name="main")
        except Exception as exc:
            raise CaptureError(f"cannot start the hardware H.264 encoder: {exc}") from exc
        self._encoder = encoder

    def stop(self) -> None:
        """Stop the encoder (its output then closes the open segment)."""
        encoder, self._encoder = self._encoder, None
        if encoder is not None and getattr(encoder, "running", True):
            try:
                self._camera.stop_encoder(encoder)
            except Exception:
                self.errors += 1
                log.exception("camera: stopping the hardware encoder failed")
        self.closed()

    def record(self, on: bool) -> None:
        """Start (ring first) or stop writing segments."""
        with self._lock:
            if on and not self._recording:
                self._recording = True
                ring, self._ring = list(self._ring), deque()
                for packet in ring:
                    self._write(packet, pre_event=True)
            elif not on and self._recording:
                self._recording = False
                self._close_segment()

    @property
    def recording(self) -> bool:
        return self._recording

    # -- called by the picamera2 Output on the encoder thread --------------------------

    def packet(self, data: bytes, keyframe: bool, timestamp_us: int | None) -> None:
        with self._lock:
            pts = int(timestamp_us or 0)
            if self._t0 is None:
                self._t0 = time.time() - pts / 1e6
            packet = _Packet(bytes(data), keyframe, pts)
            if self._recording:
                try:
                    self._write(packet, pre_event=False)
                except Exception:  # e.g. a full disk: never raise into picamera2's thread
                    self.errors += 1
                    self._recording = False
                    log.exception("camera: recording stopped, the segment could not be written")
                    self._abandon_segment()
                return
            if not self._ring and not keyframe:
                return  # the ring always starts at a keyframe
            self._ring.append(packet)
            self._trim_ring(pts)

    def closed(self) -> None:
        with self._lock:
            self._close_segment()

    def _trim_ring(self, newest: int) -> None:
        limit = newest - round(self.settings.pre_event_s * 1e6)
        ring = self._ring
        while len(ring) > 1:
            nxt = next((i for i in range(1, len(ring)) if ring[i].keyframe), None)
            if nxt is None or ring[nxt].pts > limit:
                break
            for _ in range(nxt):
                ring.popleft()

    def _wall(self, pts: int) -> float:
        return (self._t0 or 0.0) + pts / 1e6

    def _write(self, packet: _Packet, *, pre_event: bool) -> None:
        seg = self._segment
        due = seg is not None and packet.pts - seg.base_pts >= self.settings.segment_s * 1e6
        if seg is not None and packet.keyframe and due:
            self._close_segment()
            seg = None
        if seg is None:
            if not packet.keyframe:
                return
            seg = self._open_segment(packet)
            if seg is None:
                return
        seg.pre_event |= pre_event
        out = av.Packet(packet.data)
        out.pts = out.dts = max(packet.pts - seg.base_pts, seg.last_pts + 1)
        seg.last_pts = out.pts
        out.time_base = US
        out.is_keyframe = packet.keyframe
        out.stream = seg.stream
        try:
            seg.container.mux(out)
        except (av.FFmpegError, OSError) as exc:  # a full disk, a failing card
            self.errors += 1
            self._recording = False
            log.error("camera: recording stopped, %s could not be written: %s", seg.path.name, exc)
            self._close_segment()
            return
        seg.frames += 1

    def _open_segment(self, packet: _Packet) -> _Segment | None:
        self._number += 1
        start = self._wall(packet.pts)
        try:
            path, file = self._writer.open(self._number, start)
        except OSError as exc:
            self.errors += 1
            log.error("camera: cannot open segment %d: %s", self._number, exc)
            return None
        try:
            container: Any = av.open(file, "w", format="mp4", options={"movflags": MOVFLAGS})
            stream = container.add_mux_stream("h264", width=self._size[0], height=self._size[1])
            stream.time_base = US
        except (av.FFmpegError, OSError) as exc:
            self.errors += 1
            file.close()
            log.error("camera: cannot start segment %s: %s", path.name, exc)
            return None
        self._segment = _Segment(self._number, path, file, container, stream, start, packet.pts)
        return self._segment

    def _abandon_segment(self) -> None:
        seg, self._segment = self._segment, None
        if seg is not None:
            with contextlib.suppress(Exception):
                seg.container.close()
            with contextlib.suppress(OSError):
                seg.file.close()

    def _close_segment(self) -> None:
        seg, self._segment = self._segment, None
        if seg is None:
            return
        try:
            seg.container.close()
            final = self._writer.finish(seg.path, seg.file)
        except (av.FFmpegError, OSError) as exc:
            self.errors += 1
            log.error("camera: segment %s not finished properly: %s", seg.path.name, exc)
            with contextlib.suppress(OSError):
                seg.file.close()
            final = seg.path
        fps = self.settings.fps
        segment = HardwareSegment(
            number=seg.number,
            path=final,
            start=seg.start,
            end=seg.start + seg.last_pts / 1e6 + 1.0 / fps,
            frames=seg.frames,
            size=final.stat().st_size if final.exists() else 0,
            pre_event=seg.pre_event,
        )
        self.segments.append(segment)
        log.info("camera: segment %s written (%d frames)", final.name, seg.frames)
        self._on_segment(segment)


def make_output(base: type[Any], recorder: PacketSink) -> Any:
    """An instance of a subclass of picamera2's ``Output`` that feeds ``recorder``.

    Built at run time because ``Output`` can only be imported on the Pi;
    ``Encoder.output`` accepts nothing that is not an ``Output``.
    """

    def outputframe(
        self: Any, frame: Any, keyframe: bool = True, timestamp: int | None = None, *rest: Any
    ) -> None:
        audio = len(rest) > 1 and bool(rest[1])  # (packet, audio) from picamera2 >= 0.3.17
        if self.recording and not audio and frame is not None:
            recorder.packet(bytes(frame), keyframe, timestamp)

    def stop(self: Any) -> None:
        base.stop(self)
        recorder.closed()

    def add_stream(self: Any, *args: Any, **kwargs: Any) -> None:
        """Told the stream kinds (picamera2 >= 0.3.17); the muxer here needs only H.264."""

    methods = {"outputframe": outputframe, "stop": stop, "_add_stream": add_stream}
    cls = type("RaqibSegmentOutput", (base,), methods)
    return cls()
