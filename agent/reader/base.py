"""The interface the daemon uses; any reader (TFLite models, a test double) fits it."""

from __future__ import annotations

from typing import Protocol

from agent.frames import Image
from agent.reads import PlateRead


class PlateReader(Protocol):
    """Reads every plate in one BGR frame. Raises ``FrameError`` for a frame it cannot use."""

    def read(self, image: Image) -> list[PlateRead]: ...
