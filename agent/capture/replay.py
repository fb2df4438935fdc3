"""Replay of recorded footage: a video file (PyAV) or a folder of images.

Used for the demo, tests, benchmarks and for reading footage an officer brings
back. ``realtime`` paces frames at their recorded rate, as a camera would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import av
import av.error
import cv2
import numpy as np

from agent.errors import CaptureError, FrameError
from agent.frames import Frame, Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})


class _Pacer:
    """Sleeps so that frame media times line up with the wall clock."""

    def __init__(self, enabled: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._enabled = enabled
        self._clock = clock
        self._start: float | None = None

    def wait(self, pts_s: float) -> None:
        if not self._enabled:
            return
        now = self._clock()
        if self._start is None:
            self._start = now - pts_s
        delay = self._start + pts_s - now
        if delay > 0:
            time.sleep(delay)


class VideoFileSource:
    """Decodes a video file with PyAV into BGR frames."""

    live = False

    def __init__(self, path: Path, realtime: bool = False, start_time: float | None = None) -> None:
        self.path = path
        self.name = f"file:{path.name}"
        self._realtime = realtime
        self._start_time = start_time
        self._container: av.container.InputContainer | None = None

    def _open(self) -> av.container.InputContainer:
        if not self.path.is_file():
            raise CaptureError(f"video file {self.path} does not exist")
        try:
            container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, OSError) as exc:
            raise CaptureError(f"cannot open video {self.path}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise CaptureError(f"{self.path} has no video stream")
        return container

    def frames(self) -> Iterator[Frame]:
        self._container = container = self._open()
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 25)
        epoch = time.time() if self._start_time is None else self._start_time
        pacer = _Pacer(self._realtime)
        index = 0
        try:
            for av_frame in container.decode(stream):
                pts_s = float(av_frame.time) if av_frame.time is not None else index / rate
                pacer.wait(pts_s)
                if index == 0 and self._realtime and self._start_time is None:
                    # As a camera: a frame is stamped when it is delivered, so the time spent
                    # opening the file and decoding the first frame is not counted as latency.
                    epoch = time.time() - pts_s
                image = cast(Image, av_frame.to_ndarray(format="bgr24"))
                yield Frame(index=index, timestamp=epoch + pts_s, pts_s=pts_s, image=image)
                index += 1
        except (av.error.FFmpegError, ValueError) as exc:
            raise FrameError(
                f"video {self.path} is corrupt or truncated after {index} frames: {exc}"
            ) from exc
        finally:
            self.close()
        if index == 0:
            raise FrameError(f"video {self.path} holds no decodable frame")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class ImageFolderSource:
    """Replays the images of a folder, in name order, at a fixed frame rate."""

    live = False

    def __init__(self, path: Path, fps: float, realtime: bool = False) -> None:
        self.path = path
        self.name = f"images:{path.name}"
        self._fps = fps
        self._realtime = realtime

    def frames(self) -> Iterator[Frame]:
        if not self.path.is_dir():
            raise CaptureError(f"image folder {self.path} does not exist")
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CaptureError(f"image folder {self.path} holds no images")
        epoch = time.time()
        pacer = _Pacer(self._realtime)
        index = 0
        for file in files:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None or image.ndim != 3:
                log.warning("capture: skipping unreadable image", extra={"file": str(file)})
                continue
            pts_s = index / self._fps
            pacer.wait(pts_s)
            yield Frame(index, epoch + pts_s, pts_s, np.ascontiguousarray(image))
            index += 1

    def close(self) -> None:
        """Nothing is held open between images."""
