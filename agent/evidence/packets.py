"""Encoded video from the board's own encoder, on its way to the recorder thread.

picamera2's hardware encoder hands over one H.264 access unit per frame on its
own thread; ``PacketQueue`` carries them to the recorder, which muxes them
without re-encoding. A full queue drops packets up to the next keyframe (an
H.264 stream missing a P-frame is garbage until then) and counts them.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One access unit: Annex-B bytes, keyframe flag, capture time (s since the epoch), size."""

    data: bytes
    keyframe: bool
    timestamp: float
    size: tuple[int, int]


class PacketQueue:
    """Thread-safe, bounded; drops until the next keyframe when the recorder falls behind."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise RuntimeError("PacketQueue needs room for at least one packet")
        self._items: deque[EncodedPacket] = deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._closed = False
        self._skipping = False
        self.put_count = 0
        self.dropped = 0

    def put(self, packet: EncodedPacket) -> None:
        with self._cond:
            self.put_count += 1
            if self._skipping and not packet.keyframe:
                self.dropped += 1
                return
            self._skipping = False
            if len(self._items) >= self._maxsize:
                self._skipping = not packet.keyframe
                self.dropped += 1
                return
            self._items.append(packet)
            self._cond.notify()

    def get(self, timeout: float) -> EncodedPacket | None:
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._items)
