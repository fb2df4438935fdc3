"""A bounded frame queue that drops the oldest frame rather than fall behind.

An officer needs the plate passing now, not one from three seconds ago: when
the reader is slower than the camera, stale frames are discarded and counted.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from agent.frames import Frame


@dataclass(frozen=True, slots=True)
class QueueStats:
    put: int
    taken: int
    dropped: int
    depth: int


class FrameQueue:
    """Thread-safe single-producer/single-consumer queue with drop-oldest overflow."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise RuntimeError("FrameQueue needs room for at least one frame")
        self._items: deque[Frame] = deque(maxlen=maxsize)
        self._cond = threading.Condition()
        self._closed = False
        self._put = 0
        self._taken = 0
        self._dropped = 0

    def put(self, frame: Frame) -> None:
        """Add a frame; if full, the oldest frame is dropped (and counted)."""
        with self._cond:
            if len(self._items) == self._items.maxlen:
                self._dropped += 1
            self._items.append(frame)
            self._put += 1
            self._cond.notify()

    def get(self, timeout: float) -> Frame | None:
        """The oldest waiting frame, or None on timeout or once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            self._taken += 1
            return self._items.popleft()

    def close(self) -> None:
        """No more frames will come; wakes a waiting consumer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def stats(self) -> QueueStats:
        with self._cond:
            return QueueStats(self._put, self._taken, self._dropped, len(self._items))
