"""The interface every frame source implements, whatever the hardware."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from agent.frames import Frame


class FrameSource(Protocol):
    """Yields timestamped frames until the source ends or fails.

    ``frames()`` raises ``CaptureError`` when the source cannot be opened or a
    live stream drops, and ``FrameError`` when a file turns out corrupt part way;
    frames yielded before the failure are valid. ``live`` sources are reopened
    by the capture worker; file sources end.
    """

    name: str
    live: bool

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
