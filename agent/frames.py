"""The unit that flows from capture to the reader and the recorder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
"""An H x W x 3 uint8 image in BGR order (OpenCV's convention), C-contiguous."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame: its pixels and when it was taken.

    ``timestamp`` is wall-clock seconds since the epoch at capture (what a hit
    reports); ``pts_s`` is the media time within the source (what a replayed
    file's ground truth refers to).
    """

    index: int
    timestamp: float
    pts_s: float
    image: Image

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
