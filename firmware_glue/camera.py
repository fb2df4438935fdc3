"""The Raspberry Pi camera through picamera2 (only importable on a Pi with libcamera).

The main stream feeds the recorder; the plate reader takes the same frames as
BGR arrays. picamera2 is imported lazily so this module loads anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from agent.errors import CaptureError
from agent.frames import Frame


def picamera2_available() -> bool:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        return False
    return True


class Picamera2Source:
    """Frames from the Pi camera via picamera2 (RGB888 is BGR in memory, as OpenCV wants)."""

    live = True
    name = "picamera2"

    def __init__(self, width: int, height: int, fps: float) -> None:
        self._size = (width, height)
        self._fps = fps
        self._camera: Any = None

    def _start(self) -> Any:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CaptureError(
                "picamera2 is not installed (install the 'pi' extra on a Pi)"
            ) from exc
        try:
            camera = Picamera2()
            config = camera.create_video_configuration(
                main={"size": self._size, "format": "RGB888"},
                controls={"FrameRate": self._fps},
                buffer_count=4,
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:  # libcamera raises plain RuntimeError/OSError variants
            raise CaptureError(f"cannot start the Pi camera: {exc}") from exc
        return camera

    def frames(self) -> Iterator[Frame]:
        self._camera = camera = self._start()
        start = time.monotonic()
        index = 0
        try:
            while True:
                try:
                    image = camera.capture_array("main")
                except Exception as exc:
                    raise CaptureError(f"Pi camera stopped delivering frames: {exc}") from exc
                yield Frame(index, time.time(), time.monotonic() - start, image[:, :, :3])
                index += 1
        finally:
            self.close()

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            finally:
                self._camera = None
