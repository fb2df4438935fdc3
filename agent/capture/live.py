"""Live cameras: USB/V4L2 through OpenCV and RTSP IP cameras through PyAV.

A live source that fails raises ``CaptureError``; the capture worker logs it and
reopens the source after a pause, so a loose cable never stops the daemon.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import cast

import av
import av.error
import cv2

from agent.errors import CaptureError
from agent.frames import Frame, Image


class V4l2Source:
    """A USB or CSI camera exposed as /dev/videoN, read with OpenCV's V4L2 backend."""

    live = True

    def __init__(self, device: str, width: int, height: int, fps: float) -> None:
        self.name = f"v4l2:{device}"
        self._device: int | str = int(device) if device.isdigit() else device
        self._size = (width, height)
        self._fps = fps
        self._cap: cv2.VideoCapture | None = None

    def frames(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(self._device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"cannot open camera {self._device}")
        self._cap = cap
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        cap.set(cv2.CAP_PROP_FPS, self._fps)
        start = time.monotonic()
        index = 0
        try:
            while True:
                ok, image = cap.read()
                if not ok or image is None:
                    raise CaptureError(f"camera {self._device} stopped delivering frames")
                pts_s = time.monotonic() - start
                yield Frame(index, time.time(), pts_s, cast(Image, image))
                index += 1
        finally:
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class RtspSource:
    """An IP camera's RTSP stream (vehicle cameras), decoded with PyAV over TCP."""

    live = True

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        if not url.startswith(("rtsp://", "rtsps://")):
            raise CaptureError(f"not an RTSP URL: {url!r}")
        self.name = "rtsp:" + url.rsplit("@", 1)[-1]  # never log credentials
        self._url = url
        self._timeout_us = str(int(timeout_s * 1_000_000))
        self._container: av.container.InputContainer | None = None

    def frames(self) -> Iterator[Frame]:
        options = {"rtsp_transport": "tcp", "timeout": self._timeout_us}
        try:
            self._container = container = av.open(self._url, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise CaptureError(f"cannot open {self.name}: {exc}") from exc
        start = time.monotonic()
        index = 0
        try:
            for av_frame in container.decode(video=0):
                yield Frame(
                    index,
                    time.time(),
                    time.monotonic() - start,
                    cast(Image, av_frame.to_ndarray(format="bgr24")),
                )
                index += 1
        except av.error.FFmpegError as exc:
            raise CaptureError(f"{self.name} dropped: {exc}") from exc
        finally:
            self.close()
        raise CaptureError(f"{self.name} ended")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
