"""The capture thread: pulls frames from a source into bounded queues.

Each frame goes to every sink queue (the plate reader's, the recorder's); a
slow consumer loses its own oldest frames, never another consumer's.

Failures never escape: a live source is reopened after a pause, a file source
that is corrupt part way is reported and ends (its good frames were already
queued), and ``loop`` replays a file again for soak runs and benchmarks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.capture.base import FrameSource
from agent.capture.queue import FrameQueue
from agent.errors import CaptureError, FrameError

log = logging.getLogger(__name__)


class CaptureWorker:
    """Runs one frame source on its own thread until stopped or the file ends."""

    def __init__(
        self,
        make_source: Callable[[], FrameSource],
        queue: FrameQueue,
        *extra_sinks: FrameQueue,
        loop: bool = False,
        reconnect_s: float = 2.0,
    ) -> None:
        self._make_source = make_source
        self._sinks = (queue, *extra_sinks)
        self._loop = loop
        self._reconnect_s = reconnect_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self.errors = 0
        self.last_error = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def wait(self, timeout: float) -> bool:
        """Wait for a file source to end by itself; True if the thread has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                source = self._make_source()
                failed = self._pump(source)
                if not (source.live or self._loop):
                    return
                if failed:
                    self._stop.wait(self._reconnect_s)
        finally:
            for sink in self._sinks:
                sink.close()

    def _pump(self, source: FrameSource) -> bool:
        """Feed frames until the source ends; True if it failed (reported and counted)."""
        try:
            for frame in source.frames():
                if self._stop.is_set():
                    return False
                for sink in self._sinks:
                    sink.put(frame)
        except (FrameError, CaptureError) as exc:
            self.errors += 1
            self.last_error = str(exc)
            log.error("capture: %s", exc, extra={"source": source.name})
            return True
        finally:
            source.close()
        return False
