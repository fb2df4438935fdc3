"""A stand-in for picamera2 on x86: the subset of its API that ``firmware_glue.camera`` uses.

``Picamera2`` reports sensor modes (an IMX708-like table by default), makes
video configurations, checks them as picamera2 does (even sizes, lores not
larger than main, YUV-only lores on a Pi 4), and on each ``capture_array``
completes one "request": it renders the scene, hands the main stream to every
running encoder and returns the named stream in picamera2's memory layout
(YUV420 as a ``(height * 3/2, stride)`` array with row padding, RGB888 as B,G,R).
``H264Encoder`` encodes with libx264 through PyAV into Annex-B access units with
repeated headers and a fixed I-period, and calls its ``Output`` objects the way
picamera2's encoders do. Everything the adapter asked for is recorded in
``calls`` so tests can check it.

Hardware is simulated here, at the adapter boundary; the adapter code that
runs against this is the code that runs on the Pi.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, ClassVar, Final

import av
import cv2
import numpy as np

from agent.frames import Image

Scene = Callable[[int, tuple[int, int]], Image]
"""``scene(frame_index, (width, height))`` -> the BGR picture the sensor sees."""

IMX708_MODES: Final[tuple[dict[str, Any], ...]] = (
    {
        "format": "SRGGB10_CSI2P",
        "unpacked": "SRGGB10",
        "bit_depth": 10,
        "size": (1536, 864),
        "fps": 120.13,
        "crop_limits": (768, 432, 3072, 1728),
        "exposure_limits": (9, None),
    },
    {
        "format": "SRGGB10_CSI2P",
        "unpacked": "SRGGB10",
        "bit_depth": 10,
        "size": (2304, 1296),
        "fps": 56.03,
        "crop_limits": (0, 0, 4608, 2592),
        "exposure_limits": (13, None),
    },
    {
        "format": "SRGGB10_CSI2P",
        "unpacked": "SRGGB10",
        "bit_depth": 10,
        "size": (4608, 2592),
        "fps": 14.35,
        "crop_limits": (0, 0, 4608, 2592),
        "exposure_limits": (26, None),
    },
)
"""The Camera Module 3's modes as ``Picamera2.sensor_modes`` lists them."""

YUV_FORMATS: Final = ("YUV420", "YVU420")
RGB_FORMATS: Final = ("RGB888", "BGR888", "XRGB8888", "XBGR8888")


def bands_pattern(index: int, size: tuple[int, int]) -> Image:
    """Blue, green and red vertical bands and a white bar that moves one step per frame."""
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    image[:, :third] = (255, 0, 0)
    image[:, third : 2 * third] = (0, 255, 0)
    image[:, 2 * third :] = (0, 0, 255)
    bar = (index * 8) % max(1, height - 16)
    image[bar : bar + 16, :] = 255
    return image


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def _stride(fmt: str, width: int) -> int:
    if fmt in YUV_FORMATS:
        return _align(width, 64)
    return width * (3 if fmt.endswith("888") and not fmt.startswith("X") else 4)


def to_stream_layout(bgr: Image, fmt: str) -> tuple[np.ndarray[Any, Any], int]:
    """``bgr`` as ``capture_array`` returns a stream of format ``fmt``, and its stride."""
    height, width = bgr.shape[:2]
    if fmt in YUV_FORMATS:
        i420 = cv2.cvtColor(
            bgr, cv2.COLOR_BGR2YUV_I420 if fmt == "YUV420" else cv2.COLOR_BGR2YUV_YV12
        )
        stride = _stride(fmt, width)
        if stride == width:
            return np.asarray(i420, np.uint8), stride
        # Re-lay each plane with padded rows, as the ISP writes them.
        y = i420[:height]
        chroma = i420[height:].reshape(2, height // 2, width // 2)
        out = np.zeros((height * 3 // 2, stride), np.uint8)
        out[:height, :width] = y
        flat = out[height:].reshape(2, height // 2, stride // 2)
        flat[:, :, : width // 2] = chroma
        return out, stride
    if fmt == "RGB888":
        return bgr.copy(), width * 3
    if fmt == "BGR888":
        return np.ascontiguousarray(bgr[:, :, ::-1]), width * 3
    alpha = np.full((height, width, 1), 255, np.uint8)
    if fmt == "XRGB8888":
        return np.concatenate([bgr, alpha], axis=2), width * 4
    if fmt == "XBGR8888":
        return np.concatenate([bgr[:, :, ::-1], alpha], axis=2), width * 4
    raise RuntimeError(f"Format {fmt} not supported")


def _check_stream(stream: dict[str, Any], name: str) -> None:
    """As ``Picamera2.check_stream_config``; fills in the stride libcamera would choose."""
    width, height = stream["size"]
    if width % 2 or height % 2:
        raise RuntimeError("width and height should be even")
    fmt = stream["format"]
    if fmt not in YUV_FORMATS + RGB_FORMATS:
        raise RuntimeError(f"Bad format {fmt} in stream {name}")
    stream["stride"] = _stride(fmt, width)


class Output:
    """picamera2.outputs.Output: ``start``/``stop`` and ``outputframe`` per encoded frame."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False
        self.ptsoutput = pts

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def outputframe(
        self,
        frame: Any,
        keyframe: bool = True,
        timestamp: int | None = None,
        packet: Any = None,
        audio: bool = False,
    ) -> None:
        """Takes one encoded frame; the base class drops it."""

    def _add_stream(self, encoder_stream: Any, codec_name: str, **kwargs: Any) -> None:
        """Told the stream kinds before the first frame (picamera2 >= 0.3.17)."""


class H264Encoder:
    """picamera2.encoders.H264Encoder, in software: libx264 via PyAV, Annex-B out."""

    def __init__(
        self,
        bitrate: int | None = None,
        repeat: bool = True,
        iperiod: int | None = None,
        *,
        framerate: float | None = None,
        enable_sps_framerate: bool = False,
        qp: int | None = None,
        profile: str | None = None,
    ) -> None:
        del enable_sps_framerate
        self.bitrate = bitrate
        self.repeat = repeat
        self.iperiod = iperiod
        self.framerate = framerate
        self.qp = qp
        self.profile = profile
        self.width = 0
        self.height = 0
        self.stride = 0
        self.format: str | None = None
        self.name: str | None = None
        self._output: list[Output] = []
        self._codec: Any = None
        self.running = False
        self.firsttimestamp: int | None = None
        self.frames_encoded = 0

    @property
    def output(self) -> Any:
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value: Any) -> None:
        outputs = value if isinstance(value, list) else [value]
        if not all(isinstance(out, Output) for out in outputs):
            raise RuntimeError("Must pass Output")
        self._output = outputs

    def start(self, quality: Any = None) -> None:
        del quality
        if self.running:
            raise RuntimeError("Encoder already running")
        fps = self.framerate or 30.0
        gop = self.iperiod or 60
        codec: Any = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = self.width, self.height
        codec.pix_fmt = "yuv420p"
        codec.time_base = Fraction(1, 1_000_000)
        codec.framerate = Fraction(round(fps * 1000), 1000)
        codec.gop_size = gop
        codec.max_b_frames = 0  # the Pi's encoder makes no B-frames
        codec.thread_count = 1
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        if self.repeat:
            params += ":repeat-headers=1"
        codec.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": params}
        if self.bitrate:
            codec.bit_rate = self.bitrate
        self._codec = codec
        self.running = True
        self.firsttimestamp = None
        for out in self._output:
            out._add_stream("video", "h264")
            out.start()

    def encode_frame(self, yuv420: np.ndarray[Any, Any], sensor_timestamp_ns: int) -> None:
        """One main-stream frame (I420, no padding) from the camera's request."""
        ts = sensor_timestamp_ns // 1000
        if self.firsttimestamp is None:
            self.firsttimestamp = ts
        frame = av.VideoFrame.from_ndarray(yuv420, format="yuv420p")
        frame.pts = ts - self.firsttimestamp
        frame.time_base = Fraction(1, 1_000_000)
        self._emit(self._codec.encode(frame))
        self.frames_encoded += 1

    def _emit(self, packets: Any) -> None:
        for packet in packets:
            for out in self._output:
                out.outputframe(
                    bytes(packet), bool(packet.is_keyframe), int(packet.pts), None, False
                )

    def stop(self) -> None:
        if not self.running:
            raise RuntimeError("Encoder already stopped")
        self.running = False
        self._emit(self._codec.encode(None))
        self._codec = None
        for out in self._output:
            out.stop()


class Picamera2:
    """picamera2.Picamera2 with a simulated sensor; ``calls`` lists what it was asked.

    Class attributes configure the next instances (tests set them, then pass
    the class as the camera factory): ``modes``, ``scene``, ``pi4`` (lores must
    be YUV), ``fail_open``, ``fail_after`` (frames before capture raises),
    ``realtime`` (pace requests at the frame rate).
    """

    modes: ClassVar[tuple[dict[str, Any], ...]] = IMX708_MODES
    scene: ClassVar[Scene] = bands_pattern
    pi4: ClassVar[bool] = True
    fail_open: ClassVar[str | None] = None
    fail_after: ClassVar[int | None] = None
    realtime: ClassVar[bool] = False
    instances: ClassVar[list[Picamera2]] = []
    """Every camera made, newest last (tests look at ``calls``)."""

    def __init__(self, camera_num: int = 0) -> None:
        self.calls: list[tuple[str, Any]] = [("open", camera_num)]
        if self.fail_open is not None:
            raise RuntimeError(self.fail_open)
        self.camera_num = camera_num
        self.camera_config: dict[str, Any] | None = None
        self.started = False
        self.is_open = True
        self.frames = 0
        self.encoders: set[H264Encoder] = set()
        self.controls: dict[str, Any] = {}
        Picamera2.instances.append(self)

    @property
    def sensor_modes(self) -> list[dict[str, Any]]:
        self.calls.append(("sensor_modes", None))
        return [dict(mode) for mode in self.modes]

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        *,
        raw: dict[str, Any] | None = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 6,
        controls: dict[str, Any] | None = None,
        display: str | None = "main",
        encode: str | None = "main",
        queue: bool = True,
        sensor: dict[str, Any] | None = None,
        use_case: str = "video",
    ) -> dict[str, Any]:
        del raw, transform, colour_space, queue
        args = {"main": main, "lores": lores, "sensor": sensor, "controls": controls}
        self.calls.append(("create_video_configuration", copy.deepcopy(args)))
        main_cfg = {"format": "XBGR8888", "size": (1280, 720)} | dict(main or {})
        lores_cfg = (
            None if lores is None else {"format": "YUV420", "size": main_cfg["size"]} | lores
        )
        return {
            "use_case": use_case,
            "buffer_count": buffer_count,
            "main": main_cfg,
            "lores": lores_cfg,
            "raw": None,
            "sensor": dict(sensor or {}),
            "controls": dict(controls or {}),
            "display": display,
            "encode": encode,
        }

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append(("configure", copy.deepcopy(config)))
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        config = copy.deepcopy(config)
        for name in ("main", "lores"):
            if config.get(name) is not None:
                _check_stream(config[name], name)
        lores = config.get("lores")
        if lores is not None:
            main_w, main_h = config["main"]["size"]
            if lores["size"][0] > main_w or lores["size"][1] > main_h:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if self.pi4 and lores["format"] not in YUV_FORMATS:
                raise RuntimeError("lores stream must be YUV")
        sensor = config.get("sensor") or {}
        if set(sensor) - {"bit_depth", "output_size"}:
            raise RuntimeError(f"Unexpected keys {set(sensor)} in sensor configuration")
        sizes = {tuple(m["size"]) for m in self.modes}
        if "output_size" in sensor and tuple(sensor["output_size"]) not in sizes:
            raise RuntimeError(f"no sensor mode of size {sensor['output_size']}")
        self.controls = dict(config.get("controls") or {})
        self.camera_config = config

    def camera_configuration(self) -> dict[str, Any]:
        if self.camera_config is None:
            raise RuntimeError("Camera is not configured")
        return copy.deepcopy(self.camera_config)

    def start(self, show_preview: bool = False) -> None:
        del show_preview
        self.calls.append(("start", None))
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True
        self._t0 = time.monotonic_ns()

    @property
    def frame_rate(self) -> float:
        return float(self.controls.get("FrameRate", 30.0))

    def _request(self) -> dict[str, np.ndarray[Any, Any]]:
        """Complete one request: render, feed the encoders, return every stream."""
        if not self.started or self.camera_config is None:
            raise RuntimeError("Camera is not running")
        if self.fail_after is not None and self.frames >= self.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        period_ns = round(1e9 / self.frame_rate)
        timestamp = self._t0 + self.frames * period_ns
        if self.realtime:
            delay = (timestamp - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
        main = self.camera_config["main"]
        scene = np.asarray(type(self).scene(self.frames, tuple(main["size"])), np.uint8)
        streams = {"main": to_stream_layout(scene, main["format"])[0]}
        lores = self.camera_config.get("lores")
        if lores is not None:
            small = np.asarray(
                cv2.resize(scene, tuple(lores["size"]), interpolation=cv2.INTER_AREA), np.uint8
            )
            streams["lores"] = to_stream_layout(small, lores["format"])[0]
        if self.encoders:
            i420 = cv2.cvtColor(scene, cv2.COLOR_BGR2YUV_I420)
            for encoder in list(self.encoders):
                encoder.encode_frame(i420, timestamp)
        self.frames += 1
        return streams

    def capture_array(self, name: str = "main", wait: Any = None) -> np.ndarray[Any, Any]:
        del wait
        streams = self._request()
        if name not in streams:
            raise RuntimeError(f"Stream {name!r} is not configured")
        return streams[name]

    def start_encoder(
        self,
        encoder: H264Encoder | None = None,
        output: Output | None = None,
        pts: Any = None,
        quality: Any = None,
        name: str | None = None,
    ) -> None:
        del pts
        self.calls.append(
            ("start_encoder", {"name": name, "iperiod": getattr(encoder, "iperiod", None)})
        )
        if encoder is None:
            raise RuntimeError("No encoder specified")
        if output is not None:
            encoder.output = output
        streams = self.camera_configuration()
        name = name or streams.get("encode") or "main"
        if streams.get(name) is None:
            raise RuntimeError(f"Encode stream {name} was not defined")
        encoder.name = name
        encoder.width, encoder.height = streams[name]["size"]
        encoder.format = streams[name]["format"]
        encoder.stride = streams[name]["stride"]
        if encoder.framerate is None:
            encoder.framerate = self.frame_rate
        encoder.start(quality=quality)
        self.encoders.add(encoder)

    def stop_encoder(self, encoders: H264Encoder | None = None) -> None:
        self.calls.append(("stop_encoder", None))
        chosen = list(self.encoders) if encoders is None else [encoders]
        for encoder in chosen:
            encoder.stop()
            self.encoders.discard(encoder)

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self.started = False

    def close(self) -> None:
        self.calls.append(("close", None))
        if self.encoders:
            self.stop_encoder()
        self.started = False
        self.is_open = False


def simulated(**settings: Any) -> type[Picamera2]:
    """A ``Picamera2`` subclass with these class settings, to pass as the camera factory."""
    return type("Picamera2", (Picamera2,), settings)
